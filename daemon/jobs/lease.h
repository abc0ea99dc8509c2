/* lease.h — the daemon's side of remote workers: leases, heartbeats, the reports a remote
 * attempt sends (epochs, statistics, checkpoints, results, its end), and who is connected.
 *
 * A remote `initlab worker` (jobs/remote.h) leases a job over HTTP (api/routes_worker.c).
 * A lease is one attempt of the job (store.h: attempt uid, the lease token): it lasts
 * lease_seconds and every heartbeat renews it. A lease that ends without renewal queues
 * the job again (the reaper thread, every second); the next attempt resumes from the last
 * checkpoint the daemon holds: checkpoints are uploaded here and kept in the state
 * directory as a local job's are, so no file system is shared with the workers.
 *
 * Fencing. Every report names its attempt; it is stored only while that attempt is the
 * job's current one and the job runs, checked in the same transaction as the writes
 * (store_attempt_begin): an attempt superseded by a later one (Slurm ran two copies of a
 * job after a node failure, or started it again after a controller crash), or whose lease
 * ended, is refused with LEASE_GONE and counted, and writes nothing. The records a remote
 * job leaves are those a local run of it leaves: the same store functions, fed the same
 * values (jobs/wire.h carries every bit).
 *
 * DESIGN (threads and locks)
 *   Functions taking a Store run on the calling HTTP thread with its own connection.
 *   LeaseBook.lock guards the table of workers seen (name, host, job, phase, last contact)
 *   and the refusal counter; the reaper thread has its own Store and takes the lock only
 *   to read the stop flag. No lock is held across store calls or file operations. */
#ifndef INITLAB_JOBS_LEASE_H
#define INITLAB_JOBS_LEASE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

typedef struct LeaseBook LeaseBook;

typedef struct {
    const char *db_path;       /* the database (the reaper's own connection) */
    const char *state_dir;     /* checkpoints: <state_dir>/jobs/<id>/{latest,best}.ckpt */
    const char *data_root;     /* datasets' paths are sent relative to it; NULL: absolute */
    double lease_seconds;      /* a lease ends this long after the last heartbeat */
    double heartbeat_seconds;  /* how often workers are told to send one */
    /* Called (from the reaper thread or the calling thread, with that thread's Store)
     * after job_id changed status because of a lease: leased, ended, expired. May be
     * NULL. */
    void (*changed)(void *user, Store *s, int64_t job_id);
    /* Called after points of job_id's intra-epoch curve were stored. May be NULL. */
    void (*steps)(void *user, int64_t job_id, const StoreStep *rows, int n);
    void *user;
} LeaseConfig;

/* Outcomes of the functions below that act for an attempt. */
typedef enum {
    LEASE_OK = 0,
    LEASE_GONE = -1,     /* the attempt is not the job's current running one: refused */
    LEASE_INVALID = -2,  /* the request is malformed (err says what) */
    LEASE_ERROR = -3,    /* the store or the file system failed (err says what) */
    LEASE_NONE = -4,     /* lease: no job to hand out now; checkpoint_path: none stored */
    LEASE_UNAVAILABLE = -5, /* the database file was deleted or replaced (store.h) */
} LeaseResult;

/* Starts the reaper thread. Returns NULL with a message when it cannot. */
LeaseBook *lease_book_create(const LeaseConfig *cfg, char *err, size_t errlen);
/* Stops the reaper and frees; accepts NULL. Leases stay in the store: workers go on while
 * the daemon restarts, and the next daemon renews their leases. */
void lease_book_free(LeaseBook *b);

typedef struct {
    const char *worker;        /* the worker's name, unique per process ("host:pid") */
    const char *host;          /* its machine */
    int threads;               /* compute threads it will use */
    int64_t job_id;            /* 0: any queued job; else that one (Slurm executor) */
    const char *slurm_job_id;  /* NULL or "" outside Slurm */
} LeaseRequest;

/* Leases a job to the worker described by r and builds the reply in *out (new reference):
 * {"lease": token, "job": {id, uid, attempt, attempt_uid, config {...}, model, ...},
 *  "dataset": {name, path, relpath, split {train, val, test}, seed, classes [...],
 *  n_files, n_split {...}, files_digest}, "epochs_stored": [..], "checkpoints":
 *  {"latest": {epoch, bytes} | null, "best": ...}, "lease_seconds", "heartbeat_seconds"}.
 * LEASE_NONE when no job is queued (or job r->job_id cannot start yet: err says why);
 * LEASE_GONE when job r->job_id is running elsewhere, done, failed or cancelled. */
LeaseResult lease_grant(LeaseBook *b, Store *s, const LeaseRequest *r, json_t **out,
                        char *err, size_t errlen);

/* Renews attempt `lease` of job id and stores its progress (body: {"progress": {...},
 * "phase": "train"}; progress may be absent). *stop tells whether a user cancelled the
 * job: the worker then checkpoints and ends it as cancelled. */
LeaseResult lease_heartbeat(LeaseBook *b, Store *s, int64_t id, const char *lease,
                            const char *worker, const json_t *body, bool *stop, char *err,
                            size_t errlen);

/* A report of attempt `lease` of job id, stored as the local run stores it (run.c):
 *   "epoch"        {"epoch": {wire epoch}}
 *   "stats"        {"epoch": E, "rows": [wire stats]}
 *   "results"      {"results": {wire results}}
 *   "resumed"      {"epoch": E, "step": S}: rows after epoch E are discarded
 *   "from-scratch" {}: rows and checkpoint records of earlier runs go; the daemon's
 *                  checkpoint files of the job are set aside in the quarantine
 *   "end"          {"outcome": "done" | "failed" | "stopped", "error": "...",
 *                  "seconds": wall time, "report_seconds": time spent reporting}: the
 *                  attempt ends; "stopped" queues the job again, or cancels it when a
 *                  user asked (stop request). */
LeaseResult lease_report(LeaseBook *b, Store *s, int64_t id, const char *lease,
                         const char *kind, const json_t *body, char *err, size_t errlen);

/* Stores the checkpoint file at tmp_path (uploaded by attempt `lease` of job id) as the
 * job's checkpoint of kind ("latest" or "best"): the whole file is checked (magic, CRC)
 * and must carry the job's uid, this attempt's uid and the hash of the job's
 * configuration; it is then moved into place durably and recorded, in the attempt's
 * transaction. tmp_path must be on the state directory's file system; it is moved or
 * left for the caller to remove. val_acc is recorded with it, as the trainer reported it
 * (NAN: none). LEASE_INVALID for a damaged or foreign file. */
LeaseResult lease_checkpoint_put(LeaseBook *b, Store *s, int64_t id, const char *lease,
                                 const char *kind, const char *tmp_path, double val_acc,
                                 char *err, size_t errlen);
/* The path of job id's stored checkpoint of kind for its current attempt `lease` (to
 * resume from), in path (size bytes). LEASE_NONE when the job has none recorded. */
LeaseResult lease_checkpoint_path(LeaseBook *b, Store *s, int64_t id, const char *lease,
                                  const char *kind, char *path, size_t size, char *err,
                                  size_t errlen);

/* Notes a contact from a worker (any request it made). Thread-safe; can't fail. */
void lease_seen(LeaseBook *b, const char *worker, const char *host, int64_t job_id,
                const char *phase, int threads);
/* The workers heard from within 3 heartbeat intervals, as a JSON array (new reference) of
 * {"worker", "host", "job_id" | null, "phase" | null, "threads", "seconds_ago"}; *count
 * (may be NULL) gets their number. Thread-safe. */
json_t *lease_workers(LeaseBook *b, int *count);
/* The number of workers lease_workers would list. Thread-safe. */
void lease_workers_count(LeaseBook *b, int *count);
/* The phase the remote worker running job id last reported, "" when none. Thread-safe. */
void lease_phase(LeaseBook *b, int64_t id, char *buf, size_t size);
/* Reports refused since the start (superseded or ended attempts). Thread-safe. */
long long lease_refused_count(LeaseBook *b);

#endif
