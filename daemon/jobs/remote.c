/* remote.c — a job trained for a remote daemon: lease, dataset check, trainer callbacks as
 * HTTP reports, heartbeats (remote.h). */
#include "jobs/remote.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "data/names.h"
#include "jobs/report.h"
#include "jobs/run.h"
#include "jobs/scan.h"
#include "jobs/wire.h"
#include "store/store.h"
#include "train/checkpoint.h"
#include "train/config.h"
#include "train/trainer.h"
#include "util/fileio.h"
#include "util/httpc.h"
#include "util/jsonout.h"
#include "util/log.h"

/* What one attempt holds; shared with the heartbeat thread where said. */
typedef struct {
    const RemoteConfig *cfg;
    HttpClient *http;          /* the training thread's */
    int64_t id;
    char lease[STORE_UID_LEN + 1];
    char lease_header[64];     /* "Initlab-Lease: ..." */
    double lease_seconds, heartbeat_seconds;
    json_t *epochs_stored;     /* borrowed from the lease reply */
    double report_seconds;
    StoreStep steps[TRAIN_STEP_POINTS + 1]; /* curve points not yet sent */
    int n_steps;
    double steps_sent_at;      /* when the last points were sent (mono) */
    /* Shared (lock): */
    pthread_mutex_t lock;
    pthread_cond_t wake;
    StoreJobProgress progress;
    bool have_progress;
    char phase[16];
    bool cancel;               /* a heartbeat said the job was cancelled */
    bool lost;                 /* the daemon refused the attempt */
    char lost_why[512];
    bool done;                 /* the heartbeat thread must end */
} Remote;

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void mark_lost(Remote *r, const char *why)
{
    pthread_mutex_lock(&r->lock);
    if (!r->lost) {
        r->lost = true;
        snprintf(r->lost_why, sizeof r->lost_why, "%s", why);
        log_warn("worker", "job %lld: the daemon refused this attempt: %s", (long long)r->id,
                 why);
    }
    pthread_mutex_unlock(&r->lock);
}

static bool is_lost(Remote *r)
{
    pthread_mutex_lock(&r->lock);
    bool lost = r->lost;
    pthread_mutex_unlock(&r->lock);
    return lost;
}

/* The "detail" of a problem reply, or its body. */
static void problem_detail(const HttpResponse *resp, char *buf, size_t n)
{
    json_t *o = json_loads(resp->body ? resp->body : "", 0, NULL);
    const char *d = json_string_value(json_object_get(o, "detail"));
    snprintf(buf, n, "HTTP %d: %s", resp->status, d ? d : (resp->body ? resp->body : ""));
    json_decref(o);
}

/* Sends one request of the attempt, retrying while the daemon cannot be reached (a
 * restart) for up to the lease time. Returns the HTTP status (the reply in *resp), or -1
 * with err set when it never answered. */
static int attempt_request(Remote *r, HttpClient *h, const char *method, const char *path,
                           const char *body, const char *upload, const char *download,
                           HttpResponse *resp, char *err, size_t errlen)
{
    const char *headers[] = {r->lease_header, NULL};
    double give_up = mono() + r->lease_seconds;
    for (int attempt = 0;; attempt++) {
        if (httpc_request(h, method, path, headers, "application/json", body,
                          body ? strlen(body) : 0, upload, download, resp, err, errlen) == 0 &&
            resp->status != 502 && resp->status != 503 && resp->status != 504)
            return resp->status;
        if (resp->status)
            httpc_response_deinit(resp);
        if (mono() > give_up || (r->cfg->stop && *r->cfg->stop && attempt > 2))
            return -1;
        if (attempt == 0)
            log_warn("worker", "job %lld: %s; retrying until the lease would end",
                     (long long)r->id, err);
        usleep(attempt < 5 ? 200000 : 1000000);
    }
}

/* POSTs a report (body: a new reference, stolen) and waits for it to be stored. Returns 0,
 * or -1 after marking the attempt lost or logging the failure. */
static int report(Remote *r, const char *kind, json_t *body)
{
    if (!body)
        return -1;
    if (is_lost(r)) {
        json_decref(body);
        return -1;
    }
    char *text = json_text(body, JSON_COMPACT);
    json_decref(body);
    if (!text)
        return -1;
    char path[128], err[512];
    snprintf(path, sizeof path, "/api/v1/worker/jobs/%lld/reports/%s", (long long)r->id, kind);
    double t0 = mono();
    HttpResponse resp;
    int status = attempt_request(r, r->http, "POST", path, text, NULL, NULL, &resp, err,
                                 sizeof err);
    r->report_seconds += mono() - t0;
    free(text);
    if (status == 204 || status == 200) {
        httpc_response_deinit(&resp);
        return 0;
    }
    if (status < 0) {
        mark_lost(r, err);
        return -1;
    }
    problem_detail(&resp, err, sizeof err);
    httpc_response_deinit(&resp);
    if (status == 409)
        mark_lost(r, err);
    else
        log_error("worker", "job %lld: report %s refused: %s", (long long)r->id, kind, err);
    return -1;
}

/* ---- the trainer's callbacks ---------------------------------------------------------- */

static void on_progress(void *user, const TrainProgress *p)
{
    Remote *r = user;
    pthread_mutex_lock(&r->lock);
    report_train_progress_to_store(p, &r->progress);
    r->have_progress = true;
    snprintf(r->phase, sizeof r->phase, "%s", p->phase);
    pthread_mutex_unlock(&r->lock);
}

static int on_resumed(void *user, int epoch, int step)
{
    Remote *r = user;
    log_info("worker", "job %lld resumes after epoch %d (step %d)", (long long)r->id, epoch,
             step);
    return report(r, "resumed", json_pack("{s:i, s:i}", "epoch", epoch, "step", step));
}

static int on_from_scratch(void *user)
{
    return report(user, "from-scratch", json_object());
}

/* The daemon must hold epochs 1..epoch (as run.c's on_may_resume asks its store). */
static int on_may_resume(void *user, int epoch, int step, char *why, size_t n)
{
    Remote *r = user;
    int covered = 0;
    size_t i;
    json_t *e;
    json_array_foreach(r->epochs_stored, i, e) covered +=
        json_integer_value(e) >= 1 && json_integer_value(e) <= epoch;
    if (covered == epoch)
        return 0;
    snprintf(why, n, "the daemon holds %d of the %d epochs that checkpoint covers", covered,
             epoch);
    return 1;
}

/* Sends the curve points gathered since the last send (one "steps" report). */
static int send_steps(Remote *r)
{
    if (r->n_steps == 0)
        return 0;
    json_t *a = json_array();
    for (int i = 0; a && i < r->n_steps; i++)
        if (json_array_append_new(a, wire_step(&r->steps[i])) < 0) {
            json_decref(a);
            a = NULL;
        }
    r->n_steps = 0;
    r->steps_sent_at = mono();
    return a ? report(r, "steps", json_pack("{s:o}", "steps", a)) : -1;
}

/* The intra-epoch curve goes to the daemon about once a heartbeat interval (and before
 * each epoch's record), so the dashboard draws it live as for a local job. */
static int on_step_point(void *user, const TrainStep *p)
{
    Remote *r = user;
    if (r->n_steps == (int)(sizeof r->steps / sizeof r->steps[0]) && send_steps(r) < 0)
        return -1;
    r->steps[r->n_steps++] = (StoreStep){.global_step = p->global_step, .epoch = p->epoch,
                                         .step = p->step, .steps_per_epoch = p->steps_per_epoch,
                                         .loss = p->loss, .accuracy = p->accuracy};
    if (mono() - r->steps_sent_at >= r->heartbeat_seconds)
        return send_steps(r);
    return 0;
}

static int on_epoch(void *user, const TrainEpoch *e)
{
    if (send_steps(user) < 0)
        return -1;
    StoreEpoch row;
    report_train_epoch_to_store(e, &row);
    return report(user, "epoch", json_pack("{s:o}", "epoch", wire_epoch(&row)));
}

static int on_stats(void *user, int epoch, const ProbeRow *rows, int n)
{
    Remote *r = user;
    json_t *a = json_array();
    for (int i = 0; a && i < n; i++) {
        StoreLayerStat s;
        report_probe_to_store(&rows[i], &s);
        if (json_array_append_new(a, wire_stat(&s)) < 0) {
            json_decref(a);
            a = NULL;
        }
    }
    if (!a)
        return -1;
    return report(r, "stats", json_pack("{s:i, s:o}", "epoch", epoch, "rows", a));
}

static int on_checkpoint(void *user, const char *kind, int epoch, const char *path,
                         double val_acc, uint32_t crc)
{
    Remote *r = user;
    (void)epoch;
    (void)crc;
    if (is_lost(r))
        return -1;
    char url[256], num[NUM_TEXT_MAX], err[512];
    num_format_double(val_acc, num);
    snprintf(url, sizeof url, "/api/v1/worker/jobs/%lld/checkpoints/%s?val_acc=%s",
             (long long)r->id, kind, num);
    double t0 = mono();
    HttpResponse resp;
    int status = attempt_request(r, r->http, "PUT", url, NULL, path, NULL, &resp, err,
                                 sizeof err);
    r->report_seconds += mono() - t0;
    if (status == 204) {
        httpc_response_deinit(&resp);
        return 0;
    }
    if (status < 0) {
        mark_lost(r, err);
        return -1;
    }
    problem_detail(&resp, err, sizeof err);
    httpc_response_deinit(&resp);
    if (status == 409)
        mark_lost(r, err);
    else
        log_error("worker", "job %lld: the %s checkpoint was refused: %s", (long long)r->id,
                  kind, err);
    return -1;
}

static int on_results(void *user, const TrainResults *t)
{
    Remote *r = user;
    StoreResult row;
    if (job_results_row(r->id, t, &row) < 0)
        return -1;
    json_t *w = wire_results(&row);
    store_result_deinit(&row);
    return report(r, "results", json_pack("{s:o}", "results", w));
}

static bool on_should_stop(void *user)
{
    Remote *r = user;
    pthread_mutex_lock(&r->lock);
    bool stop = r->cancel || r->lost || (r->cfg->stop && *r->cfg->stop);
    pthread_mutex_unlock(&r->lock);
    return stop;
}

/* ---- heartbeats ----------------------------------------------------------------------- */

static void *heartbeat_main(void *arg)
{
    Remote *r = arg;
    char err[512];
    HttpClientConfig hc = {.base_url = r->cfg->server, .token = r->cfg->token,
                           .ca_file = r->cfg->ca_file, .timeout_s = 30};
    HttpClient *h = httpc_create(&hc, err, sizeof err);
    if (!h) {
        log_error("worker", "heartbeats: %s", err);
        return NULL;
    }
    char path[128];
    snprintf(path, sizeof path, "/api/v1/worker/jobs/%lld/heartbeat", (long long)r->id);
    pthread_mutex_lock(&r->lock);
    while (!r->done && !r->lost) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        long long ns = until.tv_nsec + (long long)(r->heartbeat_seconds * 1e9);
        until.tv_sec += (time_t)(ns / 1000000000LL);
        until.tv_nsec = (long)(ns % 1000000000LL);
        pthread_cond_timedwait(&r->wake, &r->lock, &until);
        if (r->done || r->lost)
            break;
        json_t *body = json_pack("{s:s, s:s}", "worker", r->cfg->worker, "phase", r->phase);
        if (body && r->have_progress)
            json_object_set_new(body, "progress", wire_progress(&r->progress));
        pthread_mutex_unlock(&r->lock);
        char *text = body ? json_text(body, JSON_COMPACT) : NULL;
        json_decref(body);
        HttpResponse resp;
        const char *headers[] = {r->lease_header, NULL};
        int rc = text ? httpc_request(h, "POST", path, headers, "application/json", text,
                                      strlen(text), NULL, NULL, &resp, err, sizeof err)
                      : -1;
        free(text);
        if (rc < 0) {
            log_warn("worker", "job %lld: heartbeat: %s", (long long)r->id, err);
        } else if (resp.status == 200) {
            json_t *o = json_loads(resp.body, 0, NULL);
            bool stop = json_is_true(json_object_get(o, "stop"));
            json_decref(o);
            if (stop) {
                pthread_mutex_lock(&r->lock);
                if (!r->cancel)
                    log_info("worker", "job %lld was cancelled: stopping at the next step",
                             (long long)r->id);
                r->cancel = true;
                pthread_mutex_unlock(&r->lock);
            }
        } else if (resp.status == 409) {
            problem_detail(&resp, err, sizeof err);
            mark_lost(r, err);
        } else {
            problem_detail(&resp, err, sizeof err);
            log_warn("worker", "job %lld: heartbeat: %s", (long long)r->id, err);
        }
        if (rc == 0)
            httpc_response_deinit(&resp);
        pthread_mutex_lock(&r->lock);
    }
    pthread_mutex_unlock(&r->lock);
    httpc_free(h);
    return NULL;
}

/* ---- one attempt ---------------------------------------------------------------------- */

/* Scans the dataset of the lease under the data root and checks it is the daemon's.
 * Returns the index, or NULL with a message. */
static DatasetIndex *load_dataset(Remote *r, const json_t *ds, char *err, size_t errlen)
{
    const char *rel = json_string_value(json_object_get(ds, "relpath"));
    const char *abs = json_string_value(json_object_get(ds, "path"));
    const json_t *split = json_object_get(ds, "split");
    char path[4096];
    if (r->cfg->data_root && rel)
        snprintf(path, sizeof path, "%s/%s", r->cfg->data_root, rel);
    else
        snprintf(path, sizeof path, "%s", abs ? abs : "");
    DataSplitFractions f = {json_number_value(json_object_get(split, "train")),
                            json_number_value(json_object_get(split, "val")),
                            json_number_value(json_object_get(split, "test"))};
    uint64_t seed = (uint64_t)json_integer_value(json_object_get(ds, "seed"));
    char serr[1024];
    DatasetIndex *index = jobs_scan_and_split(path, f, seed, serr, sizeof serr);
    if (!index) {
        snprintf(err, errlen, "dataset %.200s is not usable on this worker (%.1000s): %.700s",
                 json_string_value(json_object_get(ds, "name")), path, serr);
        return NULL;
    }
    /* The same dataset: class names, split counts and every file's path and size. */
    const json_t *classes = json_object_get(ds, "classes");
    const json_t *n_split = json_object_get(ds, "n_split");
    uint64_t h;
    char digest[17];
    wire_files_digest_begin(&h);
    for (int i = 0; i < index->n_files; i++) {
        char *name = data_name_text(index->paths[i]);
        if (!name) {
            data_index_free(index);
            snprintf(err, errlen, "out of memory");
            return NULL;
        }
        wire_files_digest_add(&h, name, index->sizes[i]);
        free(name);
    }
    wire_files_digest_end(h, digest);
    const char *want = json_string_value(json_object_get(ds, "files_digest"));
    bool same = (int)json_array_size(classes) == index->n_classes && want &&
                strcmp(want, digest) == 0;
    for (int c = 0; same && c < index->n_classes; c++) {
        char *name = data_name_text(index->class_names[c]);
        same = name && strcmp(name, json_string_value(json_array_get(classes, (size_t)c))
                                        ? json_string_value(json_array_get(classes, (size_t)c))
                                        : "") == 0;
        free(name);
    }
    static const char *const splits[] = {"train", "val", "test"};
    for (int s = 0; same && s < 3; s++) {
        int n = 0;
        for (int c = 0; c < index->n_classes; c++)
            n += data_index_count(index, c, s);
        same = n == json_integer_value(json_object_get(n_split, splits[s]));
    }
    if (!same) {
        snprintf(err, errlen, "dataset %.200s at %.1000s on this worker is not the daemon's: %d classes "
                 "and %d files (digest %s) here, %zu classes and %lld files (digest %s) on "
                 "the daemon; the worker's --data-root must hold the same copy",
                 json_string_value(json_object_get(ds, "name")), path, index->n_classes,
                 index->n_files, digest, json_array_size(classes),
                 (long long)json_integer_value(json_object_get(ds, "n_files")),
                 want ? want : "?");
        data_index_free(index);
        return NULL;
    }
    return index;
}

/* Fetches the daemon's checkpoints into the attempt's local folder. */
static int fetch_checkpoints(Remote *r, const char *dir, const json_t *have, char *err,
                             size_t errlen)
{
    if (file_mkdirs(dir, err, errlen) < 0)
        return -1;
    static const char *const kinds[] = {"latest", "best"};
    for (int k = 0; k < 2; k++) {
        char path[4200], url[128];
        snprintf(path, sizeof path, "%s/%s.ckpt", dir, kinds[k]);
        unlink(path);
        if (!json_is_object(json_object_get(have, kinds[k])))
            continue;
        snprintf(url, sizeof url, "/api/v1/worker/jobs/%lld/checkpoints/%s", (long long)r->id,
                 kinds[k]);
        HttpResponse resp;
        double t0 = mono();
        int status = attempt_request(r, r->http, "GET", url, NULL, NULL, path, &resp, err,
                                     errlen);
        r->report_seconds += mono() - t0;
        if (status == 200) {
            httpc_response_deinit(&resp);
            continue;
        }
        if (status > 0) {
            problem_detail(&resp, err, errlen);
            httpc_response_deinit(&resp);
        }
        unlink(path);
        if (status == 404)
            continue; /* gone meanwhile: train without it */
        return -1;
    }
    return 0;
}

/* Removes the files of folder dir, then the folder. */
static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[4352];
        snprintf(path, sizeof path, "%.4000s/%.255s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

/* Removes the local checkpoint folders of earlier attempts of job uid (in
 * <cache>/jobs/<uid>-<attempt uid>) that a killed worker left. An attempt still running
 * there was superseded: losing its folder stops it at its next checkpoint. */
static void remove_earlier_attempts(const char *jobs_dir, const char *uid, const char *own)
{
    DIR *d = opendir(jobs_dir);
    if (!d)
        return;
    size_t n = strlen(uid);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, uid, n) != 0 || e->d_name[n] != '-' ||
            strcmp(e->d_name + n + 1, own) == 0)
            continue;
        char path[4352];
        snprintf(path, sizeof path, "%.4000s/%.255s", jobs_dir, e->d_name);
        remove_dir(path);
    }
    closedir(d);
}

/* Ends the attempt: {"outcome", "error", "seconds", "report_seconds", "progress"}. */
static void send_end(Remote *r, const char *outcome, const char *error, double seconds)
{
    send_steps(r);
    json_t *body = json_pack("{s:s, s:f, s:f}", "outcome", outcome, "seconds", seconds,
                             "report_seconds", r->report_seconds);
    if (body && error)
        json_object_set_new(body, "error", json_string(error));
    pthread_mutex_lock(&r->lock);
    if (body && r->have_progress)
        json_object_set_new(body, "progress", wire_progress(&r->progress));
    pthread_mutex_unlock(&r->lock);
    report(r, "end", body);
}

/* Runs the leased job of reply `lease` (the lease reply). */
static RemoteOutcome run_attempt(Remote *r, const json_t *lease, RemoteStats *stats,
                                 double t_start)
{
    const json_t *job = json_object_get(lease, "job");
    const json_t *ds = json_object_get(lease, "dataset");
    char err[2048] = "";
    JobConfig cfg;
    ConfigError cerr;
    DatasetIndex *index = NULL;
    TrainOutcome outcome = TRAIN_FAILED;
    pthread_t hb;
    bool hb_started = false;
    const json_t *config = json_object_get(job, "config");
    if (!json_is_object(config) || config_from_json(config, true, &cfg, &cerr) < 0) {
        snprintf(err, sizeof err, "stored configuration is invalid: %s %s",
                 config ? cerr.field : "config:", config ? cerr.message : "missing");
        goto end;
    }
    cfg.threads = r->cfg->threads;
    /* The identity every checkpoint carries (as job_identity makes it for a local job). */
    char *config_text = json_text(config, JSON_COMPACT);
    StoreJob sj = {.id = r->id, .attempts = (int)json_integer_value(json_object_get(job,
                                                                                   "attempt")),
                   .config_json = config_text,
                   .pre_identity = json_is_true(json_object_get(job, "pre_identity"))};
    snprintf(sj.uid, sizeof sj.uid, "%s", json_string_value(json_object_get(job, "uid"))
                                              ? json_string_value(json_object_get(job, "uid"))
                                              : "");
    snprintf(sj.attempt_uid, sizeof sj.attempt_uid, "%s", r->lease);
    CheckpointIdentity identity;
    int idrc = job_identity(&sj, &identity, err, sizeof err);
    free(config_text);
    if (idrc < 0)
        goto end;
    if (pthread_create(&hb, NULL, heartbeat_main, r) == 0)
        hb_started = true;
    pthread_mutex_lock(&r->lock);
    snprintf(r->phase, sizeof r->phase, "scan");
    pthread_mutex_unlock(&r->lock);
    if (!(index = load_dataset(r, ds, err, sizeof err)))
        goto end;
    checkpoint_data_hash(index, identity.data_hash);
    /* Each attempt has a folder of its own: a superseded attempt still running on this
     * machine never touches the current one's files. */
    char jobs_dir[3000], ckpt_dir[4096], quarantine[4096], cache[4096];
    snprintf(jobs_dir, sizeof jobs_dir, "%s/jobs", r->cfg->cache_dir);
    snprintf(ckpt_dir, sizeof ckpt_dir, "%s/%s-%s", jobs_dir, sj.uid, r->lease);
    snprintf(quarantine, sizeof quarantine, "%s/quarantine", r->cfg->cache_dir);
    snprintf(cache, sizeof cache, "%s/images", r->cfg->cache_dir);
    remove_earlier_attempts(jobs_dir, sj.uid, r->lease);
    if (fetch_checkpoints(r, ckpt_dir, json_object_get(lease, "checkpoints"), err,
                          sizeof err) < 0)
        goto end;
    r->epochs_stored = json_object_get(lease, "epochs_stored");
    TrainCallbacks cb = {.user = r, .progress = on_progress, .resumed = on_resumed,
                         .from_scratch = on_from_scratch, .may_resume = on_may_resume,
                         .epoch_done = on_epoch, .step_point = on_step_point,
                         .stats = on_stats,
                         .checkpoint = on_checkpoint, .results = on_results,
                         .should_stop = on_should_stop};
    TrainSetup setup = {.cfg = &cfg, .index = index, .cache_dir = cache, .ckpt_dir = ckpt_dir,
                        .quarantine_dir = quarantine, .identity = &identity,
                        .adopt_legacy = sj.pre_identity};
    outcome = train_run(&setup, &cb, err, sizeof err);
    remove_dir(ckpt_dir);
end:
    pthread_mutex_lock(&r->lock);
    r->done = true;
    pthread_cond_broadcast(&r->wake);
    bool lost = r->lost, cancel = r->cancel;
    pthread_mutex_unlock(&r->lock);
    if (hb_started)
        pthread_join(hb, NULL);
    data_index_free(index);
    double seconds = mono() - t_start;
    const char *status;
    if (lost) {
        status = "lost";
    } else if (outcome == TRAIN_DONE) {
        status = "done";
        send_end(r, "done", NULL, seconds);
    } else if (outcome == TRAIN_STOPPED) {
        status = cancel ? "cancelled" : "stopped";
        send_end(r, "stopped", NULL, seconds);
    } else {
        status = "failed";
        log_error("worker", "job %lld failed: %s", (long long)r->id, err);
        send_end(r, "failed", err, seconds);
    }
    if (is_lost(r) && !lost)
        status = "lost";
    if (stats) {
        stats->job_id = r->id;
        snprintf(stats->status, sizeof stats->status, "%s", status);
        stats->seconds = seconds;
        stats->report_seconds = r->report_seconds;
    }
    log_info("worker", "job %lld: attempt ended (%s) after %.1f s, %.3f s (%.2f%%) of it "
             "waiting for the daemon to store its records", (long long)r->id, status, seconds,
             r->report_seconds, seconds > 0 ? 100 * r->report_seconds / seconds : 0.0);
    return strcmp(status, "lost") == 0 ? REMOTE_LOST : REMOTE_RAN;
}

RemoteOutcome remote_run_one(const RemoteConfig *cfg, RemoteStats *stats, char *err,
                             size_t errlen)
{
    if (stats)
        memset(stats, 0, sizeof *stats);
    HttpClientConfig hc = {.base_url = cfg->server, .token = cfg->token,
                           .ca_file = cfg->ca_file};
    HttpClient *http = httpc_create(&hc, err, errlen);
    if (!http)
        return REMOTE_ERROR;
    json_t *req = json_pack("{s:s, s:s, s:i}", "worker", cfg->worker, "host", cfg->host,
                            "threads", cfg->threads);
    if (req && cfg->job_id)
        json_object_set_new(req, "job_id", json_integer(cfg->job_id));
    if (req && cfg->slurm_job_id && cfg->slurm_job_id[0])
        json_object_set_new(req, "slurm_job_id", json_string(cfg->slurm_job_id));
    char *text = req ? json_text(req, JSON_COMPACT) : NULL;
    json_decref(req);
    double t_start = mono();
    HttpResponse resp;
    int rc = text ? httpc_request(http, "POST", "/api/v1/worker/lease", NULL, "application/json",
                                  text, strlen(text), NULL, NULL, &resp, err, errlen)
                  : -1;
    free(text);
    if (rc < 0) {
        httpc_free(http);
        return REMOTE_ERROR;
    }
    RemoteOutcome out = REMOTE_ERROR;
    if (resp.status == 204) {
        snprintf(err, errlen, "%s", resp.why[0] ? resp.why : "no job to lease");
        out = REMOTE_IDLE;
    } else if (resp.status == 409) {
        problem_detail(&resp, err, errlen);
        out = REMOTE_IDLE;
    } else if (resp.status != 200) {
        problem_detail(&resp, err, errlen);
    } else {
        json_t *lease = json_loads(resp.body, 0, NULL);
        const char *token = json_string_value(json_object_get(lease, "lease"));
        json_int_t id = json_integer_value(json_object_get(json_object_get(lease, "job"), "id"));
        if (!token || strlen(token) != STORE_UID_LEN || id <= 0) {
            snprintf(err, errlen, "the daemon's lease reply is not one");
        } else {
            Remote *r = calloc(1, sizeof *r);
            if (!r) {
                snprintf(err, errlen, "out of memory");
            } else {
                r->cfg = cfg;
                r->http = http;
                r->id = id;
                snprintf(r->lease, sizeof r->lease, "%s", token);
                snprintf(r->lease_header, sizeof r->lease_header, "Initlab-Lease: %s", token);
                r->lease_seconds = json_number_value(json_object_get(lease, "lease_seconds"));
                r->heartbeat_seconds =
                    json_number_value(json_object_get(lease, "heartbeat_seconds"));
                if (!(r->lease_seconds > 0))
                    r->lease_seconds = 60;
                if (!(r->heartbeat_seconds > 0))
                    r->heartbeat_seconds = r->lease_seconds / 6;
                pthread_mutex_init(&r->lock, NULL);
                pthread_cond_init(&r->wake, NULL);
                log_info("worker", "job %lld leased (%s, %s, seed %lld, attempt %lld)",
                         (long long)id,
                         json_string_value(json_object_get(json_object_get(lease, "job"),
                                                           "model")),
                         json_string_value(json_object_get(json_object_get(lease, "job"),
                                                           "initializer")),
                         (long long)json_integer_value(
                             json_object_get(json_object_get(lease, "job"), "seed")),
                         (long long)json_integer_value(
                             json_object_get(json_object_get(lease, "job"), "attempt")));
                out = run_attempt(r, lease, stats, t_start);
                pthread_mutex_destroy(&r->lock);
                pthread_cond_destroy(&r->wake);
                free(r);
            }
        }
        json_decref(lease);
    }
    httpc_response_deinit(&resp);
    httpc_free(http);
    return out;
}
