/* queue.h — the daemon's job queue: worker threads that claim stored jobs and train them.
 *
 * The queue itself lives in SQLite (store_job_claim takes the highest priority, then the
 * oldest queued job), so a job is never lost between submission and execution and the
 * order survives restarts. This module owns the threads:
 *   - N workers, each with its own Store connection, each training one job at a time with
 *     T compute threads (job_execute, run.h);
 *   - one scanner thread registering datasets (POST /datasets) in the background.
 * Submitters call jobs_notify() after storing a job so an idle worker wakes at once;
 * workers also poll every few seconds. A job whose dataset is still being scanned stays
 * queued (the claim passes over it) until the scan ends, which wakes the workers: it then
 * trains, or fails with the scan's error. Datasets a crash left scanning are scanned again
 * at start-up.
 *
 * Stopping: jobs_cancel() marks a queued job cancelled in the store, or asks the worker
 * running it to stop at its next step boundary (it checkpoints, then marks it cancelled).
 * jobs_shutdown() asks every running job to stop the same way and puts them back in the
 * queue, so the next start resumes them from that checkpoint.
 *
 * DESIGN (threads and locks)
 *   JobQueue.lock guards the worker slots (running job id, stop request, heartbeat), the
 *   dataset scan queue and the shutdown flag; JobQueue.wake is signalled on submissions,
 *   scan requests and shutdown. Workers read their slot's stop request under the lock
 *   once per training step. No lock is held while training, scanning or calling the
 *   publish callback. */
#ifndef INITLAB_JOBS_QUEUE_H
#define INITLAB_JOBS_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jobs/lease.h"
#include "jobs/slurm.h"
#include "jobs/storage.h"
#include "train/trainer.h"

typedef struct JobQueue JobQueue;

/* Outbound notifications; every member may be NULL. Called from worker/scanner threads,
 * never under the queue's lock; must be thread-safe. */
typedef struct {
    void *user;
    /* A server-sent event: name and its JSON data. Workers send "job" (a job's state
     * changed: started, ended, queued again), "progress" (a running job moved on, at most
     * once a second per job; the same form as "job"), "epoch", "step" (a point of the
     * intra-epoch curve); the scanner "dataset" (a scan ended). */
    void (*publish)(void *user, const char *event, const char *json);
    /* A finished epoch, for metrics. */
    void (*epoch)(void *user, int64_t job_id, const TrainEpoch *e);
} JobEvents;

typedef struct {
    const char *db_path;     /* the SQLite database */
    const char *state_dir;   /* checkpoints and caches */
    const char *data_root;   /* datasets lie under it (remote workers get paths relative to
                                it); NULL: none configured */
    int workers;             /* >= 0: the daemon's own worker threads (0: remote workers
                                only, a pure coordinator) */
    int threads_per_job;     /* >= 1: the default of a job's "threads" (the API fills it in
                                at submission; each job runs with its configuration's) */
    RetentionPolicy retention; /* applied when a job ends (jobs/storage.h) */
    double lease_seconds;    /* remote workers' leases (jobs/lease.h); <= 0: 60 */
    double heartbeat_seconds;/* their heartbeat interval; <= 0: lease_seconds / 6 */
    const SlurmConfig *slurm;/* non-NULL: the Slurm executor submits every queued job
                                (jobs/slurm.h); the own workers are then not started */
    JobEvents events;
} JobQueueConfig;

/* Queues again the jobs left running by a previous process's own workers (jobs running
 * under a remote worker's lease go on), then starts the workers, the scanner, the lease
 * reaper and, when configured, the Slurm executor (which adopts the Slurm jobs of a
 * previous process). Returns NULL with a message in err when the database cannot be opened or a
 * thread cannot start. */
JobQueue *jobs_create(const JobQueueConfig *cfg, char *err, size_t errlen);
/* Wakes an idle worker: a job was queued. Thread-safe; can't fail. */
void jobs_notify(JobQueue *q);
/* Cancels job id: 0 when it was queued (now cancelled; its Slurm job, if any, is
 * cancelled with scancel) or running (it will stop within a step and be marked cancelled:
 * a local worker at once, a remote one at its next heartbeat); -1 when it is not queued
 * or running. Thread-safe. */
int jobs_cancel(JobQueue *q, int64_t id);
/* True while job id is being trained by a worker. */
bool jobs_is_running(JobQueue *q, int64_t id);
/* Asks the scanner to scan dataset id (registered in status scanning). Returns 0, or -1
 * when out of memory. */
int jobs_scan(JobQueue *q, int64_t dataset_id);

typedef struct {
    int queued, running, workers, workers_busy;
    int remote_workers;      /* remote workers heard from lately (jobs/lease.h) */
} JobQueueStats;

/* Queue depth and worker occupancy (queued counts come from the store). Returns 0 or -1. */
int jobs_stats(JobQueue *q, JobQueueStats *out);
/* True when every worker thread is alive and none has been stuck in one training step
 * for more than a few minutes. */
bool jobs_alive(JobQueue *q);
/* The live phase of running job id ("train", "cache", ...) copied to buf, or "" when it
 * is not running (a remote worker's as its last heartbeat said). */
void jobs_phase(JobQueue *q, int64_t id, char *buf, size_t size);
/* The lease book of remote workers. Never NULL for a created queue. */
LeaseBook *jobs_lease(JobQueue *q);
/* The Slurm executor, or NULL when the daemon runs its jobs itself. */
SlurmExecutor *jobs_slurm(JobQueue *q);

/* Stops every worker: running jobs checkpoint at their next step and are queued again.
 * Blocks until the threads have exited. Idempotent. */
void jobs_shutdown(JobQueue *q);
/* Shuts down (if needed) and frees; accepts NULL. */
void jobs_free(JobQueue *q);

#endif
