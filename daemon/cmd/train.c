/* train.c — `initlab train`: one job in the foreground, in the daemon's database. */
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "cmd/jobargs.h"
#include "data/split.h"
#include "jobs/report.h"
#include "jobs/run.h"
#include "jobs/scan.h"
#include "store/store.h"
#include "train/trainer.h"
#include "util/fileio.h"
#include "util/jsonout.h"
#include "util/stopsig.h"

static const char usage_text[] =
    "usage: initlab train --data DIR --model M --init I [job options] [--preset P]\n"
    "                     [--db FILE] [--split 0.6,0.2,0.2] [--split-seed N] [--json]\n\n"
    "Trains one job in the foreground with a live progress line and records everything in\n"
    "the database the daemon uses (default state/initlab.db; checkpoints and image caches go\n"
    "beside it). The dataset folder is registered under its folder name. Running the same\n"
    "command again after an interruption (Ctrl-C, kill, crash) resumes the unfinished job\n"
    "from its last checkpoint. Ctrl-C or SIGTERM stops at the next step with a checkpoint\n"
    "(exit status 130 or 143); a second one, half a second or more later, exits at once.\n\n"
    "  --data DIR        ImageFolder: one subfolder of JPEGs per class\n"
    "  --db FILE         SQLite database (default state/initlab.db)\n"
    "  --split F,F,F     train/validation/test fractions for a new dataset (0.6,0.2,0.2)\n"
    "  --split-seed N    seed of that split (0)\n"
    "  --json            print the job (as the API shows it) with its epochs and test\n"
    "                    results as JSON at the end; values that are not finite are null\n\n";

static bool should_stop(void *user, int64_t id)
{
    (void)user;
    (void)id;
    return stopsig_received() != 0;
}

static void print_progress(void *user, int64_t id, const TrainProgress *p)
{
    bool tty = isatty(STDERR_FILENO);
    if (strcmp(p->phase, "cache") == 0)
        fprintf(stderr, "job %lld: decoding images %3.0f%%%s", (long long)id,
                100 * p->phase_done, tty ? "\r" : "\n");
    else if (strcmp(p->phase, "train") == 0)
        fprintf(stderr, "job %lld: epoch %d/%d step %d/%d  loss %.4f  acc %.4f  %.1f img/s  "
                "ETA %.0f s   %s", (long long)id, p->epoch, p->epochs, p->step,
                p->steps_per_epoch, p->loss, p->accuracy, p->images_per_sec,
                isfinite(p->eta_seconds) ? p->eta_seconds : 0, tty ? "\r" : "\n");
    else
        fprintf(stderr, "job %lld: %s%s\n", (long long)id, p->phase,
                p->epoch ? "" : " (epoch 0)");
}

static void print_epoch(void *user, int64_t id, const TrainEpoch *e)
{
    fprintf(stderr, "job %lld: epoch %d  loss %.4f  acc %.4f | val loss %.4f  acc %.4f | "
            "lr %.3g  %.1f s  %.1f img/s  data wait %.1f%%\n", (long long)id, e->epoch,
            e->train_loss, e->train_acc, e->val_loss, e->val_acc, e->lr, e->seconds,
            e->images_per_sec, e->seconds > 0 ? 100 * e->data_wait_seconds / e->seconds : 0);
    /* Small data: Keras' moving statistics have not forgotten their start yet. */
    int settle = train_bn_settle_steps(TRAIN_BN_MOMENTUM, TRAIN_BN_SETTLED);
    if (e->bn_layers > 0 && !e->bn_recalibrated && e->steps < settle)
        fprintf(stderr, "job %lld: note: after %lld steps the BatchNorm moving statistics "
                "(momentum %.2f) still hold %.0f%% of their initial values; they settle "
                "after about %d steps. Until then validation runs in inference mode on "
                "lagging statistics and can stay near chance while training learns; "
                "--bn-recalibrate N recomputes them over N training batches before each "
                "evaluation\n", (long long)id, (long long)e->steps, TRAIN_BN_MOMENTUM,
                100 * pow(TRAIN_BN_MOMENTUM, (double)e->steps), settle);
}

/* Registers dir under its folder name, or reuses the registration of the same path. */
static int ensure_dataset(Store *s, const char *dir, const char *split_text, int64_t seed,
                          char *name, size_t name_size, char *err, size_t errlen)
{
    char real[PATH_MAX];
    if (!realpath(dir, real)) {
        snprintf(err, errlen, "--data %s: no such directory", dir);
        return -1;
    }
    char copy[PATH_MAX];
    snprintf(copy, sizeof copy, "%s", real);
    snprintf(name, name_size, "%s", basename(copy));
    StoreDataset d;
    if (store_dataset_get(s, name, &d) == STORE_OK) {
        int same = strcmp(d.path, real) == 0 && d.status == STORE_DATASET_READY;
        store_dataset_deinit(&d);
        if (same)
            return 0;
        if (strcmp(d.path, real) != 0) {
            snprintf(err, errlen, "a dataset named \"%s\" is registered for another folder "
                     "(%.300s)", name, d.path);
            return -1;
        }
        store_dataset_delete(s, name);
    }
    DataSplitFractions f = DATA_SPLIT_DEFAULT;
    if (split_text && data_split_parse(split_text, &f, err, errlen) < 0)
        return -1;
    StoreDatasetNew nd = {.name = name, .path = real, .train_frac = f.train,
                          .val_frac = f.val, .test_frac = f.test, .seed = seed};
    int64_t id;
    if (store_dataset_insert(s, &nd, &id) != STORE_OK) {
        snprintf(err, errlen, "registering %.300s: %s", real, store_errmsg(s));
        return -1;
    }
    fprintf(stderr, "dataset %s: scanning %s\n", name, real);
    return jobs_scan_dataset(s, id, err, errlen);
}

/* An unfinished job with exactly this configuration, to resume; 0 when there is none. */
static int64_t find_unfinished(Store *s, const JobConfig *cfg, const char *config_json)
{
    StoreJobFilter f = {.status_mask = STORE_JOB_BIT(STORE_JOB_RUNNING) |
                                       STORE_JOB_BIT(STORE_JOB_CANCELLED) |
                                       STORE_JOB_BIT(STORE_JOB_FAILED),
                        .model = cfg->model, .initializer = cfg->init,
                        .dataset = cfg->dataset, .limit = 1000, .newest_first = 1};
    StoreJob *rows = NULL;
    int n = 0;
    int64_t id = 0;
    if (store_job_list(s, &f, &rows, &n, NULL) != STORE_OK)
        return 0;
    for (int i = 0; i < n && !id; i++)
        if (rows[i].config_json && strcmp(rows[i].config_json, config_json) == 0)
            id = rows[i].id;
    store_jobs_free(rows, n);
    return id;
}

/* Prints the test results of a finished job on one line (stderr, with the progress). */
static void print_results(Store *s, int64_t id)
{
    StoreResult r;
    if (store_result_get(s, id, &r) != STORE_OK)
        return;
    char acc[NUM_TEXT_MAX], p[NUM_TEXT_MAX], rec[NUM_TEXT_MAX], f1[NUM_TEXT_MAX],
        loss[NUM_TEXT_MAX];
    num_format_double(r.accuracy, acc);
    num_format_double(r.precision_macro, p);
    num_format_double(r.recall_macro, rec);
    num_format_double(r.f1_macro, f1);
    num_format_double(r.loss, loss);
    fprintf(stderr, "job %lld: test accuracy %s, precision %s, recall %s, F1 %s (macro), "
            "loss %s (the checkpoint of epoch %d, the best validation accuracy)\n",
            (long long)id, acc, p, rec, f1, loss, r.epoch);
    store_result_deinit(&r);
}

/* Prints the job in its API form (jobs/report.h) with its epochs and test results added;
 * values that are not finite (a diverging run) print as null. */
static void print_json(Store *s, int64_t id)
{
    StoreJob job;
    StoreResult res;
    StoreEpoch *epochs = NULL;
    int n = 0;
    if (store_job_get(s, id, &job) != STORE_OK) {
        fprintf(stderr, "initlab train: job %lld: %s\n", (long long)id, store_errmsg(s));
        return;
    }
    json_t *out = report_job(&job, NULL);
    store_job_deinit(&job);
    json_t *rows = json_array();
    if (!out || !rows) {
        json_decref(out);
        json_decref(rows);
        fprintf(stderr, "initlab train: out of memory printing job %lld\n", (long long)id);
        return;
    }
    if (store_epoch_list(s, id, &epochs, &n) == STORE_OK)
        for (int i = 0; i < n; i++)
            json_array_append_new(rows, report_epoch(&epochs[i]));
    free(epochs);
    json_object_set_new(out, "epochs", rows);
    if (store_result_get(s, id, &res) == STORE_OK) {
        json_t *confusion = json_loads(res.confusion_json, 0, NULL);
        json_object_set_new(out, "results", json_pack("{s:i, s:o, s:o, s:o, s:o, s:o, s:o}",
            "epoch", res.epoch, "accuracy", report_number(res.accuracy),
            "precision_macro", report_number(res.precision_macro),
            "recall_macro", report_number(res.recall_macro),
            "f1_macro", report_number(res.f1_macro), "loss", report_number(res.loss),
            "confusion", confusion ? confusion : json_array()));
        /* how the moving statistics the test ran with were made, as the API says it */
        json_t *cfg = json_object_get(out, "config");
        json_object_set_new(json_object_get(out, "results"), "bn_recalibrate",
                            json_integer(json_integer_value(json_object_get(cfg,
                                                                            "bn_recalibrate"))));
        store_result_deinit(&res);
    }
    char *text = json_text(out, JSON_INDENT(2));
    if (text)
        puts(text);
    else
        fprintf(stderr, "initlab train: out of memory printing job %lld\n", (long long)id);
    free(text);
    json_decref(out);
}

static int cmd_train(int argc, char **argv)
{
    const char *data = NULL, *db = "state/initlab.db", *split = NULL, *split_seed = "0",
               *json_flag = NULL;
    const CmdFlag own[] = {{"data", true, &data}, {"db", true, &db}, {"split", true, &split},
                           {"split-seed", true, &split_seed}, {"json", false, &json_flag}};
    char err[1024];
    json_t *obj = json_object();
    int rc = jobargs_parse(argc, argv, own, 5, obj, err, sizeof err);
    if (rc == 1) {
        fputs(usage_text, stdout);
        jobargs_print_options(stdout);
        json_decref(obj);
        return 0;
    }
    if (rc < 0 || !data) {
        fprintf(stderr, "initlab train: %s\n%s", rc < 0 ? err : "--data DIR is required",
                usage_text);
        json_decref(obj);
        return 2;
    }
    json_t *threads = json_object_get(obj, "threads");
    if (json_is_integer(threads))
        startup_wait_policy((int)json_integer_value(threads));
    char dbdir[PATH_MAX], copy[PATH_MAX];
    snprintf(copy, sizeof copy, "%s", db);
    snprintf(dbdir, sizeof dbdir, "%s", dirname(copy));
    Store *s = NULL;
    int status = 1;
    if (file_mkdirs(dbdir, err, sizeof err) < 0 || !(s = store_open(db, err, sizeof err))) {
        fprintf(stderr, "initlab train: %s\n", err);
        json_decref(obj);
        return 1;
    }

    char name[256];
    JobConfig cfg;
    ConfigError cerr;
    if (ensure_dataset(s, data, split, atoll(split_seed), name, sizeof name, err,
                       sizeof err) < 0) {
        fprintf(stderr, "initlab train: %s\n", err);
        goto out;
    }
    json_object_set_new(obj, "dataset", json_string(name));
    if (config_from_json(obj, true, &cfg, &cerr) < 0) {
        fprintf(stderr, "initlab train: --%s: %s\n", cerr.field, cerr.message);
        status = 2;
        goto out;
    }
    char *config_json = config_to_text(&cfg);
    if (!config_json)
        goto out;
    if (job_ids_fence(s, dbdir, err, sizeof err) < 0) {
        fprintf(stderr, "initlab train: %s\n", err);
        free(config_json);
        goto out;
    }
    int64_t id = find_unfinished(s, &cfg, config_json);
    if (id) {
        fprintf(stderr, "job %lld: resuming the unfinished job with this configuration\n",
                (long long)id);
        store_job_set_status(s, id, 0, STORE_JOB_RUNNING, NULL);
    } else {
        StoreJobNew nj = {.priority = cfg.priority, .config_json = config_json,
                          .dataset = cfg.dataset, .model = cfg.model,
                          .initializer = cfg.init, .seed = cfg.seed, .epochs = cfg.epochs,
                          .start_running = 1};
        if (store_job_insert(s, &nj, &id) != STORE_OK) {
            fprintf(stderr, "initlab train: %s\n", store_errmsg(s));
            free(config_json);
            goto out;
        }
        fprintf(stderr, "job %lld: %s %s seed %lld on %s, %d epochs\n", (long long)id,
                cfg.model, cfg.init, (long long)cfg.seed, cfg.dataset, cfg.epochs);
    }
    free(config_json);

    StoreJob job;
    if (store_job_get(s, id, &job) != STORE_OK)
        goto out;
    if (stopsig_install("initlab train", false) < 0) {
        fprintf(stderr, "initlab train: signal pipe: %s\n", strerror(errno));
        store_job_deinit(&job);
        goto out;
    }
    JobHooks hooks = {.progress = print_progress, .epoch = print_epoch,
                      .should_stop = should_stop};
    TrainOutcome outcome = job_execute(s, &job, dbdir, 0, &hooks, err, sizeof err);
    store_job_deinit(&job);
    if (outcome == TRAIN_STOPPED) {
        store_job_set_status(s, id, STORE_JOB_BIT(STORE_JOB_RUNNING), STORE_JOB_CANCELLED,
                             "interrupted; run the same command again to resume");
        fprintf(stderr, "job %lld: interrupted; checkpoint saved, run the same command to "
                "resume\n", (long long)id);
        status = 128 + stopsig_received();
    } else if (outcome == TRAIN_FAILED) {
        fprintf(stderr, "job %lld failed: %s\n", (long long)id, err);
    } else {
        status = 0;
        print_results(s, id);
    }
    if (json_flag)
        print_json(s, id);
out:
    json_decref(obj);
    store_close(s);
    return status;
}

COMMAND(train, "train", cmd_train, 40, "train --data DIR --model M --init I [...]",
        "train one job in the foreground (same database as the daemon)")
