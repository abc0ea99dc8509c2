-- 003_jobs_wait_for_scans.sql — the queue index also covers each job's dataset.
--
-- A queued job whose dataset is still being scanned waits: the worker's claim skips it
-- (it starts when the scan ends, or fails with the scan's error). The claim reads the
-- dataset name of the queued jobs it passes over, so the queue index carries it and the
-- claim still reads nothing but the index and the datasets' name index.
DROP INDEX jobs_queue;
CREATE INDEX jobs_queue ON jobs (status, priority DESC, id, dataset);
