/* run.c — one job from the store through the trainer and back into the store, and the
 * job files of the state directory (run.h). */
#include "jobs/run.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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
    bool unavailable;        /* the store refused a write: its database file is gone */
    char unavailable_why[1024];
    StoreStep pending[TRAIN_STEP_POINTS + 1]; /* curve points not yet stored */
    int n_pending;
} Ctx;

/* Notes a store failure: when the database file was deleted or replaced, the run stops
 * at its next step (nothing more can be recorded). */
static void note_store_failure(Ctx *c)
{
    if (store_errcode(c->store) == STORE_UNAVAILABLE && !c->unavailable) {
        c->unavailable = true;
        snprintf(c->unavailable_why, sizeof c->unavailable_why, "%s", store_errmsg(c->store));
    }
}

/* Stores the curve points gathered since the last write (one transaction). */
static int flush_steps(Ctx *c)
{
    if (c->n_pending == 0)
        return 0;
    int rc = store_steps_put(c->store, c->job->id, c->pending, c->n_pending);
    c->n_pending = 0;
    if (rc == STORE_OK)
        return 0;
    log_error("jobs", "job %lld: training curve not stored: %s", (long long)c->job->id,
              store_errmsg(c->store));
    note_store_failure(c);
    return -1;
}

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
    flush_steps(c);
    StoreJobProgress sp;
    report_train_progress_to_store(p, &sp);
    if (store_job_set_progress(c->store, c->job->id, &sp) != STORE_OK && !c->unavailable) {
        log_warn("jobs", "job %lld: progress not stored: %s", (long long)c->job->id,
                 store_errmsg(c->store));
        note_store_failure(c);
    }
}

static int on_resumed(void *user, int epoch, int step)
{
    Ctx *c = user;
    log_info("jobs", "job %lld resumes after epoch %d (step %d)", (long long)c->job->id,
             epoch, step);
    if (store_job_discard_after(c->store, c->job->id, epoch) == STORE_OK &&
        store_steps_discard_after(c->store, c->job->id, epoch, step) == STORE_OK)
        return 0;
    note_store_failure(c);
    return -1;
}

/* From scratch: the rows of an earlier run go (epoch 0's are written again), and so do the
 * records of its checkpoints, which the trainer set aside. */
static int on_from_scratch(void *user)
{
    Ctx *c = user;
    if (store_job_discard_after(c->store, c->job->id, 0) == STORE_OK &&
        store_steps_discard_after(c->store, c->job->id, 0, 0) == STORE_OK &&
        store_checkpoint_forget(c->store, c->job->id, -1) == STORE_OK)
        return 0;
    note_store_failure(c);
    return -1;
}

/* The store must hold epochs 1..epoch of the job: a checkpoint ahead of the records (a
 * database restored from an older backup) would leave them missing for good. */
static int on_may_resume(void *user, int epoch, int step, char *why, size_t n)
{
    Ctx *c = user;
    StoreEpoch *rows = NULL;
    int count = 0;
    if (store_epoch_list(c->store, c->job->id, &rows, &count) != STORE_OK) {
        log_error("jobs", "job %lld: reading its epochs: %s", (long long)c->job->id,
                  store_errmsg(c->store));
        note_store_failure(c);
        return -1;
    }
    int covered = 0;
    for (int i = 0; i < count; i++)
        covered += rows[i].epoch >= 1 && rows[i].epoch <= epoch;
    free(rows);
    if (covered == epoch)
        return 0;
    snprintf(why, n, "the database holds %d of the %d epochs that checkpoint covers (was "
             "it restored from an older backup?)", covered, epoch);
    return 1;
}

static int on_step_point(void *user, const TrainStep *p)
{
    Ctx *c = user;
    if (c->n_pending == (int)(sizeof c->pending / sizeof c->pending[0]) && flush_steps(c) < 0)
        return -1;
    c->pending[c->n_pending++] = (StoreStep){.global_step = p->global_step, .epoch = p->epoch,
                                             .step = p->step,
                                             .steps_per_epoch = p->steps_per_epoch,
                                             .loss = p->loss, .accuracy = p->accuracy};
    if (c->hooks->step)
        c->hooks->step(c->hooks->user, c->job->id, &c->pending[c->n_pending - 1]);
    return 0;
}

static int on_epoch(void *user, const TrainEpoch *e)
{
    Ctx *c = user;
    if (flush_steps(c) < 0)
        return -1;
    StoreEpoch row;
    report_train_epoch_to_store(e, &row);
    if (store_epoch_put(c->store, c->job->id, &row) != STORE_OK) {
        log_error("jobs", "job %lld: epoch %d not stored: %s", (long long)c->job->id,
                  e->epoch, store_errmsg(c->store));
        note_store_failure(c);
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
        note_store_failure(c);
        return -1;
    }
    return 0;
}

static int on_checkpoint(void *user, const char *kind, int epoch, const char *path,
                         double val_acc, uint32_t crc)
{
    Ctx *c = user;
    StoreCheckpoint ck = {.job_id = c->job->id, .epoch = epoch, .val_acc = val_acc};
    if (store_checkpoint_kind_parse(kind, &ck.kind) < 0)
        return -1;
    snprintf(ck.path, sizeof ck.path, "%s", path);
    snprintf(ck.attempt_uid, sizeof ck.attempt_uid, "%s", c->job->attempt_uid);
    ck.crc = crc;
    if (store_checkpoint_put(c->store, &ck) == STORE_OK)
        return 0;
    log_error("jobs", "job %lld: %s checkpoint not recorded: %s", (long long)c->job->id, kind,
              store_errmsg(c->store));
    note_store_failure(c);
    return -1;
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

int job_results_row(int64_t job_id, const TrainResults *r, StoreResult *out)
{
    *out = (StoreResult){.job_id = job_id, .epoch = r->epoch, .accuracy = r->accuracy,
                         .precision_macro = r->precision_macro,
                         .recall_macro = r->recall_macro, .f1_macro = r->f1_macro,
                         .loss = r->loss,
                         .confusion_json = matrix_json(r->confusion, r->classes, r->classes),
                         .per_class_json = per_class_json(r->per_class, r->classes)};
    if (out->confusion_json && out->per_class_json)
        return 0;
    store_result_deinit(out);
    return -1;
}

static int on_results(void *user, const TrainResults *r)
{
    Ctx *c = user;
    StoreResult res;
    if (job_results_row(c->job->id, r, &res) < 0)
        return -1;
    int rc = store_result_put(c->store, &res) == STORE_OK ? 0 : -1;
    store_result_deinit(&res);
    return rc;
}

static bool on_should_stop(void *user)
{
    Ctx *c = user;
    return c->unavailable ||
           (c->hooks->should_stop && c->hooks->should_stop(c->hooks->user, c->job->id));
}

/* A job's stop request, asked by the scan that starts it (before the trainer runs). */
typedef struct {
    const JobHooks *hooks;
    int64_t id;
} StopCheck;

static bool stop_requested(void *user)
{
    const StopCheck *c = user;
    return c->hooks->should_stop && c->hooks->should_stop(c->hooks->user, c->id);
}

void job_checkpoint_dir(const char *state_dir, int64_t id, char *buf, size_t size)
{
    snprintf(buf, size, "%s/jobs/%lld", state_dir, (long long)id);
}

void job_quarantine_dir(const char *state_dir, char *buf, size_t size)
{
    snprintf(buf, size, "%s/quarantine", state_dir);
}

bool job_temp_is_stale(const char *name, long *pid)
{
    const char *tmp = strstr(name, ".tmp.");
    while (tmp && strstr(tmp + 1, ".tmp."))
        tmp = strstr(tmp + 1, ".tmp.");
    if (!tmp || !tmp[5])
        return false;
    char *end;
    errno = 0;
    long p = strtol(tmp + 5, &end, 10);
    if (*end || errno || p <= 0)
        return false;
    if (pid)
        *pid = p;
    return p == (long)getpid() || (kill((pid_t)p, 0) < 0 && errno == ESRCH);
}

/* Removes the stale temporary files of dir (a job's checkpoint folder). */
static void remove_stale_temps(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!job_temp_is_stale(e->d_name, NULL))
            continue;
        char path[4352];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (unlink(path) == 0)
            log_info("jobs", "removed %s, left by a write that never finished", path);
    }
    closedir(d);
}

bool job_folder_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 18)
        return false;
    for (const char *p = name; *p; p++)
        if (!isdigit((unsigned char)*p))
            return false;
    return true;
}

int job_ids_fence(Store *s, const char *state_dir, char *err, size_t errlen)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/jobs", state_dir);
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errlen, "%.300s: %s", dir, strerror(errno));
        return -1;
    }
    long long top = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (job_folder_name(e->d_name)) {
            long long id = atoll(e->d_name);
            if (id > top)
                top = id;
        }
    closedir(d);
    if (top > 0 && store_job_reserve_ids(s, top) != STORE_OK) {
        snprintf(err, errlen, "keeping job ids above %lld (the folders of %.300s): %s", top,
                 dir, store_errmsg(s));
        return -1;
    }
    return 0;
}

int job_identity(const StoreJob *job, CheckpointIdentity *id, char *err, size_t errlen)
{
    memset(id, 0, sizeof *id);
    snprintf(id->job_uid, sizeof id->job_uid, "%s", job->uid);
    snprintf(id->attempt_uid, sizeof id->attempt_uid, "%s", job->attempt_uid);
    id->job_id = job->id;
    id->attempt = job->attempts;
    if (!job->uid[0]) {
        snprintf(err, errlen, "job %lld has no uid (was its row written by hand?): without "
                 "one its checkpoints cannot be told from another job's", (long long)job->id);
        return -1;
    }
    if (checkpoint_config_hash(job->config_json ? job->config_json : "", id->config_hash) < 0) {
        snprintf(err, errlen, "job %lld: its stored configuration is not a JSON object",
                 (long long)job->id);
        return -1;
    }
    return 0;
}

/* What to do with a checkpoint file found in the folder of deleted job `job`: true to
 * remove it (the job's own, or damaged), false to set it aside (another job's; why says
 * whose). */
static bool deleted_jobs_file(const char *path, const StoreJob *job,
                              const CheckpointIdentity *want, char *why, size_t n)
{
    CheckpointInfo info;
    char err[512];
    int got = checkpoint_inspect(path, &info, err, sizeof err);
    bool own = got == -2 ||
               (got == 0 && checkpoint_judge(path, &info, want, job->pre_identity, why, n) !=
                                CHECKPOINT_FOREIGN);
    if (got == -1)
        snprintf(why, n, "%s", err);
    checkpoint_info_deinit(&info);
    return own;
}

int job_remove_files(const char *state_dir, const StoreJob *job, char *err, size_t errlen)
{
    char dir[4096], quarantine[4096];
    job_checkpoint_dir(state_dir, job->id, dir, sizeof dir);
    job_quarantine_dir(state_dir, quarantine, sizeof quarantine);
    CheckpointIdentity want;
    if (job_identity(job, &want, err, errlen) < 0)
        return -1;
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errlen, "%.300s: %s", dir, strerror(errno));
        return -1;
    }
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char path[4352], why[1024] = "", label[64], ierr[512];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        const char *kind = strcmp(e->d_name, "latest.ckpt") == 0 ? "latest"
                           : strcmp(e->d_name, "best.ckpt") == 0 ? "best"
                                                                 : NULL;
        bool remove = job_temp_is_stale(e->d_name, NULL);
        if (kind && deleted_jobs_file(path, job, &want, why, sizeof why)) {
            remove = true;
        } else if (kind) {
            snprintf(label, sizeof label, "job%lld-%s", (long long)job->id, kind);
            if (checkpoint_set_aside(path, quarantine, label, why, NULL, 0, ierr,
                                     sizeof ierr) == 0) {
                log_warn("jobs", "%s; set aside in %s", why, quarantine);
            } else {
                snprintf(err, errlen, "%s", ierr);
                rc = -1;
            }
        }
        if (remove && unlink(path) < 0) {
            snprintf(err, errlen, "%.300s: %s", path, strerror(errno));
            rc = -1;
        }
    }
    closedir(d);
    if (rmdir(dir) < 0 && errno != ENOENT && errno != ENOTEMPTY && errno != EEXIST) {
        snprintf(err, errlen, "%.300s: %s", dir, strerror(errno));
        rc = -1;
    }
    return rc;
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
    CheckpointIdentity identity;
    if (job_identity(job, &identity, err, errlen) < 0)
        goto finish;
    StopCheck stop = {.hooks = hooks ? hooks : &no_hooks, .id = job->id};
    bool cancelled;
    index = job_load_dataset(s, cfg.dataset, stop_requested, &stop, &cancelled, err, errlen);
    if (!index) {
        if (cancelled)
            outcome = TRAIN_STOPPED;  /* queued again or cancelled, as asked */
        goto finish;
    }
    checkpoint_data_hash(index, identity.data_hash);
    char ckpt_dir[4096], cache_dir[4096], quarantine_dir[4096];
    job_checkpoint_dir(state_dir, job->id, ckpt_dir, sizeof ckpt_dir);
    job_quarantine_dir(state_dir, quarantine_dir, sizeof quarantine_dir);
    snprintf(cache_dir, sizeof cache_dir, "%s/cache", state_dir);
    remove_stale_temps(ckpt_dir);
    Ctx ctx = {.store = s, .job = job, .hooks = hooks ? hooks : &no_hooks};
    TrainCallbacks cb = {.user = &ctx, .progress = on_progress, .resumed = on_resumed,
                         .from_scratch = on_from_scratch, .may_resume = on_may_resume,
                         .epoch_done = on_epoch, .step_point = on_step_point,
                         .stats = on_stats, .checkpoint = on_checkpoint,
                         .results = on_results, .should_stop = on_should_stop};
    TrainSetup setup = {.cfg = &cfg, .index = index, .cache_dir = cache_dir,
                        .ckpt_dir = ckpt_dir, .quarantine_dir = quarantine_dir,
                        .identity = &identity, .adopt_legacy = job->pre_identity};
    outcome = train_run(&setup, &cb, err, errlen);
    flush_steps(&ctx);
    free(ctx.stat_rows);
    if (ctx.unavailable) {
        snprintf(err, errlen, "%s", ctx.unavailable_why);
        outcome = TRAIN_FAILED;
    }
finish:
    json_decref(obj);
    data_index_free(index);
    if (outcome == TRAIN_DONE || outcome == TRAIN_FAILED) {
        StoreJobStatus to = outcome == TRAIN_DONE ? STORE_JOB_DONE : STORE_JOB_FAILED;
        if (store_job_end_attempt(s, job->id, job->attempt_uid, to,
                                  outcome == TRAIN_DONE ? NULL : err) != STORE_OK)
            log_warn("jobs", "job %lld: its end (%s) is not recorded: %s", (long long)job->id,
                     store_job_status_name(to), store_errmsg(s));
    }
    return outcome;
}

DatasetIndex *job_load_dataset(Store *s, const char *name, bool (*cancel)(void *user),
                               void *cancel_user, bool *cancelled, char *err, size_t errlen)
{
    if (cancelled)
        *cancelled = false;
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
        index = jobs_scan_registered_cancellable(d.path, f, (uint64_t)d.seed, cancel,
                                                 cancel_user, cancelled, err, errlen);
    }
    store_dataset_deinit(&d);
    return index;
}
