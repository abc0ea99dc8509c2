-- 004_job_identity.sql — every job and every attempt of it gets an identity that no other
-- job ever has, even after the database is lost, restored from a backup or reinstalled.
--
-- Job ids are small integers that a new or restored database hands out again, while the
-- checkpoints named by them (state/jobs/ID/) outlive the database. So each job also gets
-- a random 128-bit uid (32 lower-case hex digits) when it is created, and each attempt
-- (every start of the job by a worker or by `initlab train`) a random attempt_uid. Every
-- checkpoint records both; a job resumes only from a checkpoint carrying its own uid.
--
-- jobs.uid: set by the store at insert (getrandom(2)); unique; never changes.
-- jobs.attempt_uid: replaced at every start; NULL until the first. A checkpoint is recorded
--   only by the attempt that is current, so an attempt that was superseded (its job was
--   queued again and started elsewhere) cannot record over the new one.
-- jobs.pre_identity: 1 for jobs created before this migration. Their checkpoints were
--   written without an identity; such a checkpoint is adopted only by a job with this flag
--   and only when the configuration it records equals the job's (train/checkpoint.h).
ALTER TABLE jobs ADD COLUMN uid TEXT;
ALTER TABLE jobs ADD COLUMN attempt_uid TEXT;
ALTER TABLE jobs ADD COLUMN pre_identity INTEGER NOT NULL DEFAULT 0;
UPDATE jobs SET uid = lower(hex(randomblob(16))), pre_identity = 1;
CREATE UNIQUE INDEX jobs_uid ON jobs (uid);
