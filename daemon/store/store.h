/* store.h — initlab's SQLite database: datasets, grids, jobs, epochs, layer statistics,
 * test results, checkpoints and idempotency keys. All SQL of initlab lives in store/.
 *
 * DESIGN
 *   A Store is one SQLite connection and belongs to one thread at a time: it has no lock.
 *   Every thread that touches the database (each worker, the HTTP server, the scanner)
 *   opens its own Store on the same file. The database runs in WAL mode, so readers never
 *   wait for writers; writers queue behind each other through a 5 s busy timeout, and every
 *   write that spans several statements runs in one BEGIN IMMEDIATE transaction, so a
 *   caller never sees SQLITE_BUSY unless another writer holds the lock for over 5 s.
 *   synchronous=FULL: every commit is on disk when the call returns, so a job accepted
 *   with store_job_insert()/store_submit() survives a power cut before the 201 goes out.
 *   The cost is one fsync per call; progress updates should therefore be throttled by the
 *   caller (about one per second per job is plenty for the dashboard).
 *
 * Fencing (the file behind the path)
 *   A write committed to a database file that was deleted, or replaced by another file,
 *   while a process held it open is acknowledged and then lost: the next start opens what
 *   is at the path now. So within one process every Store on a path refers to one file.
 *   The first store_open of a path pins that file's identity (device and inode) for as
 *   long as any Store of the process has the path open (a process-wide table guarded by
 *   its own mutex; paths are compared after resolving their directory). Then:
 *     - every commit checks, just before it happens (SQLite's commit hook, one stat(2)),
 *       that the path still names the pinned file; if not, the transaction is rolled
 *       back and the call fails with STORE_UNAVAILABLE and a message saying what happened
 *       (deleted or replaced), logged once per change;
 *     - a later store_open of the path opens nothing new: a missing file is not created
 *       and another file is refused, both with STORE_UNAVAILABLE's message;
 *     - store_verify_file() asks the same question without writing (health checks).
 *   If the original file comes back at the path (same inode), writes go on. A deletion
 *   that lands between the check and the fsync of a commit is not seen: the window is one
 *   commit long.
 *
 * Conventions
 *   - Functions return STORE_OK (0) or a negative StoreCode; on failure store_errmsg()
 *     says what went wrong (it names the object: "job 12 not found"). Nothing is stored
 *     by a call that fails.
 *   - Times are unix seconds (UTC) as double; 0 means "not yet" (e.g. started_at).
 *   - A double that may be absent uses NAN for "none" both ways (SQLite NULL): a NaN
 *     statistic of a diverged run reads back as NAN; infinities are stored as they are.
 *   - Identifiers (names of datasets, models, initializers, layers) are copied into fixed
 *     arrays of STORE_NAME_MAX bytes, paths into STORE_PATH_MAX; writes that do not fit
 *     fail with STORE_INVALID, so reads never truncate. Free-form text (JSON, errors) is
 *     heap-allocated in row structs and released by the row's _deinit/_free function.
 *   - Arrays returned through `T **rows, int *n` are heap-allocated; release them with the
 *     named _free function, or with free() when the rows own no heap memory. An empty
 *     result is *rows == NULL, *n == 0 and STORE_OK.
 *   - JSON columns (job/grid config, class names, confusion, per-class) are passed as
 *     text; the store neither parses nor validates them. */
#ifndef INITLAB_STORE_STORE_H
#define INITLAB_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    STORE_OK = 0,
    STORE_ERROR = -1,      /* SQLite or I/O failure, out of memory */
    STORE_NOT_FOUND = -2,  /* the row (or a row it refers to) does not exist */
    STORE_CONFLICT = -3,   /* duplicate name/key, or the row is in the wrong state */
    STORE_INVALID = -4,    /* an argument is out of range or a string too long */
    STORE_UNAVAILABLE = -5, /* the database file was deleted or replaced while open (see
                               Fencing above): nothing is written any more */
} StoreCode;

#define STORE_NAME_MAX 128   /* bytes, with the NUL */
#define STORE_PATH_MAX 4096  /* bytes, with the NUL */
#define STORE_HIST_BINS 64
#define STORE_UID_LEN 32     /* hex digits of a job or attempt uid (128 random bits) */
#define STORE_SLURM_ID_MAX 32 /* bytes of a Slurm job id ("4242", "4242_7"), with the NUL */

typedef struct Store Store;

/* ---- Opening ---------------------------------------------------------------------- */

/* Opens (creating if needed) the database at path and brings its schema to the latest
 * version, applying each pending migration of schema/ in its own transaction. The parent
 * directory must exist. Sets WAL mode, synchronous=FULL, foreign keys on and a 5 s busy
 * timeout. A database whose schema is newer than this binary knows is refused.
 * Returns the Store, or NULL with a message in err (errlen bytes, may be 0). */
Store *store_open(const char *path, char *err, size_t errlen);
/* As store_open, but a missing file is an error ("no database at PATH") instead of a new
 * database: for commands that inspect or copy an existing state directory. */
Store *store_open_existing(const char *path, char *err, size_t errlen);
/* As store_open, but applies migrations only up to schema version max_version (1..latest).
 * For tests and tooling that need an older schema; the rest of this API expects the
 * latest one. Refuses a database already newer than max_version. */
Store *store_open_version(const char *path, int max_version, char *err, size_t errlen);
/* Closes the connection (the last one to close checkpoints the WAL). Accepts NULL. */
void store_close(Store *s);
/* The message of the last failed call on s, "" if none. Owned by s; valid until the next
 * call on s. */
const char *store_errmsg(const Store *s);
/* The StoreCode of the last failed call on s, STORE_OK if none. */
int store_errcode(const Store *s);
/* STORE_OK while the path s was opened with still names the file s has open (see Fencing
 * above); otherwise STORE_UNAVAILABLE with the message saying whether the file was
 * deleted or replaced. Writes nothing: one stat(2). Always STORE_OK for an in-memory
 * database. */
int store_verify_file(Store *s);
/* The database's integrity: PRAGMA integrity_check and PRAGMA foreign_key_check. STORE_OK
 * with *report NULL when both find nothing; STORE_OK with *report a heap string (free()),
 * one problem per line, when they do; STORE_ERROR when the checks could not run. */
int store_check_integrity(Store *s, char **report);
/* The schema version of the open database (PRAGMA user_version), or STORE_ERROR. */
int store_schema_version(Store *s);
/* The schema version this binary brings databases to (number of migrations). */
int store_schema_latest(void);
/* Copies the whole database to dest_path with SQLite's online backup API while other
 * connections keep reading and writing; dest_path is created or overwritten and is a
 * self-contained database (no -wal file needed). Returns STORE_OK or STORE_ERROR. */
int store_backup(Store *s, const char *dest_path);

/* Statements whose query plans tests inspect with store_explain(). */
typedef enum {
    STORE_QUERY_STATS_EPOCH,    /* store_stats_get: all layers of (job, epoch, mode, quantity) */
    STORE_QUERY_STATS_LAYER,    /* store_stats_get_layer: one layer's row, histogram included */
    STORE_QUERY_STATS_EPOCHS,   /* store_stats_epochs: next epoch with statistics */
    STORE_QUERY_EPOCHS,         /* store_epoch_list */
    STORE_QUERY_JOB_CLAIM,      /* store_job_claim: the next queued job */
    STORE_QUERY_GRID_SUMMARY,   /* store_grid_summary */
    STORE_QUERY_DATASET_FILES,  /* store_dataset_files */
} StoreQuery;
/* Writes the EXPLAIN QUERY PLAN of the statement behind q into out (n bytes), one plan
 * line per row ("SEARCH layer_stats USING PRIMARY KEY (...)"), NUL-terminated and
 * truncated to fit. Returns STORE_OK, STORE_INVALID for an unknown q, or STORE_ERROR. */
int store_explain(Store *s, StoreQuery q, char *out, size_t n);

/* ---- Enumerations stored as text ---------------------------------------------------- */

typedef enum { STORE_DATASET_SCANNING, STORE_DATASET_READY, STORE_DATASET_FAILED } StoreDatasetStatus;
typedef enum { STORE_SPLIT_TRAIN, STORE_SPLIT_VAL, STORE_SPLIT_TEST, STORE_SPLIT_COUNT } StoreSplit;
typedef enum {
    STORE_JOB_QUEUED, STORE_JOB_RUNNING, STORE_JOB_DONE, STORE_JOB_FAILED, STORE_JOB_CANCELLED,
    STORE_JOB_STATUS_COUNT
} StoreJobStatus;
typedef enum { STORE_MODE_TRAIN, STORE_MODE_INFERENCE } StoreMode;  /* BatchNorm mode */
typedef enum { STORE_QTY_WEIGHT, STORE_QTY_ACTIVATION, STORE_QTY_GRADIENT } StoreQuantity;
typedef enum { STORE_CKPT_LATEST, STORE_CKPT_BEST } StoreCheckpointKind;

/* A bit per job status, for StoreJobFilter.status_mask and store_job_set_status(). */
#define STORE_JOB_BIT(status) (1u << (status))

/* The text form of each enumeration ("scanning", "val", "running", "inference",
 * "activation", "best"): static strings, "?" for a value out of range. Can't fail. */
const char *store_dataset_status_name(StoreDatasetStatus v);
const char *store_split_name(StoreSplit v);
const char *store_job_status_name(StoreJobStatus v);
const char *store_mode_name(StoreMode v);
const char *store_quantity_name(StoreQuantity v);
const char *store_checkpoint_kind_name(StoreCheckpointKind v);
/* Parse the text forms above (exact, lower case). Return 0 and set *v, or -1 (and leave
 * *v alone) for anything else, e.g. an unknown ?status= from a URL. */
int store_dataset_status_parse(const char *text, StoreDatasetStatus *v);
int store_split_parse(const char *text, StoreSplit *v);
int store_job_status_parse(const char *text, StoreJobStatus *v);
int store_mode_parse(const char *text, StoreMode *v);
int store_quantity_parse(const char *text, StoreQuantity *v);
int store_checkpoint_kind_parse(const char *text, StoreCheckpointKind *v);

/* ---- Datasets ----------------------------------------------------------------------- */

typedef struct {
    const char *name;       /* unique, < STORE_NAME_MAX bytes */
    const char *path;       /* absolute directory, < STORE_PATH_MAX bytes */
    double train_frac, val_frac, test_frac;  /* each in [0, 1], summing to 1 (+-1e-6) */
    int64_t seed;
} StoreDatasetNew;

typedef struct {
    int64_t id;
    char name[STORE_NAME_MAX];
    char path[STORE_PATH_MAX];
    double train_frac, val_frac, test_frac;
    int64_t seed;
    StoreDatasetStatus status;
    char *error;             /* heap; NULL unless status is failed */
    char *class_names_json;  /* heap; JSON array, index = label ("[]" while scanning) */
    int n_classes;
    int64_t n_files, n_split[STORE_SPLIT_COUNT], n_skipped;
    double created_at;
} StoreDataset;

typedef struct {
    const char *relpath;     /* relative to the dataset's path; heap in results */
    int label;               /* 0 .. n_classes-1 */
    StoreSplit split;
    int64_t size;            /* bytes */
    int64_t mtime;           /* unix seconds */
} StoreDatasetFile;          /* the file's idx is its position in the array */

typedef struct {
    const char *relpath;     /* heap in results */
    const char *reason;      /* heap in results */
} StoreDatasetSkipped;

/* Registers a dataset in status scanning; *id receives its id. STORE_CONFLICT if the name
 * is taken, STORE_INVALID for an empty or too long name/path or bad fractions. */
int store_dataset_insert(Store *s, const StoreDatasetNew *d, int64_t *id);
/* Sets a dataset's status; error is stored for STORE_DATASET_FAILED (NULL allowed) and
 * cleared otherwise. STORE_NOT_FOUND if there is no such dataset. */
int store_dataset_set_status(Store *s, int64_t id, StoreDatasetStatus status, const char *error);
/* Records a finished scan in one transaction: replaces the dataset's files (files[i] gets
 * idx i) and skipped files, stores class_names_json (NULL = "[]") and n_classes, recomputes
 * the counts, and marks the dataset ready. STORE_INVALID if a label is outside
 * [0, n_classes) or a relpath is empty; STORE_NOT_FOUND for an unknown id. */
int store_dataset_set_files(Store *s, int64_t id, const char *class_names_json, int n_classes,
                            const StoreDatasetFile *files, int n_files,
                            const StoreDatasetSkipped *skipped, int n_skipped);
/* Fills *out with the dataset named name / with id id. STORE_NOT_FOUND if none. Release
 * *out with store_dataset_deinit. */
int store_dataset_get(Store *s, const char *name, StoreDataset *out);
int store_dataset_get_by_id(Store *s, int64_t id, StoreDataset *out);
/* Every dataset, by name. Release with store_datasets_free. */
int store_dataset_list(Store *s, StoreDataset **rows, int *n);
/* Deletes a dataset with its files and skipped list. STORE_NOT_FOUND if none;
 * STORE_CONFLICT if a queued or running job uses it (nothing is deleted). */
int store_dataset_delete(Store *s, const char *name);
/* The dataset's files in idx order (all of them, or those of one split when split is
 * STORE_SPLIT_TRAIN/VAL/TEST; pass -1 for all). (*files)[k].relpath is heap.
 * Release with store_dataset_files_free. An unknown id gives an empty list. */
int store_dataset_files(Store *s, int64_t id, int split, StoreDatasetFile **files, int *n);
/* The dataset's skipped files, by relpath. Release with store_dataset_skipped_free. */
int store_dataset_skipped(Store *s, int64_t id, StoreDatasetSkipped **rows, int *n);
/* Files per class and split: *counts is a heap array of n_classes * STORE_SPLIT_COUNT
 * (row = label, column = StoreSplit), *n_classes the dataset's class count. free() it.
 * STORE_NOT_FOUND for an unknown id. */
int store_dataset_class_counts(Store *s, int64_t id, int64_t **counts, int *n_classes);
void store_dataset_deinit(StoreDataset *d);         /* accepts NULL; can't fail */
void store_datasets_free(StoreDataset *rows, int n);
void store_dataset_files_free(StoreDatasetFile *files, int n);
void store_dataset_skipped_free(StoreDatasetSkipped *rows, int n);

/* ---- Grids, jobs, submissions ------------------------------------------------------- */

typedef struct {
    int64_t id;
    double created_at;
    char *config_json;                        /* heap */
    int n_jobs;                               /* jobs of the grid ... */
    int n_status[STORE_JOB_STATUS_COUNT];     /* ... by status */
    char *name, *note;                        /* heap; NULL when unset */
    char *tags_json;                          /* heap; JSON array of strings */
} StoreGrid;

typedef struct {
    int64_t grid_id;         /* 0: not part of a grid */
    int priority;            /* higher first */
    const char *config_json; /* the full resolved configuration */
    const char *dataset, *model, *initializer;  /* < STORE_NAME_MAX bytes each */
    int64_t seed;
    int epochs;              /* planned epochs, >= 0 */
    int start_running;       /* 1: stored as already running (a foreground `initlab train`),
                                so that no daemon worker claims it; 0: queued */
    const char *name, *tags_json, *note; /* NULL: none (tags_json a JSON array of strings) */
} StoreJobNew;

typedef struct {
    int epoch;               /* epoch being trained, 1-based; 0 before the first */
    int step;                /* step within the epoch */
    int steps_per_epoch;
    double images_per_sec;   /* NAN: unknown */
    double eta_seconds;      /* NAN: unknown */
    double best_val_acc;     /* NAN: no validated epoch yet */
    int best_epoch;          /* 0: none */
} StoreJobProgress;

typedef struct {
    int64_t id;
    int64_t grid_id;         /* 0: none */
    StoreJobStatus status;
    int priority;
    char *config_json;       /* heap */
    char dataset[STORE_NAME_MAX], model[STORE_NAME_MAX], initializer[STORE_NAME_MAX];
    int64_t seed;
    int epochs;
    double created_at, started_at, finished_at;  /* 0: not yet */
    char *error;             /* heap; NULL when none */
    int attempts;            /* times a worker claimed the job */
    bool dataset_scanning;   /* its dataset is being scanned: a queued job waits for it */
    StoreJobProgress progress;
    char uid[STORE_UID_LEN + 1];         /* random, set at insert, never reused */
    char attempt_uid[STORE_UID_LEN + 1]; /* random, new at every start; "" before the first */
    bool pre_identity;       /* created before jobs had uids (migration 004): may adopt a
                                checkpoint written without identity (train/checkpoint.h) */
    double lease_expires_at; /* a remote attempt's lease end (unix s); 0: none (a local
                                attempt, or not running) */
    char host[STORE_NAME_MAX];   /* where the current or last attempt runs; "" before */
    char worker[STORE_NAME_MAX]; /* which worker: "local 0", "slurm 4242", "host:pid" */
    char slurm_job_id[STORE_SLURM_ID_MAX]; /* the Slurm job submitted for it; "" none */
    bool stop_requested;     /* a user cancelled it while a remote attempt ran it */
    char *name, *note;       /* heap; NULL when unset (migration 007) */
    char *tags_json;         /* heap; JSON array of strings, "[]" when none */
    int64_t disk_bytes;      /* not stored: bytes of its files in the state directory,
                                filled by jobs/ (job_disk_bytes); -1 when not measured */
} StoreJob;

typedef struct {
    unsigned status_mask;    /* OR of STORE_JOB_BIT(status); 0 = any */
    int64_t grid_id;         /* 0 = any */
    const char *model;       /* NULL or "" = any; exact match */
    const char *initializer; /* NULL or "" = any */
    const char *dataset;     /* NULL or "" = any */
    int limit;               /* rows to return, 1..1000; 0 = 100 */
    int offset;              /* rows to skip, >= 0 */
    int newest_first;        /* 0: ascending id (submission order); 1: descending */
    const char *tag;         /* NULL or "" = any; jobs carrying this tag */
    const char *q;           /* NULL or "" = any; substring of name, note, tags, model,
                                initializer or dataset (ASCII case-insensitive) */
} StoreJobFilter;

/* Creates a grid; *id receives its id. STORE_INVALID if config_json is NULL. */
int store_grid_insert(Store *s, const char *config_json, int64_t *id);
/* Fills *out with grid id and its job counts. STORE_NOT_FOUND if none. Release with
 * store_grid_deinit. */
int store_grid_get(Store *s, int64_t id, StoreGrid *out);
/* Every grid, newest first. Release with store_grids_free. */
int store_grid_list(Store *s, StoreGrid **rows, int *n);
void store_grid_deinit(StoreGrid *g);                /* accepts NULL; can't fail */
void store_grids_free(StoreGrid *rows, int n);

/* Queues one job (or starts it, with start_running); *id receives its id. The job gets a
 * random uid (and, started, an attempt uid) from getrandom(2). The job is on disk when
 * this returns.
 * STORE_INVALID for a missing or too long field; STORE_NOT_FOUND if grid_id does not
 * exist. */
int store_job_insert(Store *s, const StoreJobNew *job, int64_t *id);
/* Fills *out with job id. STORE_NOT_FOUND if none. Release with store_job_deinit. */
int store_job_get(Store *s, int64_t id, StoreJob *out);
/* The page of jobs matching f (NULL = every job, first 100), and in *total the number of
 * matching jobs over all pages (may be NULL). Release with store_jobs_free.
 * STORE_INVALID for a limit or offset out of range. */
int store_job_list(Store *s, const StoreJobFilter *f, StoreJob **rows, int *n, int *total);
/* Moves job id to status `to` if its current status is in from_mask (OR of
 * STORE_JOB_BIT; 0 = from any status) — e.g. cancel only a queued job without racing a
 * worker that claims it. Moving to running is a start, as store_job_claim: started_at is
 * set if unset, finished_at and error are cleared, attempts + 1 (a foreground run
 * resuming its own job uses this; the job gets a new attempt uid). Done, failed and
 * cancelled set finished_at and store
 * error (NULL = none); queued clears finished_at and error. A move to the current status
 * is allowed and applies the same rules.
 * STORE_NOT_FOUND if no such job; STORE_CONFLICT if its status is not in from_mask. */
int store_job_set_status(Store *s, int64_t id, unsigned from_mask, StoreJobStatus to,
                         const char *error);
/* Ends attempt attempt_uid of running job id: moves it to `to` (done, failed, cancelled or
 * queued, with store_job_set_status's rules) only while that attempt is the job's current
 * one. STORE_CONFLICT when the job is not running or another attempt started since (the
 * message names it): the job belongs to that attempt now and is left alone.
 * STORE_NOT_FOUND if no such job. */
int store_job_end_attempt(Store *s, int64_t id, const char *attempt_uid, StoreJobStatus to,
                          const char *error);
/* Overwrites the progress columns of job id. STORE_NOT_FOUND if none. */
int store_job_set_progress(Store *s, int64_t id, const StoreJobProgress *p);
/* Deletes job id with its epochs, statistics, results and checkpoint rows (the checkpoint
 * files are the caller's). STORE_NOT_FOUND if none; STORE_CONFLICT if it is running
 * (nothing is deleted). */
int store_job_delete(Store *s, int64_t id);
/* Takes the next queued job — highest priority first, then oldest — whose dataset is not
 * being scanned (jobs on a scanning dataset wait in the queue) and marks it running
 * (started_at set if unset, finished_at and error cleared, attempts + 1, a new attempt
 * uid) in one atomic step: two workers never claim the same job. Fills *out (release with
 * store_job_deinit). STORE_NOT_FOUND when no job can start. */
int store_job_claim(Store *s, StoreJob *out);
/* Makes sure that no job id up to `above` is handed out from now on: raises the jobs'
 * AUTOINCREMENT counter to `above` when it is lower, and does nothing otherwise. For ids
 * the database cannot know about, e.g. those that named checkpoint folders before the
 * database was lost or restored from an older backup. STORE_INVALID for above < 0. */
int store_job_reserve_ids(Store *s, int64_t above);
/* Queues again every job left running by this daemon's own workers (call once at
 * start-up, before workers start): those without a lease. Jobs running under a remote
 * worker's lease go on there (a lease that ends queues them: store_lease_expire). Their
 * progress and checkpoints stay so that they resume. *count (may be NULL) receives how
 * many there were. */
int store_job_requeue_running(Store *s, int *count);
/* Deletes job id's epoch rows and layer statistics after epoch `epoch` (epoch > given).
 * A job resuming from the checkpoint of epoch E calls this with E, so rows written after
 * that checkpoint and never covered by it are rewritten, not kept stale. The job's other
 * rows stay. Deleting nothing is not an error. */
int store_job_discard_after(Store *s, int64_t id, int epoch);
/* Number of jobs in each status (counts[STORE_JOB_QUEUED] is the queue depth). */
int store_job_counts(Store *s, int counts[STORE_JOB_STATUS_COUNT]);
void store_job_deinit(StoreJob *j);                  /* accepts NULL; can't fail */
void store_jobs_free(StoreJob *rows, int n);

/* store_job_claim, recording where the attempt runs: host and worker (NULL: unknown,
 * each < STORE_NAME_MAX bytes). A claimed job has no lease (it runs in this process). */
int store_job_claim_where(Store *s, const char *host, const char *worker, StoreJob *out);

/* ---- Leases: attempts run by remote workers (jobs/lease.h) -------------------------- */

typedef struct {
    int64_t job_id;            /* 0: the next queued job, as store_job_claim, among those
                                  not submitted to Slurm (they wait for their own job) */
    const char *host, *worker; /* where the attempt runs; < STORE_NAME_MAX bytes each */
    const char *slurm_job_id;  /* the Slurm job asking, NULL or "" when none */
    double ttl;                /* seconds the lease lasts without a heartbeat, > 0 */
} StoreLeaseRequest;

/* Starts a remote attempt: the job moves to running as store_job_claim moves it (attempts
 * + 1, a new attempt uid) with a lease ending ttl seconds from now, its host, worker and
 * (when given) Slurm job id recorded. With r->job_id, that job: it must be queued, or
 * running under a lease held by the same Slurm job (Slurm started that job again after a
 * node or controller failure: the earlier attempt is superseded and its writes are
 * refused from now on); the Slurm job id is then recorded with the job (a pull worker's,
 * leasing any job, is not: it only names the worker). STORE_NOT_FOUND when no job can start (or no such job);
 * STORE_CONFLICT with the reason when job r->job_id cannot (running elsewhere, done...).
 * Fills *out (store_job_deinit). */
int store_lease_claim(Store *s, const StoreLeaseRequest *r, StoreJob *out);
/* Renews the lease of attempt attempt_uid of job id for ttl more seconds and, when p is
 * not NULL, stores its progress; *stop (may be NULL) tells whether a user cancelled the
 * job meanwhile. STORE_CONFLICT when the attempt is no longer the job's current running
 * one (the message says what happened); STORE_NOT_FOUND for no such job. */
int store_lease_renew(Store *s, int64_t id, const char *attempt_uid, double ttl,
                      const StoreJobProgress *p, bool *stop);
/* Queues again every running job whose lease ended before `now` (unix seconds); its
 * attempt is thereby superseded. The ids go to *ids (heap, free(); may be NULL), their
 * count to *n. */
int store_lease_expire(Store *s, double now, int64_t **ids, int *n);
/* Asks the remote attempt running job id to stop and end the job as cancelled (its next
 * heartbeat hears it). STORE_CONFLICT when the job is not running under a lease. */
int store_job_request_stop(Store *s, int64_t id);

/* Begins a transaction in which every write concerns job id on behalf of attempt
 * attempt_uid, and checks first that it is the job's current attempt and the job is
 * running: STORE_CONFLICT otherwise (nothing begun; the message names the current
 * attempt or the job's status). Between this and store_attempt_end, the usual write
 * functions (store_epoch_put, store_stats_put, ...) run inside that transaction, so no
 * other attempt can start between the check and the writes. */
int store_attempt_begin(Store *s, int64_t id, const char *attempt_uid);
/* Ends store_attempt_begin's transaction: commits when rc is STORE_OK, rolls back
 * otherwise. Returns rc, or the commit's error. */
int store_attempt_end(Store *s, int rc);

/* Records the Slurm job submitted for queued job id (slurm_job_id non-empty, only while
 * the job is queued and has none: STORE_CONFLICT otherwise), or forgets it (NULL: any
 * status). */
int store_job_set_slurm(Store *s, int64_t id, const char *slurm_job_id);
/* Every queued or running job with a Slurm job id, by id. Release with store_jobs_free. */
int store_job_list_slurm(Store *s, StoreJob **rows, int *n);
/* Every queued job without a Slurm job id whose dataset is not being scanned, highest
 * priority first then oldest, at most limit of them. Release with store_jobs_free. */
int store_job_list_unsubmitted(Store *s, int limit, StoreJob **rows, int *n);

typedef struct {
    const char *idem_key;         /* NULL or "": no idempotency; else < STORE_NAME_MAX bytes */
    const char *fingerprint;      /* identifies the request body (e.g. a hash); NULL = "" */
    const char *grid_config_json; /* non-NULL: create a grid and attach every job to it */
    const StoreJobNew *jobs;      /* their grid_id is ignored when a grid is created */
    int n_jobs;                   /* >= 1 */
    const char *grid_name, *grid_tags_json, *grid_note; /* the grid's; NULL: none */
} StoreSubmit;

typedef struct {
    int64_t grid_id;         /* 0: no grid */
    int64_t *job_ids;        /* heap, n_jobs ids in request order */
    int n_jobs;
    int replayed;            /* 1: the key was seen before; these are the first request's */
} StoreSubmitResult;

/* Submits a POST /jobs or POST /grids in one transaction: if sub->idem_key is known with
 * the same fingerprint, nothing is created and the first submission's ids are returned
 * (replayed = 1); otherwise the grid (if any) and every job are created and the key is
 * recorded with their ids. Either all jobs are stored or none. STORE_CONFLICT if the key
 * is known with a different fingerprint; STORE_INVALID as store_job_insert.
 * Release *res with store_submit_result_deinit. */
int store_submit(Store *s, const StoreSubmit *sub, StoreSubmitResult *res);
void store_submit_result_deinit(StoreSubmitResult *res);  /* accepts NULL */

typedef struct {
    char key[STORE_NAME_MAX];
    char fingerprint[STORE_NAME_MAX];
    int64_t grid_id;         /* 0: none */
    int64_t *job_ids;        /* heap */
    int n_jobs;
    double created_at;
} StoreIdempotency;

/* Looks up an idempotency key. STORE_NOT_FOUND if unknown. Release with
 * store_idempotency_deinit. (store_submit does lookup and recording atomically; these two
 * are for callers that create their rows themselves.) */
int store_idempotency_get(Store *s, const char *key, StoreIdempotency *out);
/* Records key -> (fingerprint, grid_id, job_ids). STORE_CONFLICT if the key exists;
 * STORE_INVALID for an empty or too long key or fingerprint. */
int store_idempotency_put(Store *s, const char *key, const char *fingerprint, int64_t grid_id,
                          const int64_t *job_ids, int n_jobs);
/* Forgets keys created before `before` (unix seconds); *count (may be NULL) = how many. */
int store_idempotency_purge(Store *s, double before, int *count);
void store_idempotency_deinit(StoreIdempotency *k);  /* accepts NULL */

/* ---- Names, tags, notes, priorities; grid operations (store_lab.c) ------------------ */

/* An edit of a job's or grid's name, tags and note: members left NULL stay as they are;
 * "" clears a name or note; tags_json is a JSON array of strings (the caller validates
 * it). */
typedef struct {
    const char *name;
    const char *tags_json;
    const char *note;
} StoreMetaEdit;

/* Applies e to job id / grid id. STORE_NOT_FOUND if none. */
int store_job_set_meta(Store *s, int64_t id, const StoreMetaEdit *e);
int store_grid_set_meta(Store *s, int64_t id, const StoreMetaEdit *e);
/* Sets a queued job's priority, in its row and in its stored configuration's "priority".
 * STORE_NOT_FOUND if none; STORE_CONFLICT when it is not queued (the message says its
 * status). */
int store_job_set_priority(Store *s, int64_t id, int priority);
/* The same for every queued job of grid id; *count (may be NULL) receives how many.
 * STORE_NOT_FOUND if no such grid. */
int store_grid_set_priority(Store *s, int64_t id, int priority, int *count);
/* Every grid matching tag and q (NULL or "" = any; as StoreJobFilter), newest first.
 * Release with store_grids_free. */
int store_grid_list_filtered(Store *s, const char *tag, const char *q, StoreGrid **rows,
                             int *n);
/* Adds jobs to grid id in one transaction (their grid_id is ignored) and replaces the
 * grid's stored configuration with config_json (NULL keeps it); ids (n) receive the new
 * ids. STORE_NOT_FOUND if no such grid; STORE_INVALID as store_job_insert. */
int store_grid_add_jobs(Store *s, int64_t id, const StoreJobNew *jobs, int n,
                        const char *config_json, int64_t *ids);
/* Deletes grid id and every job of it (with their rows, as store_job_delete) in one
 * transaction; the jobs' files are the caller's. STORE_NOT_FOUND if none; STORE_CONFLICT
 * when one of its jobs is running (nothing is deleted). */
int store_grid_delete(Store *s, int64_t id);
/* Ids of the jobs that ended (done, failed, cancelled) and still have a recorded
 * checkpoint, the most recently finished first; free() *ids. */
int store_jobs_ended_with_checkpoints(Store *s, int64_t **ids, int *n);

/* ---- The intra-epoch training curve ------------------------------------------------- */

typedef struct {
    int64_t global_step;     /* steps since the start of training */
    int epoch, step, steps_per_epoch;
    double loss, accuracy;   /* NAN: none */
} StoreStep;

/* Records points of job job_id's curve in one transaction (upsert by global_step).
 * STORE_NOT_FOUND if the job does not exist. */
int store_steps_put(Store *s, int64_t job_id, const StoreStep *rows, int n);
/* The job's points by global_step; free() *rows. An unknown job gives none. */
int store_steps_list(Store *s, int64_t job_id, StoreStep **rows, int *n);
/* Deletes the points after step `step` of epoch `epoch + 1` (a resumption after epoch
 * `epoch`, `step` steps into the next) and every later epoch's; (0, 0) deletes them all
 * (a start from scratch). */
int store_steps_discard_after(Store *s, int64_t job_id, int epoch, int step);

/* ---- Epochs and layer statistics ---------------------------------------------------- */

typedef struct {
    int epoch;               /* >= 0 */
    double train_loss, train_acc, val_loss, val_acc;  /* NAN: not measured / not finite */
    double lr;
    double seconds;          /* wall time of the epoch */
    double images_per_sec;
} StoreEpoch;

/* Records epoch e->epoch of job job_id. Upsert: writing an epoch that exists (a job
 * resumed from an earlier checkpoint trains it again) overwrites the row, so a job has at
 * most one row per epoch. STORE_NOT_FOUND if the job does not exist. */
int store_epoch_put(Store *s, int64_t job_id, const StoreEpoch *e);
/* The job's epochs in ascending order; free() *rows. An unknown job gives none. */
int store_epoch_list(Store *s, int64_t job_id, StoreEpoch **rows, int *n);

typedef struct {
    StoreMode mode;
    StoreQuantity quantity;
    int layer_index;                 /* position of the layer in the network, >= 0 */
    char layer_name[STORE_NAME_MAX]; /* "conv_dw_3" */
    char layer_type[STORE_NAME_MAX]; /* "depthwise_conv2d" */
    int64_t n;                       /* values summarized */
    double mean, std, min, max;
    double q1, median, q3;
    double whisker_lo, whisker_hi;   /* Tukey whiskers */
    double p1, p99;
    double zero_frac;                /* fraction of exact zeros */
    int64_t nonfinite;               /* NaN and infinite values */
    double predicted_var;            /* the initializer's variance for kernels; NAN: none */
    int64_t dead_units;              /* channels zero over the whole probe batch */
    double saturation;               /* fraction of values at an activation bound; NAN: n/a */
    int flags;                       /* health bitmask, defined by train/, stored as is */
    double hist_lo, hist_hi;         /* range covered by the bins */
    uint32_t hist[STORE_HIST_BINS];  /* counts over equal-width bins of [hist_lo, hist_hi] */
    double mean_abs;                 /* mean |x|; NAN: not recorded */
    double theory_var;               /* the theory's prediction at epoch 0; NAN: none */
    double fan_sum;                  /* weights at epoch 0: inputs each output sums over */
    int init_iters;                  /* weights at epoch 0 of LSUV: rescalings; -1: none */
    int64_t units;                   /* channels looked at for dead units; 0: none */
} StoreLayerStat;

/* Records the statistics of job job_id at epoch `epoch` (0 = at initialization): rows may
 * mix modes and quantities. One transaction; upsert per (mode, quantity, layer_index), as
 * store_epoch_put. STORE_INVALID for a bad enum, negative index or unterminated name;
 * STORE_NOT_FOUND if the job does not exist. */
int store_stats_put(Store *s, int64_t job_id, int epoch, const StoreLayerStat *rows, int n);
/* Every layer's statistics of (job, epoch, mode, quantity) in layer_index order: one
 * indexed range read (the box plot across layers). free() *rows. None is not an error. */
int store_stats_get(Store *s, int64_t job_id, int epoch, StoreMode mode, StoreQuantity q,
                    StoreLayerStat **rows, int *n);
/* One layer's statistics and histogram. STORE_NOT_FOUND if not recorded. */
int store_stats_get_layer(Store *s, int64_t job_id, int epoch, StoreMode mode, StoreQuantity q,
                          int layer_index, StoreLayerStat *out);
/* The epochs for which the job has statistics, ascending; free() *epochs. */
int store_stats_epochs(Store *s, int64_t job_id, int **epochs, int *n);
/* One layer's statistics (histogram included) at every epoch recorded, ascending by epoch:
 * the distribution over time. (*rows)[i].layer_index is the layer; the epoch of each row
 * goes to (*epochs)[i]. free() both. None is not an error. */
int store_stats_history(Store *s, int64_t job_id, StoreMode mode, StoreQuantity q,
                        int layer_index, StoreLayerStat **rows, int **epochs, int *n);

/* ---- Results, checkpoints, grid summary --------------------------------------------- */

typedef struct {
    int64_t job_id;
    int epoch;               /* checkpoint epoch evaluated (best validation accuracy) */
    double accuracy, precision_macro, recall_macro, f1_macro, loss;
    char *confusion_json;    /* heap in results; JSON [true][predicted]; NULL writes "[]" */
    char *per_class_json;    /* heap in results; NULL writes "[]" */
    double created_at;       /* set by the store */
} StoreResult;

/* Records (or replaces) the test results of r->job_id. STORE_NOT_FOUND if no such job. */
int store_result_put(Store *s, const StoreResult *r);
/* Fills *out with the job's results. STORE_NOT_FOUND if none. Release with
 * store_result_deinit. */
int store_result_get(Store *s, int64_t job_id, StoreResult *out);
void store_result_deinit(StoreResult *r);            /* accepts NULL */

typedef struct {
    int64_t job_id;
    StoreCheckpointKind kind;
    int epoch;
    char path[STORE_PATH_MAX];
    double val_acc;          /* NAN: not validated */
    uint32_t crc;
    double created_at;       /* set by the store */
    char attempt_uid[STORE_UID_LEN + 1]; /* put: the attempt that wrote it, "" = unchecked;
                                            not stored, not read back */
} StoreCheckpoint;

/* Records (or replaces) the job's checkpoint of kind c->kind; call after the file is
 * durably renamed into place. With c->attempt_uid set, records it only while that attempt
 * is the job's current one (STORE_CONFLICT otherwise, naming the current attempt).
 * STORE_NOT_FOUND if no such job. */
int store_checkpoint_put(Store *s, const StoreCheckpoint *c);
/* The job's checkpoint of one kind. STORE_NOT_FOUND if none. */
int store_checkpoint_get(Store *s, int64_t job_id, StoreCheckpointKind kind, StoreCheckpoint *out);
/* The job's checkpoints (latest, then best); free() *rows. */
int store_checkpoint_list(Store *s, int64_t job_id, StoreCheckpoint **rows, int *n);
/* Every recorded checkpoint of every job, by job id then kind; free() *rows. */
int store_checkpoint_list_all(Store *s, StoreCheckpoint **rows, int *n);
/* Forgets the job's checkpoint record of kind `kind`, or both with kind -1: its file was
 * set aside, or the job starts from scratch. Forgetting nothing is not an error. */
int store_checkpoint_forget(Store *s, int64_t job_id, int kind);

typedef struct {
    double mean, std;        /* over the seeds with results; std is the sample standard
                                deviation (n - 1), NAN with fewer than 2 values */
} StoreMeanStd;

typedef struct {
    char model[STORE_NAME_MAX];
    char initializer[STORE_NAME_MAX];
    int n_jobs;              /* jobs of the grid with this model and initializer */
    int n;                   /* of them, with test results */
    StoreMeanStd accuracy, precision_macro, recall_macro, f1_macro, loss;
} StoreGridSummary;

/* The paper's Table 1 for grid grid_id: one row per (model, initializer), sorted by model
 * then initializer, with mean and sample std over seeds of each test metric (NAN means
 * when no job has results yet). free() *rows. STORE_NOT_FOUND if the grid does not exist. */
int store_grid_summary(Store *s, int64_t grid_id, StoreGridSummary **rows, int *n);

typedef struct {
    int64_t job_id;
    char model[STORE_NAME_MAX];
    char initializer[STORE_NAME_MAX];
    int64_t seed;
    StoreJobStatus status;
    bool has_result;         /* test results recorded */
    double accuracy, precision_macro, recall_macro, f1_macro, loss; /* NAN without */
} StoreGridRun;

/* Every job of grid grid_id with its test results, sorted by model, initializer, seed and
 * id: what Table 1's per-seed statistics are computed from. free() *rows.
 * STORE_NOT_FOUND if the grid does not exist. */
int store_grid_runs(Store *s, int64_t grid_id, StoreGridRun **rows, int *n);

#endif
