/* run.h — running one stored job: its dataset and configuration from the store, the
 * trainer's results into the store. Shared by the daemon's workers and `initlab train`.
 *
 * Files of a job live in the state directory: checkpoints in <state>/jobs/<id>/, decoded
 * image caches (shared by every job) in <state>/cache/. */
#ifndef INITLAB_JOBS_RUN_H
#define INITLAB_JOBS_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"
#include "train/trainer.h"

/* What the caller hears while the job runs; every member may be NULL. Called from the
 * thread running the job. */
typedef struct {
    void *user;
    void (*progress)(void *user, int64_t job_id, const TrainProgress *p);
    void (*epoch)(void *user, int64_t job_id, const TrainEpoch *e);
    bool (*should_stop)(void *user, int64_t job_id);
} JobHooks;

/* Runs job (already marked running) to its end or to a stop request, writing epochs,
 * statistics, checkpoints, progress and results through s, with `threads` compute threads
 * (0: the job configuration's own `threads`). On TRAIN_DONE the job is marked
 * done and on TRAIN_FAILED failed with the reason (also in err); on TRAIN_STOPPED its status
 * is left to the caller (cancelled, or queued again at shutdown). Thread-safe for distinct
 * jobs with distinct Stores. */
TrainOutcome job_execute(Store *s, const StoreJob *job, const char *state_dir, int threads,
                         const JobHooks *hooks, char *err, size_t errlen);

/* The directory holding job id's checkpoints, written to buf. */
void job_checkpoint_dir(const char *state_dir, int64_t id, char *buf, size_t size);

/* Scans the dataset registered in s under name and assigns its stored split (the split
 * is a pure function of files, fractions and seed). Returns a new index (data_index_free)
 * or NULL with a message. */
DatasetIndex *job_load_dataset(Store *s, const char *name, char *err, size_t errlen);

#endif
