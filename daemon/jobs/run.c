/* run.c — one job from the store through the trainer and back into the store (run.h). */
#include "jobs/run.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "data/split.h"
#include "jobs/report.h"
#include "jobs/scan.h"
#include "util/jsonout.h"
#include "util/log.h"

/* Training progress goes to the store about once a second: each write is an fsync. */
#define STORE_PROGRESS_SECONDS 1.0

typedef struct {
    Store *store;
    const StoreJob *job;
    const JobHooks *hooks;
    double last_store_write;
    StoreLayerStat *stat_rows;
    int stat_cap;
} Ctx;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void on_progress(void *user, const TrainProgress *p)
{
    Ctx *c = user;
    if (c->hooks->progress)
        c->hooks->progress(c->hooks->user, c->job->id, p);
    /* Phase changes (validation, statistics, the final test) are always written, so a
     * finished job's row ends with its last epoch and best validation accuracy. */
    double t = now();
    bool phase_change = strcmp(p->phase, "train") != 0 && strcmp(p->phase, "cache") != 0;
    if (!phase_change && t - c->last_store_write < STORE_PROGRESS_SECONDS)
        return;
    c->last_store_write = t;
    StoreJobProgress sp = {.epoch = p->epoch, .step = p->step,
                           .steps_per_epoch = p->steps_per_epoch,
                           .images_per_sec = p->images_per_sec > 0 ? p->images_per_sec : NAN,
                           .eta_seconds = p->eta_seconds,
                           .best_val_acc = p->best_val_acc >= 0 ? p->best_val_acc : NAN,
                           .best_epoch = p->best_epoch};
    if (store_job_set_progress(c->store, c->job->id, &sp) != STORE_OK)
        log_warn("jobs", "job %lld: progress not stored: %s", (long long)c->job->id,
                 store_errmsg(c->store));
}

static int on_resumed(void *user, int epoch, int step)
{
    Ctx *c = user;
    log_info("jobs", "job %lld resumes after epoch %d (step %d)", (long long)c->job->id,
             epoch, step);
    return store_job_discard_after(c->store, c->job->id, epoch) == STORE_OK ? 0 : -1;
}

static int on_epoch(void *user, const TrainEpoch *e)
{
    Ctx *c = user;
    StoreEpoch row;
    report_train_epoch_to_store(e, &row);
    if (store_epoch_put(c->store, c->job->id, &row) != STORE_OK) {
        log_error("jobs", "job %lld: epoch %d not stored: %s", (long long)c->job->id,
                  e->epoch, store_errmsg(c->store));
        return -1;
    }
    if (c->hooks->epoch)
        c->hooks->epoch(c->hooks->user, c->job->id, e);
    return 0;
}

static int on_stats(void *user, int epoch, const ProbeRow *rows, int n)
{
    Ctx *c = user;
    if (n > c->stat_cap) {
        StoreLayerStat *r = realloc(c->stat_rows, sizeof *r * (size_t)n);
        if (!r)
            return -1;
        c->stat_rows = r;
        c->stat_cap = n;
    }
    for (int i = 0; i < n; i++)
        report_probe_to_store(&rows[i], &c->stat_rows[i]);
    if (store_stats_put(c->store, c->job->id, epoch, c->stat_rows, n) != STORE_OK) {
        log_error("jobs", "job %lld: statistics of epoch %d not stored: %s",
                  (long long)c->job->id, epoch, store_errmsg(c->store));
        return -1;
    }
    return 0;
}

static int on_checkpoint(void *user, const char *kind, int epoch, const char *path,
                         double val_acc)
{
    Ctx *c = user;
    StoreCheckpoint ck = {.job_id = c->job->id, .epoch = epoch, .val_acc = val_acc};
    if (store_checkpoint_kind_parse(kind, &ck.kind) < 0)
        return -1;
    snprintf(ck.path, sizeof ck.path, "%s", path);
    return store_checkpoint_put(c->store, &ck) == STORE_OK ? 0 : -1;
}

static char *matrix_json(const int64_t *m, int rows, int cols)
{
    json_t *a = json_array();
    for (int i = 0; a && i < rows; i++) {
        json_t *row = json_array();
        for (int j = 0; row && j < cols; j++)
            json_array_append_new(row, json_integer(m[(size_t)i * cols + j]));
        json_array_append_new(a, row);
    }
    char *text = a ? json_text(a, JSON_COMPACT) : NULL;
    json_decref(a);
    return text;
}

static char *per_class_json(const double *pc, int K)
{
    json_t *a = json_array();
    for (int k = 0; a && k < K; k++)
        json_array_append_new(a, json_pack("{s:i, s:f, s:f, s:f, s:I}", "class", k,
                                           "precision", pc[4 * k], "recall", pc[4 * k + 1],
                                           "f1", pc[4 * k + 2], "support",
                                           (json_int_t)pc[4 * k + 3]));
    char *text = a ? json_text(a, JSON_COMPACT) : NULL;
    json_decref(a);
    return text;
}

static int on_results(void *user, const TrainResults *r)
{
    Ctx *c = user;
    StoreResult res = {.job_id = c->job->id, .epoch = r->epoch, .accuracy = r->accuracy,
                       .precision_macro = r->precision_macro,
                       .recall_macro = r->recall_macro, .f1_macro = r->f1_macro,
                       .loss = r->loss,
                       .confusion_json = matrix_json(r->confusion, r->classes, r->classes),
                       .per_class_json = per_class_json(r->per_class, r->classes)};
    int rc = res.confusion_json && res.per_class_json &&
                     store_result_put(c->store, &res) == STORE_OK ? 0 : -1;
    free(res.confusion_json);
    free(res.per_class_json);
    return rc;
}

static bool on_should_stop(void *user)
{
    Ctx *c = user;
    return c->hooks->should_stop && c->hooks->should_stop(c->hooks->user, c->job->id);
}

void job_checkpoint_dir(const char *state_dir, int64_t id, char *buf, size_t size)
{
    snprintf(buf, size, "%s/jobs/%lld", state_dir, (long long)id);
}

TrainOutcome job_execute(Store *s, const StoreJob *job, const char *state_dir, int threads,
                         const JobHooks *hooks, char *err, size_t errlen)
{
    static const JobHooks no_hooks = {0};
    JobConfig cfg;
    ConfigError cerr;
    json_error_t jerr;
    DatasetIndex *index = NULL;
    TrainOutcome outcome = TRAIN_FAILED;
    json_t *obj = json_loads(job->config_json ? job->config_json : "", 0, &jerr);
    if (!obj || config_from_json(obj, true, &cfg, &cerr) < 0) {
        snprintf(err, errlen, "stored configuration is invalid: %s %s",
                 obj ? cerr.field : "JSON:", obj ? cerr.message : jerr.text);
        goto finish;
    }
    if (threads > 0)
        cfg.threads = threads;
    index = job_load_dataset(s, cfg.dataset, err, errlen);
    if (!index)
        goto finish;
    char ckpt_dir[4096], cache_dir[4096];
    job_checkpoint_dir(state_dir, job->id, ckpt_dir, sizeof ckpt_dir);
    snprintf(cache_dir, sizeof cache_dir, "%s/cache", state_dir);
    Ctx ctx = {.store = s, .job = job, .hooks = hooks ? hooks : &no_hooks};
    TrainCallbacks cb = {.user = &ctx, .progress = on_progress, .resumed = on_resumed,
                         .epoch_done = on_epoch, .stats = on_stats,
                         .checkpoint = on_checkpoint, .results = on_results,
                         .should_stop = on_should_stop};
    TrainSetup setup = {.cfg = &cfg, .index = index, .cache_dir = cache_dir,
                        .ckpt_dir = ckpt_dir};
    outcome = train_run(&setup, &cb, err, errlen);
    free(ctx.stat_rows);
finish:
    json_decref(obj);
    data_index_free(index);
    if (outcome == TRAIN_DONE)
        store_job_set_status(s, job->id, STORE_JOB_BIT(STORE_JOB_RUNNING), STORE_JOB_DONE,
                             NULL);
    else if (outcome == TRAIN_FAILED)
        store_job_set_status(s, job->id, STORE_JOB_BIT(STORE_JOB_RUNNING), STORE_JOB_FAILED,
                             err);
    return outcome;
}

DatasetIndex *job_load_dataset(Store *s, const char *name, char *err, size_t errlen)
{
    StoreDataset d;
    if (store_dataset_get(s, name, &d) != STORE_OK) {
        snprintf(err, errlen, "dataset \"%s\" is not registered", name);
        return NULL;
    }
    DatasetIndex *index = NULL;
    if (d.status == STORE_DATASET_FAILED) {
        snprintf(err, errlen, "dataset \"%s\" could not be scanned: %s", name,
                 d.error ? d.error : "no reason recorded");
    } else if (d.status != STORE_DATASET_READY) {
        snprintf(err, errlen, "dataset \"%s\" is %s", name, store_dataset_status_name(d.status));
    } else {
        DataSplitFractions f = {d.train_frac, d.val_frac, d.test_frac};
        index = jobs_scan_and_split(d.path, f, (uint64_t)d.seed, err, errlen);
    }
    store_dataset_deinit(&d);
    return index;
}
