/* slurm.h — the Slurm executor: every queued job becomes a Slurm batch job that runs one
 * `initlab worker --job ID --once`, which leases that job from the daemon (jobs/lease.h).
 *
 * The daemon stays the one coordinator; Slurm only decides where and when a job's worker
 * runs. A thread of this module, every poll interval:
 *   1. submits each queued job that has no Slurm job yet with `sbatch --parsable` (the
 *      batch script on its standard input; options from SlurmConfig, the job's priority as
 *      --nice, --signal=B:USR1@S so that the worker checkpoints and hands the job back
 *      before the time limit, --no-requeue: after a node failure the daemon, not Slurm,
 *      decides) and records the Slurm job id with the job (store: jobs.slurm_job_id);
 *   2. asks `squeue` (then `sacct`, or `sacct -c` on the job-completion log, for a job
 *      squeue no longer knows) for the state of every Slurm job it recorded, and when one
 *      has ended while its initlab job is still queued or running:
 *        - CANCELLED (someone ran scancel): the initlab job is cancelled;
 *        - any other end (the worker was killed, the node failed, the time limit came):
 *          the running attempt is ended (its late writes are refused from then on) and the
 *          job is submitted again; it resumes from its last checkpoint.
 * Nothing of this lives only in memory: a restarted daemon finds the Slurm job ids in the
 * store and adopts the jobs in flight instead of submitting them again (running jobs keep
 * their leases across the restart, jobs/lease.h).
 *
 * Commands run with the daemon's environment (SLURM_CONF and PATH as the daemon has them).
 *
 * DESIGN (threads and locks)
 *   One executor thread with its own Store runs every Slurm command. SlurmExecutor.lock
 *   guards the list of cancellations other threads ask for (slurm_cancel) and the stop
 *   flag; the thread takes it only to move that list out. */
#ifndef INITLAB_JOBS_SLURM_H
#define INITLAB_JOBS_SLURM_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

typedef struct SlurmExecutor SlurmExecutor;

typedef struct {
    const char *server_url;    /* the daemon as the nodes reach it, "https://head:8470" */
    const char *token_file;    /* a worker token file, readable on the nodes */
    const char *worker_bin;    /* initlab on the nodes */
    const char *data_root;     /* the workers' --data-root; NULL: none */
    const char *cache_dir;     /* the workers' --cache-dir; NULL: their default */
    const char *ca_file;       /* the workers' --ca-file (TLS); NULL: system CAs */
    const char *log_dir;       /* sbatch --output goes here (created) */
    const char *partition, *account, *time_limit, *mem, *gres; /* NULL: Slurm's default */
    const char *extra_options; /* more sbatch options, split at spaces; NULL: none */
    int cpus_per_task;         /* --cpus-per-task (the worker's threads follow it); >= 1 */
    int signal_seconds;        /* --signal=B:USR1@S; 0: none */
    double poll_seconds;       /* how often Slurm is asked; > 0 */
    int max_submitted;         /* Slurm jobs submitted and not ended at once; 0: no limit */
} SlurmConfig;

/* Starts the executor thread on db_path. changed(user, s, id) is called from it after it
 * changed job id (submitted, cancelled, queued again). Returns NULL with a message when
 * the thread cannot start or cfg lacks what the batch script needs. */
SlurmExecutor *slurm_create(const SlurmConfig *cfg, const char *db_path,
                            void (*changed)(void *user, Store *s, int64_t id), void *user,
                            char *err, size_t errlen);
/* Asks the executor to scancel Slurm job slurm_job_id of initlab job id (the user
 * cancelled it); it runs within a poll interval. Thread-safe; can't fail (logged). */
void slurm_cancel(SlurmExecutor *x, int64_t id, const char *slurm_job_id);
/* Stops the thread and frees. Slurm jobs go on: the next daemon adopts them. Accepts
 * NULL. */
void slurm_free(SlurmExecutor *x);

/* The sbatch options and the batch script for job_id with priority (exposed for the
 * tests): argv (NULL-terminated, heap strings, slurm_argv_free) and *script (heap).
 * Returns 0, or -1 when out of memory. */
int slurm_batch(const SlurmConfig *cfg, int64_t job_id, int priority, char ***argv,
                char **script);
void slurm_argv_free(char **argv);

#endif
