/* queue.c — worker and scanner threads over the job queue stored in SQLite (queue.h). */
#include "jobs/queue.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "jobs/report.h"
#include "jobs/run.h"
#include "jobs/scan.h"
#include "jobs/storage.h"
#include "store/store.h"
#include "util/jsonout.h"
#include "util/log.h"

#define POLL_SECONDS 2
/* A worker silent this long inside one step is reported dead to the watchdog. */
#define STUCK_SECONDS 600.0

typedef enum { STOP_NONE, STOP_CANCEL, STOP_SHUTDOWN } StopRequest;

typedef struct {
    JobQueue *q;
    int index;
    pthread_t thread;
    bool started, exited;
    int64_t job_id;        /* 0 when idle */
    StopRequest stop;
    double heartbeat;      /* CLOCK_MONOTONIC seconds of the last sign of life */
    char phase[16];
} Worker;

struct JobQueue {
    JobQueueConfig cfg;
    char *db_path, *state_dir;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool shutting_down;
    Worker *workers;
    int n_workers;
    pthread_t scanner;
    bool scanner_started;
    int64_t *scan_queue;   /* dataset ids waiting for the scanner */
    int n_scan, cap_scan;
    Store *stats_store;    /* jobs_stats' connection, used under lock */
    LeaseBook *leases;     /* remote workers (thread-safe itself) */
    SlurmExecutor *slurm;  /* NULL: local executor (thread-safe itself) */
    char host[256];        /* this machine's name, recorded with local attempts */
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void publish_json(JobQueue *q, const char *event, json_t *data)
{
    if (data && q->cfg.events.publish) {
        char *text = json_text(data, JSON_COMPACT);
        if (text)
            q->cfg.events.publish(q->cfg.events.user, event, text);
        free(text);
    }
    json_decref(data);
}

/* Publishes job id as event ("job": its state changed; "progress": it moved on). */
static void publish_job(JobQueue *q, Store *s, int64_t id, const char *phase,
                        const char *event)
{
    StoreJob job;
    if (!q->cfg.events.publish || store_job_get(s, id, &job) != STORE_OK)
        return;
    job_fill_disk(q->state_dir, &job);
    publish_json(q, event, report_job(&job, phase));
    store_job_deinit(&job);
}

/* ---- worker ---------------------------------------------------------------------- */

typedef struct {
    Worker *w;
    Store *s;
    double last_publish;
} WorkerRun;

static void hook_progress(void *user, int64_t id, const TrainProgress *p)
{
    WorkerRun *run = user;
    JobQueue *q = run->w->q;
    pthread_mutex_lock(&q->lock);
    snprintf(run->w->phase, sizeof run->w->phase, "%s", p->phase);
    run->w->heartbeat = now();
    pthread_mutex_unlock(&q->lock);
    /* The store has the progress about once a second (run.c); follow it for events, at
     * most one "progress" event a second per job. */
    double t = now();
    if (t - run->last_publish >= 1.0) {
        run->last_publish = t;
        publish_job(q, run->s, id, p->phase, "progress");
    }
}

static void hook_step(void *user, int64_t id, const StoreStep *p)
{
    WorkerRun *run = user;
    publish_json(run->w->q, "step", report_step_event(id, p));
}

static void hook_epoch(void *user, int64_t id, const TrainEpoch *e)
{
    WorkerRun *run = user;
    JobQueue *q = run->w->q;
    StoreEpoch row;
    report_train_epoch_to_store(e, &row);
    publish_json(q, "epoch", report_epoch_event(id, &row));
    if (q->cfg.events.epoch)
        q->cfg.events.epoch(q->cfg.events.user, id, e);
}

static bool hook_should_stop(void *user, int64_t id)
{
    WorkerRun *run = user;
    JobQueue *q = run->w->q;
    pthread_mutex_lock(&q->lock);
    run->w->heartbeat = now();
    bool stop = run->w->stop != STOP_NONE;
    pthread_mutex_unlock(&q->lock);
    return stop;
}

/* A job has ended (done, failed or cancelled), here or on a remote worker: its files
 * follow the retention policy (jobs/storage.h). */
static void apply_retention(JobQueue *q, Store *s, int64_t id)
{
    StoreJob ended;
    if (store_job_get(s, id, &ended) != STORE_OK)
        return;
    if (ended.status == STORE_JOB_DONE || ended.status == STORE_JOB_FAILED ||
        ended.status == STORE_JOB_CANCELLED) {
        int64_t freed = 0;
        retention_apply(s, q->state_dir, &q->cfg.retention, &ended, &freed);
        if (freed)
            log_info("jobs", "retention freed %.1f MB after job %lld ended", freed / 1e6,
                     (long long)id);
    }
    store_job_deinit(&ended);
}

static void run_claimed(Worker *w, Store *s, StoreJob *job)
{
    JobQueue *q = w->q;
    pthread_mutex_lock(&q->lock);
    w->job_id = job->id;
    w->stop = q->shutting_down ? STOP_SHUTDOWN : STOP_NONE;
    w->heartbeat = now();
    snprintf(w->phase, sizeof w->phase, "start");
    pthread_mutex_unlock(&q->lock);
    log_info("jobs", "worker %d: job %lld started (%s, %s, seed %lld)", w->index,
             (long long)job->id, job->model, job->initializer, (long long)job->seed);
    publish_job(q, s, job->id, "start", "job");

    WorkerRun run = {.w = w, .s = s};
    JobHooks hooks = {.user = &run, .progress = hook_progress, .epoch = hook_epoch,
                      .step = hook_step, .should_stop = hook_should_stop};
    char err[1024] = "";
    /* Each job runs with the threads its configuration records (a submission without
     * "threads" records the daemon's --threads-per-job). */
    TrainOutcome outcome = job_execute(s, job, q->state_dir, 0, &hooks, err, sizeof err);
    pthread_mutex_lock(&q->lock);
    StopRequest stop = w->stop;
    w->job_id = 0;
    w->stop = STOP_NONE;
    w->phase[0] = '\0';
    pthread_mutex_unlock(&q->lock);

    if (outcome == TRAIN_STOPPED && stop == STOP_CANCEL) {
        store_job_set_status(s, job->id, STORE_JOB_BIT(STORE_JOB_RUNNING), STORE_JOB_CANCELLED,
                             "cancelled");
        log_info("jobs", "job %lld cancelled (checkpoint kept)", (long long)job->id);
    } else if (outcome == TRAIN_STOPPED) {
        store_job_set_status(s, job->id, STORE_JOB_BIT(STORE_JOB_RUNNING), STORE_JOB_QUEUED,
                             NULL);
        log_info("jobs", "job %lld checkpointed and queued again for the next start",
                 (long long)job->id);
    } else if (outcome == TRAIN_FAILED) {
        log_warn("jobs", "job %lld failed: %s", (long long)job->id, err);
    } else {
        log_info("jobs", "job %lld done", (long long)job->id);
    }
    if (outcome != TRAIN_STOPPED || stop == STOP_CANCEL)
        apply_retention(q, s, job->id);
    publish_job(q, s, job->id, NULL, "job");
}

static void *worker_main(void *arg)
{
    Worker *w = arg;
    JobQueue *q = w->q;
    char err[512];
    Store *s = store_open(q->db_path, err, sizeof err);
    if (!s)
        log_error("jobs", "worker %d: %s", w->index, err);
    char claim_err[1024] = "";  /* the last claim failure, logged once while it lasts */
    while (s) {
        pthread_mutex_lock(&q->lock);
        bool stop = q->shutting_down;
        w->heartbeat = now();
        pthread_mutex_unlock(&q->lock);
        if (stop)
            break;
        StoreJob job;
        char name[32];
        snprintf(name, sizeof name, "local %d", w->index);
        int rc = store_job_claim_where(s, q->host, name, &job);
        if (rc == STORE_OK || rc == STORE_NOT_FOUND) {
            claim_err[0] = '\0';
        } else if (strncmp(claim_err, store_errmsg(s), sizeof claim_err - 1) != 0) {
            log_warn("jobs", "worker %d: claiming a job: %s", w->index, store_errmsg(s));
            snprintf(claim_err, sizeof claim_err, "%s", store_errmsg(s));
        }
        if (rc == STORE_OK) {
            run_claimed(w, s, &job);
            store_job_deinit(&job);
            continue;
        }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += POLL_SECONDS;
        pthread_mutex_lock(&q->lock);
        if (!q->shutting_down)
            pthread_cond_timedwait(&q->wake, &q->lock, &until);
        pthread_mutex_unlock(&q->lock);
    }
    store_close(s);
    pthread_mutex_lock(&q->lock);
    w->exited = true;
    pthread_mutex_unlock(&q->lock);
    return NULL;
}

/* ---- scanner --------------------------------------------------------------------- */

/* The scan's cancel check, asked for every file: the daemon is shutting down. */
static bool scan_cancelled(void *user)
{
    JobQueue *q = user;
    pthread_mutex_lock(&q->lock);
    bool stop = q->shutting_down;
    pthread_mutex_unlock(&q->lock);
    return stop;
}

static void *scanner_main(void *arg)
{
    JobQueue *q = arg;
    char err[1024];
    Store *s = store_open(q->db_path, err, sizeof err);
    if (!s) {
        log_error("jobs", "scanner: %s", err);
        return NULL;
    }
    for (;;) {
        pthread_mutex_lock(&q->lock);
        while (!q->shutting_down && q->n_scan == 0)
            pthread_cond_wait(&q->wake, &q->lock);
        if (q->shutting_down) {
            pthread_mutex_unlock(&q->lock);
            break;
        }
        int64_t id = q->scan_queue[0];
        memmove(q->scan_queue, q->scan_queue + 1, sizeof(int64_t) * (size_t)--q->n_scan);
        pthread_mutex_unlock(&q->lock);

        int rc = jobs_scan_dataset_cancellable(s, id, scan_cancelled, q, err, sizeof err);
        if (rc == -2) {
            log_info("jobs", "dataset %lld: scan stopped for the shutdown; it runs again at "
                     "the next start", (long long)id);
            break;
        }
        if (rc < 0)
            log_warn("jobs", "dataset %lld: %s", (long long)id, err);
        /* Jobs queued on the dataset may start now (or fail with the scan's error). */
        jobs_notify(q);
        StoreDataset d;
        if (store_dataset_get_by_id(s, id, &d) == STORE_OK) {
            publish_json(q, "dataset", report_dataset(&d));
            store_dataset_deinit(&d);
        }
    }
    store_close(s);
    return NULL;
}

/* ---- remote workers and the Slurm executor ---------------------------------------- */

/* A job changed status through a lease (leased, ended, expired) or the Slurm executor:
 * the event, and a wake-up for the workers (it may be queued again). */
static void lease_changed(void *user, Store *s, int64_t id)
{
    JobQueue *q = user;
    apply_retention(q, s, id);
    publish_job(q, s, id, NULL, "job");
    jobs_notify(q);
}

static void lease_steps(void *user, int64_t id, const StoreStep *rows, int n)
{
    JobQueue *q = user;
    for (int i = 0; i < n; i++)
        publish_json(q, "step", report_step_event(id, &rows[i]));
}

static void slurm_changed(void *user, Store *s, int64_t id)
{
    lease_changed(user, s, id);
}

LeaseBook *jobs_lease(JobQueue *q)
{
    return q->leases;
}

SlurmExecutor *jobs_slurm(JobQueue *q)
{
    return q->slurm;
}

/* ---- public ---------------------------------------------------------------------- */

/* Queues for the scanner the datasets a previous process left scanning, so the jobs
 * waiting on them do not wait forever. Called before the threads start. */
static int rescan_interrupted(JobQueue *q, char *err, size_t errlen)
{
    StoreDataset *rows = NULL;
    int n = 0;
    if (store_dataset_list(q->stats_store, &rows, &n) != STORE_OK) {
        snprintf(err, errlen, "listing datasets: %s", store_errmsg(q->stats_store));
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++)
        if (rows[i].status == STORE_DATASET_SCANNING) {
            log_info("jobs", "dataset %s: scanning again (interrupted)", rows[i].name);
            if ((rc = jobs_scan(q, rows[i].id)) < 0)
                snprintf(err, errlen, "out of memory");
        }
    store_datasets_free(rows, n);
    return rc;
}

JobQueue *jobs_create(const JobQueueConfig *cfg, char *err, size_t errlen)
{
    JobQueue *q = calloc(1, sizeof *q);
    if (!q) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    q->cfg = *cfg;
    q->db_path = strdup(cfg->db_path);
    q->state_dir = strdup(cfg->state_dir);
    q->n_workers = cfg->slurm || cfg->workers < 0 ? 0 : cfg->workers;
    q->workers = calloc((size_t)q->n_workers + 1, sizeof *q->workers);
    if (gethostname(q->host, sizeof q->host - 1) < 0)
        snprintf(q->host, sizeof q->host, "localhost");
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->wake, NULL);
    if (!q->db_path || !q->state_dir || !q->workers) {
        snprintf(err, errlen, "out of memory");
        jobs_free(q);
        return NULL;
    }
    q->stats_store = store_open(q->db_path, err, errlen);
    if (!q->stats_store) {
        jobs_free(q);
        return NULL;
    }
    int requeued = 0;
    if (store_job_requeue_running(q->stats_store, &requeued) != STORE_OK) {
        snprintf(err, errlen, "requeueing interrupted jobs: %s", store_errmsg(q->stats_store));
        jobs_free(q);
        return NULL;
    }
    if (requeued)
        log_info("jobs", "%d interrupted job(s) queued again; they resume from their "
                 "checkpoints", requeued);
    if (rescan_interrupted(q, err, errlen) < 0) {
        jobs_free(q);
        return NULL;
    }
    LeaseConfig lc = {.db_path = q->db_path, .state_dir = q->state_dir,
                      .data_root = cfg->data_root,
                      .lease_seconds = cfg->lease_seconds > 0 ? cfg->lease_seconds : 60,
                      .changed = lease_changed, .steps = lease_steps, .user = q};
    lc.heartbeat_seconds = cfg->heartbeat_seconds > 0 ? cfg->heartbeat_seconds
                                                      : lc.lease_seconds / 6;
    if (!(q->leases = lease_book_create(&lc, err, errlen))) {
        jobs_free(q);
        return NULL;
    }
    if (cfg->slurm &&
        !(q->slurm = slurm_create(cfg->slurm, q->db_path, slurm_changed, q, err, errlen))) {
        jobs_free(q);
        return NULL;
    }
    for (int i = 0; i < q->n_workers; i++) {
        Worker *w = &q->workers[i];
        w->q = q;
        w->index = i;
        w->heartbeat = now();
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            snprintf(err, errlen, "cannot start worker thread: %s", strerror(errno));
            jobs_free(q);
            return NULL;
        }
        w->started = true;
    }
    if (pthread_create(&q->scanner, NULL, scanner_main, q) != 0) {
        snprintf(err, errlen, "cannot start the dataset scanner thread");
        jobs_free(q);
        return NULL;
    }
    q->scanner_started = true;
    if (q->slurm)
        log_info("jobs", "Slurm executor: every queued job is submitted with sbatch");
    else if (q->n_workers)
        log_info("jobs", "%d worker(s), %d compute thread(s) each", q->n_workers,
                 cfg->threads_per_job);
    else
        log_info("jobs", "no local workers: jobs run on remote workers only "
                 "(initlab worker)");
    return q;
}

void jobs_notify(JobQueue *q)
{
    pthread_mutex_lock(&q->lock);
    pthread_cond_broadcast(&q->wake);
    pthread_mutex_unlock(&q->lock);
}

int jobs_cancel(JobQueue *q, int64_t id)
{
    /* A local worker that has just claimed the job (running in the store) takes its slot a
     * moment later: look again until it has, rather than answer that the job cannot be
     * cancelled. */
    for (int tries = 0; tries < 500; tries++) {
        pthread_mutex_lock(&q->lock);
        for (int i = 0; i < q->n_workers; i++)
            if (q->workers[i].job_id == id) {
                q->workers[i].stop = STOP_CANCEL;
                pthread_mutex_unlock(&q->lock);
                return 0;
            }
        /* Not running here: cancel it in the store if it is still queued (a worker claiming
         * it at this moment loses the race cleanly: the status move is conditional), or ask
         * the remote attempt running it to stop (its next heartbeat hears it). */
        int rc = store_job_set_status(q->stats_store, id, STORE_JOB_BIT(STORE_JOB_QUEUED),
                                      STORE_JOB_CANCELLED, "cancelled before it started");
        StoreJob job;
        bool have = store_job_get(q->stats_store, id, &job) == STORE_OK;
        bool remote = have && job.status == STORE_JOB_RUNNING && job.lease_expires_at > 0;
        bool claimed_here = rc != STORE_OK && have && job.status == STORE_JOB_RUNNING && !remote;
        if (rc != STORE_OK && remote)
            rc = store_job_request_stop(q->stats_store, id);
        pthread_mutex_unlock(&q->lock);
        if (rc == STORE_OK && have && job.slurm_job_id[0] && q->slurm)
            slurm_cancel(q->slurm, id, job.slurm_job_id);
        if (have)
            store_job_deinit(&job);
        if (rc == STORE_OK)
            return 0;
        if (!claimed_here)
            return -1;
        struct timespec pause = {0, 2000000};
        nanosleep(&pause, NULL);
    }
    return -1;
}

bool jobs_is_running(JobQueue *q, int64_t id)
{
    bool running = false;
    pthread_mutex_lock(&q->lock);
    for (int i = 0; i < q->n_workers; i++)
        running |= q->workers[i].job_id == id;
    pthread_mutex_unlock(&q->lock);
    return running;
}

void jobs_phase(JobQueue *q, int64_t id, char *buf, size_t size)
{
    buf[0] = '\0';
    pthread_mutex_lock(&q->lock);
    for (int i = 0; i < q->n_workers; i++)
        if (q->workers[i].job_id == id)
            snprintf(buf, size, "%s", q->workers[i].phase);
    pthread_mutex_unlock(&q->lock);
    if (!buf[0] && q->leases)
        lease_phase(q->leases, id, buf, size);
}

int jobs_scan(JobQueue *q, int64_t dataset_id)
{
    pthread_mutex_lock(&q->lock);
    if (q->n_scan == q->cap_scan) {
        int cap = q->cap_scan ? 2 * q->cap_scan : 8;
        int64_t *a = realloc(q->scan_queue, sizeof *a * (size_t)cap);
        if (!a) {
            pthread_mutex_unlock(&q->lock);
            return -1;
        }
        q->scan_queue = a;
        q->cap_scan = cap;
    }
    q->scan_queue[q->n_scan++] = dataset_id;
    pthread_cond_broadcast(&q->wake);
    pthread_mutex_unlock(&q->lock);
    return 0;
}

int jobs_stats(JobQueue *q, JobQueueStats *out)
{
    int counts[STORE_JOB_STATUS_COUNT];
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&q->lock);
    int rc = store_job_counts(q->stats_store, counts);
    out->workers = q->n_workers;
    for (int i = 0; i < q->n_workers; i++)
        out->workers_busy += q->workers[i].job_id != 0;
    pthread_mutex_unlock(&q->lock);
    if (q->leases)
        lease_workers_count(q->leases, &out->remote_workers);
    if (rc != STORE_OK)
        return -1;
    out->queued = counts[STORE_JOB_QUEUED];
    out->running = counts[STORE_JOB_RUNNING];
    return 0;
}

bool jobs_alive(JobQueue *q)
{
    bool alive = true;
    double t = now();
    pthread_mutex_lock(&q->lock);
    for (int i = 0; i < q->n_workers; i++) {
        const Worker *w = &q->workers[i];
        if (w->exited || (w->job_id && t - w->heartbeat > STUCK_SECONDS))
            alive = false;
    }
    pthread_mutex_unlock(&q->lock);
    return alive;
}

void jobs_shutdown(JobQueue *q)
{
    pthread_mutex_lock(&q->lock);
    if (q->shutting_down) {
        pthread_mutex_unlock(&q->lock);
        return;
    }
    q->shutting_down = true;
    for (int i = 0; i < q->n_workers; i++)
        if (q->workers[i].job_id)
            q->workers[i].stop = STOP_SHUTDOWN;
    pthread_cond_broadcast(&q->wake);
    pthread_mutex_unlock(&q->lock);
    for (int i = 0; i < q->n_workers; i++)
        if (q->workers[i].started)
            pthread_join(q->workers[i].thread, NULL);
    if (q->scanner_started)
        pthread_join(q->scanner, NULL);
    slurm_free(q->slurm);
    q->slurm = NULL;
    lease_book_free(q->leases);
    q->leases = NULL;
    for (int i = 0; i < q->n_workers; i++)
        q->workers[i].started = false;
    q->scanner_started = false;
}

void jobs_free(JobQueue *q)
{
    if (!q)
        return;
    jobs_shutdown(q);
    store_close(q->stats_store);
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->wake);
    free(q->workers);
    free(q->scan_queue);
    free(q->db_path);
    free(q->state_dir);
    free(q);
}
