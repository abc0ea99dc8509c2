/* export.c — `initlab export --tensorboard DIR`: jobs' records as TensorBoard event files. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"
#include "export/tfevents.h"
#include "store/store.h"

static const char usage_text[] =
    "usage: initlab export --tensorboard DIR [--db FILE] JOB...\n\n"
    "Writes what the jobs recorded as TensorBoard event files, one run per job in\n"
    "DIR/jobID-MODEL-INIT-sSEED/ (open with `tensorboard --logdir DIR`):\n"
    "  scalars per epoch     epoch/train_loss, epoch/train_accuracy, epoch/val_loss,\n"
    "                        epoch/val_accuracy, epoch/lr, epoch/seconds,\n"
    "                        epoch/images_per_sec (step = epoch)\n"
    "  scalars per step      step/train_loss, step/train_accuracy (step = global step; the\n"
    "                        means over the steps since the previous point)\n"
    "  test results          test/accuracy, test/precision_macro, test/recall_macro,\n"
    "                        test/f1_macro, test/loss (step = the epoch tested)\n"
    "  histograms per layer  QUANTITY/MODE/NNN_LAYER for weight, activation and gradient in\n"
    "                        both BatchNorm modes (train, inference), 64 buckets over the\n"
    "                        layer's range (step = epoch; 0 = at initialization)\n"
    "Events are TensorBoard's own messages, encoded with protobuf-c.\n\n"
    "  --tensorboard DIR  where the runs go (created); a job's run folder must not hold an\n"
    "                     event file of this second already\n"
    "  --db FILE          the database (default state/initlab.db)\n";

/* Parses a job id; 0 when text is not one. */
static long long job_id(const char *text)
{
    char *end;
    long long v = strtoll(text, &end, 10);
    return *end || v <= 0 ? 0 : v;
}

/* Wall time at the end of epoch e (1-based) from the start and the epochs' durations. */
static double epoch_end(double start, const StoreEpoch *rows, int n, int e)
{
    double t = start;
    for (int i = 0; i < n && rows[i].epoch <= e; i++)
        t += isfinite(rows[i].seconds) ? rows[i].seconds : 0;
    return t;
}

static int export_stats(Store *s, TfEvents *w, int64_t id, double start, const StoreEpoch *ep,
                        int n_ep, int *written)
{
    int *epochs = NULL, n = 0;
    if (store_stats_epochs(s, id, &epochs, &n) != STORE_OK)
        return -1;
    int rc = 0;
    double limits[STORE_HIST_BINS], counts[STORE_HIST_BINS];
    for (int e = 0; rc == 0 && e < n; e++)
        for (int m = 0; rc == 0 && m < 2; m++)
            for (int q = 0; rc == 0 && q < 3; q++) {
                StoreLayerStat *rows = NULL;
                int k = 0;
                if (store_stats_get(s, id, epochs[e], (StoreMode)m, (StoreQuantity)q, &rows,
                                    &k) != STORE_OK) {
                    rc = -1;
                    break;
                }
                for (int i = 0; rc == 0 && i < k; i++) {
                    const StoreLayerStat *r = &rows[i];
                    double finite = 0, width = (r->hist_hi - r->hist_lo) / STORE_HIST_BINS;
                    for (int b = 0; b < STORE_HIST_BINS; b++) {
                        counts[b] = r->hist[b];
                        finite += r->hist[b];
                        limits[b] = b + 1 == STORE_HIST_BINS ? r->hist_hi
                                                             : r->hist_lo + (b + 1) * width;
                    }
                    if (finite == 0 || !isfinite(r->mean) || !isfinite(r->std))
                        continue;
                    TfHistogram h = {.min = r->min, .max = r->max, .num = finite,
                                     .sum = r->mean * finite,
                                     .sum_squares = (r->std * r->std + r->mean * r->mean) * finite,
                                     .n_buckets = STORE_HIST_BINS, .limits = limits,
                                     .counts = counts};
                    char tag[STORE_NAME_MAX + 64];
                    snprintf(tag, sizeof tag, "%s/%s/%03d_%s",
                             store_quantity_name(r->quantity), store_mode_name(r->mode),
                             r->layer_index, r->layer_name);
                    rc = tfevents_histogram(w, tag, epochs[e],
                                            epoch_end(start, ep, n_ep, epochs[e]), &h);
                    (*written)++;
                }
                free(rows);
            }
    free(epochs);
    return rc;
}

/* Writes job id's run. Returns 0, or 1 after printing why. */
static int export_job(Store *s, const char *dir, long long id)
{
    StoreJob job;
    if (store_job_get(s, id, &job) != STORE_OK) {
        fprintf(stderr, "initlab export: job %lld: %s\n", id, store_errmsg(s));
        return 1;
    }
    char run[4352], err[1024];
    snprintf(run, sizeof run, "%s/job%lld-%s-%s-s%lld", dir, id, job.model, job.initializer,
             (long long)job.seed);
    double start = job.started_at > 0 ? job.started_at : job.created_at;
    StoreEpoch *ep = NULL;
    StoreStep *steps = NULL;
    int n_ep = 0, n_steps = 0, scalars = 0, histograms = 0, rc = 1;
    TfEvents *w = NULL;
    if (store_epoch_list(s, id, &ep, &n_ep) != STORE_OK ||
        store_steps_list(s, id, &steps, &n_steps) != STORE_OK) {
        fprintf(stderr, "initlab export: job %lld: %s\n", id, store_errmsg(s));
        goto out;
    }
    if (!(w = tfevents_open(run, start, err, sizeof err))) {
        fprintf(stderr, "initlab export: %s\n", err);
        goto out;
    }
    for (int i = 0; i < n_ep; i++) {
        const StoreEpoch *e = &ep[i];
        const struct { const char *tag; double v; } values[] = {
            {"epoch/train_loss", e->train_loss}, {"epoch/train_accuracy", e->train_acc},
            {"epoch/val_loss", e->val_loss}, {"epoch/val_accuracy", e->val_acc},
            {"epoch/lr", e->lr}, {"epoch/seconds", e->seconds},
            {"epoch/images_per_sec", e->images_per_sec}};
        double t = epoch_end(start, ep, n_ep, e->epoch);
        for (size_t k = 0; k < sizeof values / sizeof values[0]; k++)
            if (isfinite(values[k].v)) {
                tfevents_scalar(w, values[k].tag, e->epoch, t, values[k].v);
                scalars++;
            }
    }
    for (int i = 0; i < n_steps; i++) {
        const StoreStep *p = &steps[i];
        double t0 = epoch_end(start, ep, n_ep, p->epoch - 1);
        double t1 = epoch_end(start, ep, n_ep, p->epoch);
        double t = p->steps_per_epoch ? t0 + (t1 - t0) * p->step / p->steps_per_epoch : t1;
        if (isfinite(p->loss)) {
            tfevents_scalar(w, "step/train_loss", p->global_step, t, p->loss);
            scalars++;
        }
        if (isfinite(p->accuracy)) {
            tfevents_scalar(w, "step/train_accuracy", p->global_step, t, p->accuracy);
            scalars++;
        }
    }
    StoreResult res;
    if (store_result_get(s, id, &res) == STORE_OK) {
        const struct { const char *tag; double v; } values[] = {
            {"test/accuracy", res.accuracy}, {"test/precision_macro", res.precision_macro},
            {"test/recall_macro", res.recall_macro}, {"test/f1_macro", res.f1_macro},
            {"test/loss", res.loss}};
        double t = job.finished_at > 0 ? job.finished_at : epoch_end(start, ep, n_ep, res.epoch);
        for (size_t k = 0; k < sizeof values / sizeof values[0]; k++)
            if (isfinite(values[k].v)) {
                tfevents_scalar(w, values[k].tag, res.epoch, t, values[k].v);
                scalars++;
            }
        store_result_deinit(&res);
    }
    if (export_stats(s, w, id, start, ep, n_ep, &histograms) < 0) {
        fprintf(stderr, "initlab export: job %lld: %s\n", id, store_errmsg(s));
        goto out;
    }
    char path[4352];
    snprintf(path, sizeof path, "%s", tfevents_path(w));
    TfEvents *done = w;
    w = NULL;
    if (tfevents_close(done, err, sizeof err) < 0) {
        fprintf(stderr, "initlab export: %s\n", err);
        goto out;
    }
    fprintf(stderr, "job %lld: %d scalars, %d histograms -> %s\n", id, scalars, histograms,
            path);
    rc = 0;
out:
    tfevents_close(w, err, sizeof err);
    free(ep);
    free(steps);
    store_job_deinit(&job);
    return rc;
}

static int cmd_export(int argc, char **argv)
{
    const char *dir = NULL, *db = "state/initlab.db";
    long long *ids = calloc((size_t)argc, sizeof *ids);
    int n = 0;
    if (!ids)
        return 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage_text, stdout);
            free(ids);
            return 0;
        }
        if ((strcmp(argv[i], "--tensorboard") == 0 || strcmp(argv[i], "--db") == 0) &&
            i + 1 < argc) {
            *(argv[i][2] == 't' ? &dir : &db) = argv[i + 1];
            i++;
        } else if (!(ids[n++] = job_id(argv[i]))) {
            fprintf(stderr, "initlab export: \"%s\" is not a job id\n%s", argv[i], usage_text);
            free(ids);
            return 2;
        }
    }
    if (!dir || n == 0) {
        fprintf(stderr, "initlab export: %s\n%s", dir ? "name at least one job" :
                "--tensorboard DIR is required", usage_text);
        free(ids);
        return 2;
    }
    char err[1024];
    Store *s = store_open_existing(db, err, sizeof err);
    if (!s) {
        fprintf(stderr, "initlab export: %s\n", err);
        free(ids);
        return 1;
    }
    int status = 0;
    for (int i = 0; i < n; i++)
        status |= export_job(s, dir, ids[i]);
    store_close(s);
    free(ids);
    return status;
}

COMMAND(export, "export", cmd_export, 49, "export --tensorboard DIR [--db FILE] JOB...",
        "jobs' curves and layer histograms as TensorBoard event files")
