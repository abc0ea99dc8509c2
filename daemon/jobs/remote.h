/* remote.h — one job trained for a remote daemon: the worker's side of jobs/lease.h.
 *
 * remote_run_one leases a job over HTTP (util/httpc.h), finds its dataset under the
 * worker's data root and checks it is the daemon's (class names, split counts and the
 * digest of every file's path and size: wire.h), downloads the checkpoints the daemon
 * holds, and runs the same trainer a local job runs (train/trainer.h), with callbacks that
 * send every record to the daemon and wait for it to be stored: epochs, statistics,
 * checkpoints (uploaded whole), test results. The daemon stores them as it stores a local
 * job's, so with the same thread count the records are bit-identical to a local run.
 *
 * A heartbeat thread renews the lease every heartbeat_seconds with the latest progress.
 * The run stops at its next step, checkpointing, when the stop flag is raised (a signal:
 * the job goes back to the queue), when a heartbeat says the job was cancelled (it ends
 * cancelled), or when the daemon refuses the attempt (409: superseded or its lease
 * ended; nothing more is sent). A report that finds the daemon unreachable (restarting)
 * is retried for up to lease_seconds before the attempt gives up.
 *
 * DESIGN (threads and locks)
 *   The calling thread trains and sends the records with its own HttpClient; the heartbeat
 *   thread has another. Remote.lock guards the progress snapshot, the phase and the flags
 *   both threads read (stop asked, lease lost). */
#ifndef INITLAB_JOBS_REMOTE_H
#define INITLAB_JOBS_REMOTE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *server;        /* the daemon's base URL */
    const char *token;         /* bearer token (the worker token); NULL: none */
    const char *ca_file;       /* CA bundle for an https server; NULL: the system's */
    const char *data_root;     /* datasets lie below it (the daemon sends relative paths);
                                  NULL: the daemon's absolute path is used */
    const char *cache_dir;     /* decoded-image caches, checkpoints in flight */
    int threads;               /* compute threads */
    const char *worker;        /* this worker's name (host:pid) */
    const char *host;          /* this machine's name */
    const char *slurm_job_id;  /* SLURM_JOB_ID, or NULL */
    int64_t job_id;            /* 0: any queued job; else only this one */
    volatile sig_atomic_t *stop; /* raised by a signal: checkpoint and hand the job back */
} RemoteConfig;

typedef enum {
    REMOTE_RAN = 0,      /* a job was leased and its attempt ended (done, failed,
                            stopped or cancelled) */
    REMOTE_IDLE = 1,     /* no job to lease now (or job_id is not queued: err says why) */
    REMOTE_LOST = 2,     /* the attempt was refused part-way: superseded, lease ended */
    REMOTE_ERROR = -1,   /* the daemon could not be reached or answered nonsense */
} RemoteOutcome;

typedef struct {
    int64_t job_id;
    char status[16];           /* how the attempt ended: done, failed, stopped, cancelled */
    double seconds;            /* from the lease to the end */
    double report_seconds;     /* of them, waiting for the daemon to store records */
} RemoteStats;

/* Leases one job and runs its attempt to its end (see above). *stats (may be NULL) says
 * what happened. Messages go to the log; err holds the reason for REMOTE_ERROR and
 * REMOTE_IDLE. Call httpc_global_init first. */
RemoteOutcome remote_run_one(const RemoteConfig *cfg, RemoteStats *stats, char *err,
                             size_t errlen);

#endif
