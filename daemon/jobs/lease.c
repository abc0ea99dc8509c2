/* lease.c — leases of remote workers, their reports and checkpoints, the workers seen, and
 * the reaper that queues again the jobs whose lease ended (lease.h). */
#include "jobs/lease.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "jobs/report.h"
#include "jobs/run.h"
#include "jobs/wire.h"
#include "train/checkpoint.h"
#include "util/fileio.h"
#include "util/log.h"

#define MAX_WORKERS 1024
#define REAP_PERIOD_MS 1000

typedef struct {
    char worker[STORE_NAME_MAX], host[STORE_NAME_MAX];
    int64_t job_id;
    char phase[16];
    int threads;
    double seen;           /* CLOCK_MONOTONIC seconds */
} Seen;

struct LeaseBook {
    LeaseConfig cfg;
    char *db_path, *state_dir, *data_root;
    pthread_mutex_t lock;  /* guards seen, n_seen, refused, stopping */
    pthread_cond_t wake;
    Seen *seen;
    int n_seen;
    long long refused;
    bool stopping;
    pthread_t reaper;
    bool reaper_started;
};

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void changed(LeaseBook *b, Store *s, int64_t id)
{
    if (b->cfg.changed)
        b->cfg.changed(b->cfg.user, s, id);
}

/* ---- the reaper --------------------------------------------------------------------- */

static void *reaper_main(void *arg)
{
    LeaseBook *b = arg;
    char err[512];
    Store *s = store_open(b->db_path, err, sizeof err);
    if (!s)
        log_error("lease", "reaper: %s", err);
    char last[1024] = "";
    pthread_mutex_lock(&b->lock);
    while (!b->stopping) {
        pthread_mutex_unlock(&b->lock);
        int64_t *ids = NULL;
        int n = 0;
        if (s && store_lease_expire(s, wall(), &ids, &n) != STORE_OK) {
            if (strcmp(last, store_errmsg(s)) != 0)
                log_warn("lease", "ending expired leases: %s", store_errmsg(s));
            snprintf(last, sizeof last, "%s", store_errmsg(s));
        }
        for (int i = 0; i < n; i++) {
            log_warn("lease", "job %lld: its worker's lease ended without a heartbeat; queued "
                     "again (it resumes from its last checkpoint)", (long long)ids[i]);
            changed(b, s, ids[i]);
        }
        free(ids);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += REAP_PERIOD_MS / 1000;
        pthread_mutex_lock(&b->lock);
        if (!b->stopping)
            pthread_cond_timedwait(&b->wake, &b->lock, &until);
    }
    pthread_mutex_unlock(&b->lock);
    store_close(s);
    return NULL;
}

LeaseBook *lease_book_create(const LeaseConfig *cfg, char *err, size_t errlen)
{
    LeaseBook *b = calloc(1, sizeof *b);
    if (!b) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    b->cfg = *cfg;
    b->db_path = strdup(cfg->db_path);
    b->state_dir = strdup(cfg->state_dir);
    b->data_root = cfg->data_root ? strdup(cfg->data_root) : NULL;
    b->seen = calloc(MAX_WORKERS, sizeof *b->seen);
    pthread_mutex_init(&b->lock, NULL);
    pthread_cond_init(&b->wake, NULL);
    if (!b->db_path || !b->state_dir || (cfg->data_root && !b->data_root) || !b->seen) {
        snprintf(err, errlen, "out of memory");
        lease_book_free(b);
        return NULL;
    }
    if (pthread_create(&b->reaper, NULL, reaper_main, b) != 0) {
        snprintf(err, errlen, "cannot start the lease reaper thread");
        lease_book_free(b);
        return NULL;
    }
    b->reaper_started = true;
    return b;
}

void lease_book_free(LeaseBook *b)
{
    if (!b)
        return;
    pthread_mutex_lock(&b->lock);
    b->stopping = true;
    pthread_cond_broadcast(&b->wake);
    pthread_mutex_unlock(&b->lock);
    if (b->reaper_started)
        pthread_join(b->reaper, NULL);
    pthread_mutex_destroy(&b->lock);
    pthread_cond_destroy(&b->wake);
    free(b->seen);
    free(b->db_path);
    free(b->state_dir);
    free(b->data_root);
    free(b);
}

/* ---- who is connected --------------------------------------------------------------- */

void lease_seen(LeaseBook *b, const char *worker, const char *host, int64_t job_id,
                const char *phase, int threads)
{
    if (!worker || !worker[0])
        return;
    double t = mono();
    pthread_mutex_lock(&b->lock);
    Seen *slot = NULL, *oldest = NULL;
    for (int i = 0; i < b->n_seen && !slot; i++) {
        if (strcmp(b->seen[i].worker, worker) == 0)
            slot = &b->seen[i];
        else if (!oldest || b->seen[i].seen < oldest->seen)
            oldest = &b->seen[i];
    }
    if (!slot) {
        slot = b->n_seen < MAX_WORKERS ? &b->seen[b->n_seen++] : oldest;
        memset(slot, 0, sizeof *slot);
        snprintf(slot->worker, sizeof slot->worker, "%s", worker);
    }
    if (host)
        snprintf(slot->host, sizeof slot->host, "%s", host);
    if (job_id >= 0)
        slot->job_id = job_id;
    if (phase)
        snprintf(slot->phase, sizeof slot->phase, "%s", phase);
    if (threads > 0)
        slot->threads = threads;
    slot->seen = t;
    pthread_mutex_unlock(&b->lock);
}

json_t *lease_workers(LeaseBook *b, int *count)
{
    json_t *a = json_array();
    int n = 0;
    double t = mono(), window = 3 * b->cfg.heartbeat_seconds;
    pthread_mutex_lock(&b->lock);
    for (int i = 0; a && i < b->n_seen; i++) {
        const Seen *w = &b->seen[i];
        if (t - w->seen > window)
            continue;
        n++;
        json_array_append_new(
            a, json_pack("{s:s, s:s, s:o, s:o, s:i, s:f}", "worker", w->worker, "host",
                         w->host, "job_id", w->job_id ? json_integer(w->job_id) : json_null(),
                         "phase", w->job_id && w->phase[0] ? json_string(w->phase)
                                                           : json_null(),
                         "threads", w->threads, "seconds_ago", round((t - w->seen) * 10) / 10));
    }
    pthread_mutex_unlock(&b->lock);
    if (count)
        *count = n;
    return a;
}

void lease_workers_count(LeaseBook *b, int *count)
{
    json_decref(lease_workers(b, count));
}

void lease_phase(LeaseBook *b, int64_t id, char *buf, size_t size)
{
    buf[0] = '\0';
    double t = mono(), window = 3 * b->cfg.heartbeat_seconds;
    pthread_mutex_lock(&b->lock);
    for (int i = 0; i < b->n_seen; i++)
        if (b->seen[i].job_id == id && t - b->seen[i].seen <= window)
            snprintf(buf, size, "%s", b->seen[i].phase);
    pthread_mutex_unlock(&b->lock);
}

long long lease_refused_count(LeaseBook *b)
{
    pthread_mutex_lock(&b->lock);
    long long n = b->refused;
    pthread_mutex_unlock(&b->lock);
    return n;
}

/* Maps a failed store call to a LeaseResult with its message; a refused attempt is
 * counted and logged. */
static LeaseResult store_result(LeaseBook *b, Store *s, int rc, int64_t id, const char *what,
                                char *err, size_t errlen)
{
    snprintf(err, errlen, "%s", store_errmsg(s));
    if (rc == STORE_CONFLICT || rc == STORE_NOT_FOUND) {
        pthread_mutex_lock(&b->lock);
        b->refused++;
        pthread_mutex_unlock(&b->lock);
        log_warn("lease", "job %lld: %s refused: %s", (long long)id, what, err);
        return LEASE_GONE;
    }
    if (rc == STORE_INVALID)
        return LEASE_INVALID;
    return rc == STORE_UNAVAILABLE ? LEASE_UNAVAILABLE : LEASE_ERROR;
}

/* ---- leasing ------------------------------------------------------------------------ */

/* The dataset part of a lease reply for dataset `name`; NULL with a message. */
static json_t *dataset_json(LeaseBook *b, Store *s, const char *name, char *err, size_t errlen)
{
    StoreDataset d;
    if (store_dataset_get(s, name, &d) != STORE_OK) {
        snprintf(err, errlen, "dataset \"%s\" is not registered", name);
        return NULL;
    }
    StoreDatasetFile *files = NULL;
    int n = 0;
    json_t *o = NULL;
    if (d.status != STORE_DATASET_READY) {
        snprintf(err, errlen, "dataset \"%s\" is %s", name, store_dataset_status_name(d.status));
        goto out;
    }
    if (store_dataset_files(s, d.id, -1, &files, &n) != STORE_OK) {
        snprintf(err, errlen, "reading the files of dataset \"%s\": %s", name, store_errmsg(s));
        goto out;
    }
    uint64_t h;
    char digest[17];
    wire_files_digest_begin(&h);
    for (int i = 0; i < n; i++)
        wire_files_digest_add(&h, files[i].relpath, files[i].size);
    wire_files_digest_end(h, digest);
    const char *rel = d.path;
    size_t root = b->data_root ? strlen(b->data_root) : 0;
    if (root && strncmp(d.path, b->data_root, root) == 0 && d.path[root] == '/')
        rel = d.path + root + 1;
    else if (root && strcmp(d.path, b->data_root) == 0)
        rel = ".";
    json_t *classes = json_loads(d.class_names_json ? d.class_names_json : "[]", 0, NULL);
    o = json_pack("{s:s, s:s, s:s, s:{s:f, s:f, s:f}, s:I, s:o, s:I, s:{s:I, s:I, s:I}, s:s}",
                  "name", d.name, "path", d.path, "relpath", rel, "split", "train",
                  d.train_frac, "val", d.val_frac, "test", d.test_frac, "seed",
                  (json_int_t)d.seed, "classes", classes ? classes : json_array(), "n_files",
                  (json_int_t)d.n_files, "n_split", "train",
                  (json_int_t)d.n_split[STORE_SPLIT_TRAIN], "val",
                  (json_int_t)d.n_split[STORE_SPLIT_VAL], "test",
                  (json_int_t)d.n_split[STORE_SPLIT_TEST], "files_digest", digest);
    if (!o)
        snprintf(err, errlen, "out of memory");
out:
    store_dataset_files_free(files, n);
    store_dataset_deinit(&d);
    return o;
}

/* {"latest": {epoch, bytes} | null, "best": ...} of job id. */
static json_t *checkpoints_json(Store *s, int64_t id)
{
    json_t *o = json_object();
    for (int k = STORE_CKPT_LATEST; o && k <= STORE_CKPT_BEST; k++) {
        StoreCheckpoint c;
        json_t *v = json_null();
        struct stat st;
        if (store_checkpoint_get(s, id, (StoreCheckpointKind)k, &c) == STORE_OK &&
            stat(c.path, &st) == 0)
            v = json_pack("{s:i, s:I}", "epoch", c.epoch, "bytes", (json_int_t)st.st_size);
        json_object_set_new(o, store_checkpoint_kind_name((StoreCheckpointKind)k), v);
    }
    return o;
}

LeaseResult lease_grant(LeaseBook *b, Store *s, const LeaseRequest *r, json_t **out,
                        char *err, size_t errlen)
{
    *out = NULL;
    StoreLeaseRequest sr = {.job_id = r->job_id, .host = r->host, .worker = r->worker,
                            .slurm_job_id = r->slurm_job_id, .ttl = b->cfg.lease_seconds};
    StoreJob job;
    int rc = store_lease_claim(s, &sr, &job);
    if (rc == STORE_NOT_FOUND) {
        snprintf(err, errlen, "%s", store_errmsg(s));
        return LEASE_NONE;
    }
    if (rc == STORE_CONFLICT) {
        snprintf(err, errlen, "%s", store_errmsg(s));
        return LEASE_GONE;
    }
    if (rc != STORE_OK)
        return store_result(b, s, rc, r->job_id, "lease", err, errlen);
    json_t *dataset = dataset_json(b, s, job.dataset, err, errlen);
    if (!dataset) {
        /* Nothing can train this job: fail it as a local worker would. */
        store_job_end_attempt(s, job.id, job.attempt_uid, STORE_JOB_FAILED, err);
        changed(b, s, job.id);
        store_job_deinit(&job);
        return LEASE_NONE;
    }
    StoreEpoch *epochs = NULL;
    int n_epochs = 0;
    json_t *stored = json_array();
    if (store_epoch_list(s, job.id, &epochs, &n_epochs) == STORE_OK)
        for (int i = 0; stored && i < n_epochs; i++)
            json_array_append_new(stored, json_integer(epochs[i].epoch));
    free(epochs);
    json_t *config = json_loads(job.config_json ? job.config_json : "{}", 0, NULL);
    *out = json_pack("{s:s, s:{s:I, s:s, s:i, s:s, s:o, s:s, s:s, s:s, s:I, s:i, s:b}, s:o, "
                     "s:o, s:o, s:f, s:f}",
                     "lease", job.attempt_uid, "job", "id", (json_int_t)job.id, "uid", job.uid,
                     "attempt", job.attempts, "attempt_uid", job.attempt_uid, "config",
                     config ? config : json_object(), "dataset", job.dataset, "model",
                     job.model, "initializer", job.initializer, "seed", (json_int_t)job.seed,
                     "epochs", job.epochs, "pre_identity", job.pre_identity, "dataset",
                     dataset, "epochs_stored", stored ? stored : json_array(), "checkpoints",
                     checkpoints_json(s, job.id), "lease_seconds", b->cfg.lease_seconds,
                     "heartbeat_seconds", b->cfg.heartbeat_seconds);
    lease_seen(b, r->worker, r->host, job.id, "start", r->threads);
    log_info("lease", "job %lld leased to %s on %s (attempt %d%s%s)", (long long)job.id,
             r->worker ? r->worker : "?", r->host ? r->host : "?", job.attempts,
             r->slurm_job_id && r->slurm_job_id[0] ? ", Slurm job " : "",
             r->slurm_job_id ? r->slurm_job_id : "");
    changed(b, s, job.id);
    store_job_deinit(&job);
    if (!*out) {
        snprintf(err, errlen, "out of memory");
        return LEASE_ERROR;
    }
    return LEASE_OK;
}

LeaseResult lease_heartbeat(LeaseBook *b, Store *s, int64_t id, const char *lease,
                            const char *worker, const json_t *body, bool *stop, char *err,
                            size_t errlen)
{
    *stop = false;
    StoreJobProgress p;
    const json_t *pv = json_object_get(body, "progress");
    if (pv && wire_progress_parse(pv, &p, err, errlen) < 0)
        return LEASE_INVALID;
    const char *phase = json_string_value(json_object_get(body, "phase"));
    int rc = store_lease_renew(s, id, lease, b->cfg.lease_seconds, pv ? &p : NULL, stop);
    if (rc != STORE_OK)
        return store_result(b, s, rc, id, "heartbeat", err, errlen);
    lease_seen(b, worker, NULL, id, phase ? phase : "", 0);
    return LEASE_OK;
}

/* Sets aside the daemon's checkpoint files of job id (a run starting from scratch). */
static void set_aside_files(LeaseBook *b, int64_t id)
{
    char dir[4096], quarantine[4096], path[4200], label[64], err[512];
    job_checkpoint_dir(b->state_dir, id, dir, sizeof dir);
    job_quarantine_dir(b->state_dir, quarantine, sizeof quarantine);
    static const char *const kinds[] = {"latest", "best"};
    for (int k = 0; k < 2; k++) {
        snprintf(path, sizeof path, "%s/%s.ckpt", dir, kinds[k]);
        if (access(path, F_OK) != 0)
            continue;
        snprintf(label, sizeof label, "job%lld-%s", (long long)id, kinds[k]);
        if (checkpoint_set_aside(path, quarantine, label, "its job started again from "
                                 "scratch on a remote worker", NULL, 0, err, sizeof err) < 0)
            log_warn("lease", "job %lld: %s", (long long)id, err);
    }
}

/* The writes of one report, inside the attempt's transaction. */
static int report_writes(LeaseBook *b, Store *s, int64_t id, const char *kind,
                         const json_t *body, StoreJobStatus *end_to, char *why, size_t whylen,
                         char *err, size_t errlen, bool *invalid)
{
    *invalid = false;
    if (strcmp(kind, "epoch") == 0) {
        StoreEpoch e;
        if (wire_epoch_parse(json_object_get(body, "epoch"), &e, err, errlen) < 0) {
            *invalid = true;
            return STORE_INVALID;
        }
        return store_epoch_put(s, id, &e);
    }
    if (strcmp(kind, "stats") == 0) {
        const json_t *rows = json_object_get(body, "rows");
        const json_t *ev = json_object_get(body, "epoch");
        if (!json_is_array(rows) || !json_is_integer(ev) || json_integer_value(ev) < 0 ||
            json_integer_value(ev) > 1000000) {
            snprintf(err, errlen, "stats: {\"epoch\": E, \"rows\": [...]} required");
            *invalid = true;
            return STORE_INVALID;
        }
        size_t n = json_array_size(rows);
        StoreLayerStat *st = calloc(n + 1, sizeof *st);
        if (!st)
            return STORE_ERROR;
        for (size_t i = 0; i < n; i++)
            if (wire_stat_parse(json_array_get(rows, i), &st[i], err, errlen) < 0) {
                free(st);
                *invalid = true;
                return STORE_INVALID;
            }
        int rc = store_stats_put(s, id, (int)json_integer_value(ev), st, (int)n);
        free(st);
        return rc;
    }
    if (strcmp(kind, "steps") == 0) {
        const json_t *rows = json_object_get(body, "steps");
        if (!json_is_array(rows) || json_array_size(rows) > 4096) {
            snprintf(err, errlen, "steps: {\"steps\": [...]} (at most 4096) required");
            *invalid = true;
            return STORE_INVALID;
        }
        size_t n = json_array_size(rows);
        StoreStep *st = calloc(n + 1, sizeof *st);
        if (!st)
            return STORE_ERROR;
        for (size_t i = 0; i < n; i++)
            if (wire_step_parse(json_array_get(rows, i), &st[i], err, errlen) < 0) {
                free(st);
                *invalid = true;
                return STORE_INVALID;
            }
        int rc = store_steps_put(s, id, st, (int)n);
        if (rc == STORE_OK && b->cfg.steps)
            b->cfg.steps(b->cfg.user, id, st, (int)n);
        free(st);
        return rc;
    }
    if (strcmp(kind, "results") == 0) {
        StoreResult r;
        if (wire_results_parse(json_object_get(body, "results"), &r, err, errlen) < 0) {
            *invalid = true;
            return STORE_INVALID;
        }
        r.job_id = id;
        int rc = store_result_put(s, &r);
        store_result_deinit(&r);
        return rc;
    }
    if (strcmp(kind, "resumed") == 0) {
        const json_t *ev = json_object_get(body, "epoch");
        if (!json_is_integer(ev) || json_integer_value(ev) < 0) {
            snprintf(err, errlen, "resumed: {\"epoch\": E, \"step\": S} required");
            *invalid = true;
            return STORE_INVALID;
        }
        log_info("lease", "job %lld resumes after epoch %lld on its worker", (long long)id,
                 (long long)json_integer_value(ev));
        const json_t *sv = json_object_get(body, "step");
        int rc = store_job_discard_after(s, id, (int)json_integer_value(ev));
        if (rc == STORE_OK)
            rc = store_steps_discard_after(s, id, (int)json_integer_value(ev),
                                           json_is_integer(sv) ? (int)json_integer_value(sv) : 0);
        return rc;
    }
    if (strcmp(kind, "from-scratch") == 0) {
        int rc = store_job_discard_after(s, id, 0);
        if (rc == STORE_OK)
            rc = store_steps_discard_after(s, id, 0, 0);
        if (rc == STORE_OK)
            rc = store_checkpoint_forget(s, id, -1);
        if (rc == STORE_OK)
            set_aside_files(b, id);
        return rc;
    }
    if (strcmp(kind, "end") == 0) {
        const char *outcome = json_string_value(json_object_get(body, "outcome"));
        const char *error = json_string_value(json_object_get(body, "error"));
        StoreJob now;
        int rc = store_job_get(s, id, &now);
        if (rc)
            return rc;
        bool cancel = now.stop_requested;
        store_job_deinit(&now);
        const json_t *pv = json_object_get(body, "progress");
        StoreJobProgress p;
        if (pv && wire_progress_parse(pv, &p, err, errlen) < 0) {
            *invalid = true;
            return STORE_INVALID;
        }
        if (pv && (rc = store_job_set_progress(s, id, &p)) != STORE_OK)
            return rc;
        if (outcome && strcmp(outcome, "done") == 0) {
            *end_to = STORE_JOB_DONE;
        } else if (outcome && strcmp(outcome, "failed") == 0) {
            *end_to = STORE_JOB_FAILED;
            snprintf(why, whylen, "%s", error ? error : "failed on its worker");
        } else if (outcome && strcmp(outcome, "stopped") == 0) {
            *end_to = cancel ? STORE_JOB_CANCELLED : STORE_JOB_QUEUED;
            snprintf(why, whylen, "cancelled");
        } else {
            snprintf(err, errlen, "end: outcome must be \"done\", \"failed\" or \"stopped\"");
            *invalid = true;
            return STORE_INVALID;
        }
        return STORE_OK;
    }
    snprintf(err, errlen, "unknown report \"%s\"", kind);
    *invalid = true;
    return STORE_INVALID;
}

LeaseResult lease_report(LeaseBook *b, Store *s, int64_t id, const char *lease,
                         const char *kind, const json_t *body, char *err, size_t errlen)
{
    int rc = store_attempt_begin(s, id, lease);
    if (rc != STORE_OK)
        return store_result(b, s, rc, id, kind, err, errlen);
    StoreJobStatus end_to = STORE_JOB_STATUS_COUNT;
    char why[1024] = "";
    bool invalid;
    rc = report_writes(b, s, id, kind, body, &end_to, why, sizeof why, err, errlen, &invalid);
    if (rc != STORE_OK) {
        store_attempt_end(s, rc);
        if (invalid)
            return LEASE_INVALID;
        return store_result(b, s, rc, id, kind, err, errlen);
    }
    if ((rc = store_attempt_end(s, STORE_OK)) != STORE_OK)
        return store_result(b, s, rc, id, kind, err, errlen);
    if (end_to != STORE_JOB_STATUS_COUNT) {
        /* The end itself is fenced by store_job_end_attempt (one statement). */
        rc = store_job_end_attempt(s, id, lease, end_to,
                                   end_to == STORE_JOB_DONE || end_to == STORE_JOB_QUEUED
                                       ? NULL
                                       : why);
        if (rc != STORE_OK)
            return store_result(b, s, rc, id, kind, err, errlen);
        const json_t *secs = json_object_get(body, "seconds");
        const json_t *rep = json_object_get(body, "report_seconds");
        log_info("lease", "job %lld: its remote attempt ended: %s", (long long)id,
                 store_job_status_name(end_to));
        if (json_is_number(secs) && json_is_number(rep) && json_number_value(secs) > 0)
            log_info("lease", "job %lld: %.1f s on its worker, %.3f s (%.2f%%) of it reporting",
                     (long long)id, json_number_value(secs), json_number_value(rep),
                     100 * json_number_value(rep) / json_number_value(secs));
        changed(b, s, id);
    }
    return LEASE_OK;
}

/* The job's identity for checking an uploaded checkpoint; -1 with a message. */
static int upload_identity(Store *s, int64_t id, CheckpointIdentity *want, char *err,
                           size_t errlen)
{
    StoreJob job;
    if (store_job_get(s, id, &job) != STORE_OK) {
        snprintf(err, errlen, "%s", store_errmsg(s));
        return -1;
    }
    int rc = job_identity(&job, want, err, errlen);
    store_job_deinit(&job);
    return rc;
}

LeaseResult lease_checkpoint_put(LeaseBook *b, Store *s, int64_t id, const char *lease,
                                 const char *kind, const char *tmp_path, double val_acc,
                                 char *err, size_t errlen)
{
    StoreCheckpointKind k;
    if (store_checkpoint_kind_parse(kind, &k) < 0) {
        snprintf(err, errlen, "kind: \"%s\" is not latest or best", kind);
        return LEASE_INVALID;
    }
    CheckpointIdentity want;
    if (upload_identity(s, id, &want, err, errlen) < 0)
        return LEASE_INVALID;
    CheckpointInfo info;
    char ierr[512];
    int got = checkpoint_inspect(tmp_path, &info, ierr, sizeof ierr);
    LeaseResult res = LEASE_INVALID;
    char why[1024];
    if (got < 0) {
        snprintf(err, errlen, "the uploaded checkpoint is damaged: %s", ierr);
        goto out;
    }
    if (checkpoint_judge(tmp_path, &info, &want, false, why, sizeof why) != CHECKPOINT_OWN) {
        snprintf(err, errlen, "the uploaded checkpoint is not this job's: %s", why);
        goto out;
    }
    if (strcmp(info.identity.attempt_uid, lease) != 0) {
        snprintf(err, errlen, "the uploaded checkpoint was written by attempt %s, not by "
                 "this lease's", info.identity.attempt_uid);
        goto out;
    }
    char dir[3900], path[STORE_PATH_MAX];
    job_checkpoint_dir(b->state_dir, id, dir, sizeof dir);
    snprintf(path, sizeof path, "%s/%s.ckpt", dir, kind);
    if (file_mkdirs(dir, err, errlen) < 0) {
        res = LEASE_ERROR;
        goto out;
    }
    /* Checked, moved and recorded in the attempt's transaction: no other attempt can
     * start meanwhile, so a superseded attempt never replaces the current one's file. */
    int rc = store_attempt_begin(s, id, lease);
    if (rc != STORE_OK) {
        res = store_result(b, s, rc, id, "checkpoint", err, errlen);
        goto out;
    }
    if (file_install(tmp_path, path, err, errlen) < 0) {
        store_attempt_end(s, STORE_ERROR);
        res = LEASE_ERROR;
        goto out;
    }
    StoreCheckpoint c = {.job_id = id, .kind = k, .epoch = info.epoch, .val_acc = val_acc,
                         .crc = info.crc};
    snprintf(c.path, sizeof c.path, "%s", path);
    snprintf(c.attempt_uid, sizeof c.attempt_uid, "%s", lease);
    rc = store_attempt_end(s, store_checkpoint_put(s, &c));
    res = rc == STORE_OK ? LEASE_OK : store_result(b, s, rc, id, "checkpoint", err, errlen);
out:
    checkpoint_info_deinit(&info);
    return res;
}

LeaseResult lease_checkpoint_path(LeaseBook *b, Store *s, int64_t id, const char *lease,
                                  const char *kind, char *path, size_t size, char *err,
                                  size_t errlen)
{
    (void)b;
    StoreCheckpointKind k;
    if (store_checkpoint_kind_parse(kind, &k) < 0) {
        snprintf(err, errlen, "kind: \"%s\" is not latest or best", kind);
        return LEASE_INVALID;
    }
    int rc = store_attempt_begin(s, id, lease);
    if (rc != STORE_OK)
        return store_result(b, s, rc, id, "checkpoint download", err, errlen);
    StoreCheckpoint c;
    rc = store_checkpoint_get(s, id, k, &c);
    store_attempt_end(s, STORE_ERROR); /* a read: nothing to commit */
    if (rc == STORE_NOT_FOUND) {
        snprintf(err, errlen, "job %lld has no %s checkpoint", (long long)id, kind);
        return LEASE_NONE;
    }
    if (rc != STORE_OK) {
        snprintf(err, errlen, "%s", store_errmsg(s));
        return LEASE_ERROR;
    }
    snprintf(path, size, "%s", c.path);
    return LEASE_OK;
}
