/* storage.h — the state directory's disk: what each job and each part of it holds, and the
 * retention policy that drops checkpoints nobody needs any more.
 *
 * Layout (run.h): <state>/initlab.db (+ -wal, -shm), <state>/jobs/<id>/ (checkpoints),
 * <state>/cache/ (decoded-image caches, data/cache.h: limited by data_cache_set_limit),
 * <state>/quarantine/ (checkpoints set aside).
 *
 * Retention. A done job keeps the checkpoints its policy says: "all" (latest.ckpt and
 * best.ckpt), "best" (latest.ckpt is deleted: the test results and the best weights stay)
 * or "none" (both deleted; the weights can no longer be downloaded). The job's
 * configuration chooses (keep_checkpoints), "daemon" deferring to the daemon's
 * --retention. A failed or cancelled job keeps both, for a retry to resume from. Beyond
 * that, with keep_finished K > 0, only the K jobs that ended most recently keep any
 * checkpoint: older ended jobs lose both, except those whose own keep_checkpoints is
 * "all" (pinned). Only files that are the job's own (checkpoint identity) are deleted,
 * and their records with them, so `initlab check` and backups stay consistent. */
#ifndef INITLAB_JOBS_STORAGE_H
#define INITLAB_JOBS_STORAGE_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

typedef enum { RETAIN_ALL, RETAIN_BEST, RETAIN_NONE } RetainKind;

typedef struct {
    RetainKind kind;         /* what a done job keeps when its configuration defers */
    int keep_finished;       /* 0: no limit */
} RetentionPolicy;

/* "all", "best", "none" <-> RetainKind. parse returns 0, or -1 for another text. */
int retention_parse(const char *text, RetainKind *out);
const char *retention_name(RetainKind kind);

/* Bytes the files of job id's folder take on disk (0 when there is none). Can't fail. */
int64_t job_disk_bytes(const char *state_dir, int64_t id);
/* Sets j->disk_bytes. Can't fail. */
void job_fill_disk(const char *state_dir, StoreJob *j);

typedef struct {
    int64_t database;        /* initlab.db and its -wal, -shm */
    int64_t checkpoints;     /* jobs/ */
    int64_t caches;          /* cache/ */
    int64_t quarantine;      /* quarantine/ */
    int64_t other;           /* anything else in the state directory */
    int64_t total;           /* all of the above */
    int64_t free;            /* free space of its file system (for the daemon's user) */
    int64_t filesystem;      /* size of that file system */
} StorageUsage;

/* Measures the state directory. Returns 0, or -1 with a message when it cannot be read. */
int storage_usage(const char *state_dir, StorageUsage *u, char *err, size_t errlen);

/* Applies the policy after job `ended` ended (any final status), then the keep_finished
 * limit over every ended job, with s. *freed (may be NULL) receives the bytes deleted.
 * Problems (a file of another job, an I/O error) are logged and skipped. Returns 0, or -1
 * when the store could not be read. */
int retention_apply(Store *s, const char *state_dir, const RetentionPolicy *p,
                    const StoreJob *ended, int64_t *freed);

#endif
