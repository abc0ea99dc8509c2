-- 007_lab_records.sql — what a lab that keeps initlab for months needs to find its runs
-- again, and the training curve inside epochs.
--
-- jobs.name, jobs.note, grids.name, grids.note: free text a person sets and edits (PATCH);
--   NULL when unset.
-- jobs.tags, grids.tags: a JSON array of short strings (letters, digits, '-', '_', '.', ':'),
--   '[]' when none; lists filter on them (json_each). A grid's jobs get its tags when they
--   are created.
-- steps: the intra-epoch training curve, a point every few steps (about 20 per epoch, so a
--   job holds at most 21 per epoch): the mean loss and accuracy of the steps since the
--   previous point. A job resumed from a checkpoint rewrites the points after it.
ALTER TABLE jobs ADD COLUMN name TEXT;
ALTER TABLE jobs ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';
ALTER TABLE jobs ADD COLUMN note TEXT;
ALTER TABLE grids ADD COLUMN name TEXT;
ALTER TABLE grids ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';
ALTER TABLE grids ADD COLUMN note TEXT;
CREATE TABLE steps (
    job_id          INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    global_step     INTEGER NOT NULL,                -- steps since the start of training
    epoch           INTEGER NOT NULL,                -- 1-based
    step            INTEGER NOT NULL,                -- steps done in the epoch
    steps_per_epoch INTEGER NOT NULL,
    loss            REAL,
    accuracy        REAL,
    PRIMARY KEY (job_id, global_step)
) WITHOUT ROWID;
