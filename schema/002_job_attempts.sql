-- 002_job_attempts.sql — counts how often each job has been started.
--
-- jobs.attempts: incremented each time a worker claims the job. 1 means it ran in one go;
-- more means it was resumed from a checkpoint (after a restart, a crash or a retry), which
-- the API shows. Jobs that existed before this migration start at 0 (unknown).
ALTER TABLE jobs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
