-- 001_initial.sql — the initial schema of the initlab database: datasets and their splits,
-- grids, jobs, per-epoch metrics, per-layer statistics, test results, checkpoints and
-- idempotency keys.
--
-- Conventions for every table:
--   * times are unix seconds (UTC) as REAL;
--   * enumerations are lower-case TEXT guarded by a CHECK, readable with the sqlite3 shell;
--   * a NULL REAL means "no value": not measured, or NaN (SQLite stores NaN as NULL);
--   * JSON columns hold text written and read by the API; the store does not parse them;
--   * rows that belong to a job or a dataset go with it (ON DELETE CASCADE).
-- Tables that are only ever read by a prefix of their primary key are WITHOUT ROWID:
-- the primary key is then the table's own b-tree and a range query reads adjacent rows.

-- datasets: one registered ImageFolder dataset (a directory with one folder per class).
-- A row is created as 'scanning'; the scan then fills class_names and the counts and marks
-- it 'ready', or records the reason it 'failed'. The split is drawn per class from seed.
CREATE TABLE datasets (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,   -- never reused: caches are keyed by it
    name        TEXT    NOT NULL UNIQUE,
    path        TEXT    NOT NULL,                    -- absolute directory under the data root
    train_frac  REAL    NOT NULL,
    val_frac    REAL    NOT NULL,
    test_frac   REAL    NOT NULL,
    seed        INTEGER NOT NULL,
    status      TEXT    NOT NULL DEFAULT 'scanning'
                        CHECK (status IN ('scanning', 'ready', 'failed')),
    error       TEXT,                                -- why the scan failed
    class_names TEXT    NOT NULL DEFAULT '[]',       -- JSON array, index = label
    n_classes   INTEGER NOT NULL DEFAULT 0,
    n_files     INTEGER NOT NULL DEFAULT 0,          -- usable images (train + val + test)
    n_train     INTEGER NOT NULL DEFAULT 0,
    n_val       INTEGER NOT NULL DEFAULT 0,
    n_test      INTEGER NOT NULL DEFAULT 0,
    n_skipped   INTEGER NOT NULL DEFAULT 0,
    created_at  REAL    NOT NULL
);

-- dataset_files: every usable image of a dataset, its label and the split it fell in.
-- idx is the file's position in scan order (0-based, dense); the data loader reads a
-- dataset's files in idx order, which is one range of the primary key.
CREATE TABLE dataset_files (
    dataset_id  INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
    idx         INTEGER NOT NULL,
    relpath     TEXT    NOT NULL,                    -- relative to datasets.path
    label       INTEGER NOT NULL,
    split       TEXT    NOT NULL CHECK (split IN ('train', 'val', 'test')),
    size        INTEGER NOT NULL,                    -- bytes
    mtime       INTEGER NOT NULL,                    -- unix seconds
    PRIMARY KEY (dataset_id, idx)
) WITHOUT ROWID;

-- dataset_skipped: files the scan found but could not use, with the reason shown to the
-- user (not a JPEG, unreadable, truncated, ...).
CREATE TABLE dataset_skipped (
    dataset_id  INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
    relpath     TEXT    NOT NULL,
    reason      TEXT    NOT NULL,
    PRIMARY KEY (dataset_id, relpath)
) WITHOUT ROWID;

-- grids: one POST /grids request; config is its JSON body (dataset, models, initializers,
-- seeds, common options). Its jobs point back at it through jobs.grid_id.
CREATE TABLE grids (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at  REAL    NOT NULL,
    config      TEXT    NOT NULL
);

-- jobs: one training run (model x initializer x seed on a dataset). config is the full,
-- resolved job configuration (JSON); dataset, model, initializer, seed and epochs repeat
-- fields of it so that lists can be filtered and shown without parsing JSON.
-- status: queued -> running -> done | failed | cancelled; a failed or cancelled job may be
-- queued again (retry), and jobs left running by a crash are queued again at start-up.
-- The progress columns describe the running (or last) run and are overwritten often.
CREATE TABLE jobs (
    id              INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused: checkpoints are named by it
    grid_id         INTEGER REFERENCES grids(id),
    status          TEXT    NOT NULL DEFAULT 'queued'
                            CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    priority        INTEGER NOT NULL DEFAULT 0,        -- higher runs first; FIFO within a priority
    config          TEXT    NOT NULL,
    dataset         TEXT    NOT NULL,
    model           TEXT    NOT NULL,
    initializer     TEXT    NOT NULL,
    seed            INTEGER NOT NULL,
    epochs          INTEGER NOT NULL,                  -- epochs the job will train
    created_at      REAL    NOT NULL,
    started_at      REAL,                              -- first start
    finished_at     REAL,                              -- last move to done/failed/cancelled
    error           TEXT,
    epoch           INTEGER NOT NULL DEFAULT 0,        -- epoch being trained (1-based)
    step            INTEGER NOT NULL DEFAULT 0,        -- step within it
    steps_per_epoch INTEGER NOT NULL DEFAULT 0,
    images_per_sec  REAL,
    eta_seconds     REAL,
    best_val_acc    REAL,
    best_epoch      INTEGER NOT NULL DEFAULT 0
);
-- The queue: the next job is the first row of status 'queued' in this order.
CREATE INDEX jobs_queue ON jobs (status, priority DESC, id);
-- A grid's jobs, grouped as the summary table groups them.
CREATE INDEX jobs_grid ON jobs (grid_id, model, initializer);

-- idempotency: Idempotency-Key headers seen on POST /jobs and POST /grids. A retried
-- request with the same key gets the jobs (and grid) the first one created; fingerprint
-- identifies the request body so that a key reused for a different body is refused.
CREATE TABLE idempotency (
    key         TEXT    PRIMARY KEY,
    fingerprint TEXT    NOT NULL DEFAULT '',
    grid_id     INTEGER,                             -- NULL for POST /jobs
    job_ids     TEXT    NOT NULL,                    -- JSON array of job ids, request order
    created_at  REAL    NOT NULL
) WITHOUT ROWID;

-- epochs: the learning curve, one row per job and epoch (0 = evaluation before training,
-- if recorded). A job resumed from a checkpoint writes its epochs again: the primary key
-- keeps one row per epoch and the store overwrites it (upsert).
CREATE TABLE epochs (
    job_id          INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    epoch           INTEGER NOT NULL,
    train_loss      REAL,
    train_acc       REAL,
    val_loss        REAL,
    val_acc         REAL,
    lr              REAL,
    seconds         REAL,                            -- wall time of the epoch
    images_per_sec  REAL,
    PRIMARY KEY (job_id, epoch)
) WITHOUT ROWID;

-- layer_stats: the distribution of one quantity of one layer, measured on the probe batch
-- at one epoch (0 = at initialization) in one BatchNorm mode. The primary key order makes
-- "every layer of one job, epoch, mode and quantity" — a box plot across the network —
-- a single range of adjacent rows, already in layer order.
-- hist is 64 little-endian uint32 counts over equal-width bins spanning [hist_lo, hist_hi].
CREATE TABLE layer_stats (
    job_id        INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    epoch         INTEGER NOT NULL,
    mode          TEXT    NOT NULL CHECK (mode IN ('train', 'inference')),
    quantity      TEXT    NOT NULL CHECK (quantity IN ('weight', 'activation', 'gradient')),
    layer_index   INTEGER NOT NULL,
    layer_name    TEXT    NOT NULL,
    layer_type    TEXT    NOT NULL,
    n             INTEGER NOT NULL,                  -- values summarized
    mean          REAL,
    std           REAL,
    min           REAL,
    max           REAL,
    q1            REAL,
    median        REAL,
    q3            REAL,
    whisker_lo    REAL,                              -- Tukey: lowest value >= q1 - 1.5 IQR
    whisker_hi    REAL,                              -- highest value <= q3 + 1.5 IQR
    p1            REAL,
    p99           REAL,
    zero_frac     REAL,                              -- fraction of exact zeros
    nonfinite     INTEGER NOT NULL DEFAULT 0,        -- NaN and infinite values
    predicted_var REAL,                              -- the initializer's variance (kernels)
    dead_units    INTEGER NOT NULL DEFAULT 0,        -- channels zero over the whole batch
    saturation    REAL,                              -- fraction of values at a bound
    flags         INTEGER NOT NULL DEFAULT 0,        -- health bitmask defined by train/
    hist_lo       REAL,
    hist_hi       REAL,
    hist          BLOB,
    PRIMARY KEY (job_id, epoch, mode, quantity, layer_index)
) WITHOUT ROWID;

-- results: the test-split evaluation of a finished job, with the checkpoint epoch it used
-- (the best validation accuracy); the paper's Table 1 is built from these rows.
-- confusion is a JSON matrix [true][predicted]; per_class a JSON array of per-class
-- precision, recall, F1 and support.
CREATE TABLE results (
    job_id          INTEGER PRIMARY KEY REFERENCES jobs(id) ON DELETE CASCADE,
    epoch           INTEGER NOT NULL,
    accuracy        REAL,
    precision_macro REAL,
    recall_macro    REAL,
    f1_macro        REAL,
    loss            REAL,
    confusion       TEXT    NOT NULL DEFAULT '[]',
    per_class       TEXT    NOT NULL DEFAULT '[]',
    created_at      REAL    NOT NULL
);

-- checkpoints: where a job's latest and best checkpoint files are, and what they hold.
-- The files themselves live in the state directory; crc is the one in their header.
CREATE TABLE checkpoints (
    job_id      INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    kind        TEXT    NOT NULL CHECK (kind IN ('latest', 'best')),
    epoch       INTEGER NOT NULL,
    path        TEXT    NOT NULL,
    val_acc     REAL,
    crc         INTEGER NOT NULL,
    created_at  REAL    NOT NULL,
    PRIMARY KEY (job_id, kind)
) WITHOUT ROWID;
