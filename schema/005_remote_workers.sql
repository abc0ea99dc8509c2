-- 005_remote_workers.sql — jobs trained away from the daemon: by `initlab worker` processes
-- that lease them over HTTP, started by hand, by systemd, by Kubernetes or by the Slurm
-- executor (jobs/lease.h, jobs/slurm.h).
--
-- jobs.lease_expires_at: while a remote attempt runs the job, the time (unix seconds) its
--   lease ends unless a heartbeat renews it; NULL for an attempt in the daemon's own
--   workers (or `initlab train`). A running job whose lease ended is queued again and
--   resumes from the last checkpoint the daemon holds. At start-up the daemon queues again
--   only the running jobs without a lease: those with one are still trained elsewhere.
-- jobs.host, jobs.worker: where the current (or last) attempt runs: the machine's name and
--   the worker's name ("local 0" for the daemon's own worker thread 0, "slurm 4242" or the
--   host and process id of a pull worker). NULL before the first start.
-- jobs.slurm_job_id: the Slurm job the Slurm executor submitted for this job ("4242"), kept
--   while the job is queued or running there so that a restarted daemon adopts it instead
--   of submitting again; NULL for other executors.
-- jobs.stop_request: 'cancel' once a user cancelled a job a remote attempt is running; the
--   attempt hears it at its next heartbeat, checkpoints and ends as cancelled.
ALTER TABLE jobs ADD COLUMN lease_expires_at REAL;
ALTER TABLE jobs ADD COLUMN host TEXT;
ALTER TABLE jobs ADD COLUMN worker TEXT;
ALTER TABLE jobs ADD COLUMN slurm_job_id TEXT;
ALTER TABLE jobs ADD COLUMN stop_request TEXT CHECK (stop_request IN ('cancel'));
-- The queue index covers the claim again: a queued job with a Slurm job id is not claimed
-- (it waits for its Slurm job), so the claim reads slurm_job_id too.
DROP INDEX jobs_queue;
CREATE INDEX jobs_queue ON jobs (status, slurm_job_id, priority DESC, id, dataset);
