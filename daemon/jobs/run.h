/* run.h — running one stored job: its dataset and configuration from the store, the
 * trainer's results into the store. Shared by the daemon's workers and `initlab train`.
 * Also the job files of the state directory: their ids, their removal.
 *
 * Files of a job live in the state directory: checkpoints in <state>/jobs/<id>/, decoded
 * image caches (shared by every job) in <state>/cache/, checkpoints found where they do
 * not belong in <state>/quarantine/ (train/checkpoint.h checkpoint_set_aside).
 *
 * Identity. Each checkpoint carries the job's uid and the attempt's (store.h), the hash of
 * the job's configuration and of its dataset's files, labels and split (checkpoint.h). A
 * job resumes only from its own checkpoint, for the same configuration and data, and only
 * when the store still holds the epochs the checkpoint covers (a database restored from
 * a backup older than the checkpoint does not): otherwise the file is set aside and the
 * job trains from scratch, or, for a changed configuration or dataset, fails saying so.
 * Checkpoints are recorded, and a run's end written, only by the job's current attempt.
 *
 * Job ids. A database that was lost, or restored from an older backup, would hand out
 * again the ids that name folders of <state>/jobs/. job_ids_fence raises the store's id
 * counter above every such folder; call it before jobs are inserted. */
#ifndef INITLAB_JOBS_RUN_H
#define INITLAB_JOBS_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"
#include "train/checkpoint.h"
#include "train/trainer.h"

/* What the caller hears while the job runs; every member may be NULL. Called from the
 * thread running the job. */
typedef struct {
    void *user;
    void (*progress)(void *user, int64_t job_id, const TrainProgress *p);
    void (*epoch)(void *user, int64_t job_id, const TrainEpoch *e);
    /* A point of the intra-epoch curve (the store has it within about a second). */
    void (*step)(void *user, int64_t job_id, const StoreStep *p);
    bool (*should_stop)(void *user, int64_t job_id);
} JobHooks;

/* Runs job (already marked running, by the attempt job->attempt_uid) to its end or to a
 * stop request, writing epochs, statistics, checkpoints, progress and results through s,
 * with `threads` compute threads (0: the job configuration's own `threads`). Temporary
 * files that killed writes left in the job's folder are removed first. On TRAIN_DONE the
 * job is marked done and on TRAIN_FAILED failed with the reason (also in err), both only
 * while this attempt is the job's current one; on TRAIN_STOPPED its status is left to the
 * caller (cancelled, or queued again at shutdown). When the store refuses writes because
 * its database file was deleted or replaced (STORE_UNAVAILABLE), the run stops at its next
 * step and fails with that reason. Thread-safe for distinct jobs with distinct Stores. */
TrainOutcome job_execute(Store *s, const StoreJob *job, const char *state_dir, int threads,
                         const JobHooks *hooks, char *err, size_t errlen);

/* The store row of the test results r of job job_id (its confusion matrix and per-class
 * figures as JSON texts, as every run stores them). Returns 0, or -1 when out of memory;
 * release *out with store_result_deinit. */
int job_results_row(int64_t job_id, const TrainResults *r, StoreResult *out);

/* The directory holding job id's checkpoints, written to buf. */
void job_checkpoint_dir(const char *state_dir, int64_t id, char *buf, size_t size);
/* The folder checkpoints are set aside in, written to buf. */
void job_quarantine_dir(const char *state_dir, char *buf, size_t size);
/* Whether name, an entry of <state_dir>/jobs/, names a job's folder: 1 to 18 digits (a job
 * id that fits an int64_t). Can't fail. */
bool job_folder_name(const char *name);

/* The identity job's checkpoints carry (train/checkpoint.h): its uid, its current attempt,
 * the hash of its stored configuration; data_hash is left "" (it needs the scanned
 * dataset: checkpoint_data_hash). Returns 0, or -1 with a message in err when the job
 * has no uid or its configuration is not a JSON object. */
int job_identity(const StoreJob *job, CheckpointIdentity *id, char *err, size_t errlen);

/* Raises s's job id counter above every all-digit folder name of <state_dir>/jobs/, so
 * that no new job meets the checkpoints of a job the database does not know. A missing
 * folder is no error. Returns 0, or -1 with a message in err. */
int job_ids_fence(Store *s, const char *state_dir, char *err, size_t errlen);

/* Whether name is "<anything>.tmp.<PID>" (file_write_atomic's temporary) whose writer is
 * gone: PID is not a running process, or is this process (which writes no checkpoint of
 * a job it has not started). *pid (may be NULL) receives PID. */
bool job_temp_is_stale(const char *name, long *pid);

/* Removes the files of deleted job `job` from its checkpoint folder, then the folder: its
 * own checkpoints (its uid, or without identity for a job that predates identities),
 * damaged ones and stale temporary files. A checkpoint of another job found there is set
 * aside in the quarantine, never deleted; a file of any other kind is left (and so the
 * folder). Returns 0, or -1 with a message in err (what could be removed is). */
int job_remove_files(const char *state_dir, const StoreJob *job, char *err, size_t errlen);

/* Scans the dataset registered in s under name, sealed in its registered folder
 * (jobs/scan.h jobs_scan_registered), and assigns its stored split (the split is a pure
 * function of files, fractions and seed). cancel (may be NULL) is asked often during the
 * scan; *cancelled (may be NULL) tells whether it stopped the scan. Returns a new index
 * (data_index_free) or NULL with a message. */
DatasetIndex *job_load_dataset(Store *s, const char *name, bool (*cancel)(void *user),
                               void *cancel_user, bool *cancelled, char *err, size_t errlen);

#endif
