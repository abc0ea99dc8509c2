"""test_identity.py — a real daemon whose database file is deleted or replaced under it, and
restored from an older backup: no write is acknowledged that would be lost, and no new job
ever adopts the checkpoint of a job the database does not know."""
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
import unittest

from daemon import BINARY, Daemon

FAST = {"epochs": 2, "image_size": 32, "batch_size": 16, "probe_size": 8, "lr": 0.01,
        "model": "plain", "depth": 4, "width": 8, "init": "he_uniform"}


def setUpModule():
    global ROOT, DATA
    ROOT = tempfile.mkdtemp(prefix="initlab-api-identity-")
    DATA = os.path.join(ROOT, "weeds")
    out = subprocess.run([BINARY, "demo-data", DATA, "--classes", "3", "--per-class", "30",
                          "--size", "40"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def tearDownModule():
    shutil.rmtree(ROOT, ignore_errors=True)


def wait_for(predicate, timeout=240, interval=0.1, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def register(d):
    r = d.request("POST", "/api/v1/datasets", {"name": "weeds", "path": DATA, "seed": 1})
    assert r.status == 202, r
    wait_for(lambda: d.get("/api/v1/datasets/weeds").json()["status"] == "ready",
             what="dataset scan")


def submit(d, **over):
    body = dict(FAST, dataset="weeds", **over)
    return d.request("POST", "/api/v1/jobs", body)


def wait_finished(d, job_id):
    """The job's status once it is done or failed."""
    def finished():
        status = d.get(f"/api/v1/jobs/{job_id}").json()["status"]
        return status if status in ("done", "failed") else None
    return wait_for(finished, what=f"job {job_id}")


def remove_database(state):
    for suffix in ("", "-wal", "-shm"):
        path = os.path.join(state, "initlab.db" + suffix)
        if os.path.exists(path):
            os.unlink(path)


def online_copy(db, dest):
    """The online backup docs/operations.md described before `initlab backup` (sqlite3's
    .backup): one consistent snapshot of the database alone."""
    src = sqlite3.connect(db)
    dst = sqlite3.connect(dest)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def daemon_args():
    # Checkpoints of done jobs stay (--retention all): these tests handle them.
    return ["--data-root", ROOT, "--workers", "1", "--threads-per-job", "1",
            "--retention", "all"]


class DatabaseDeleted(unittest.TestCase):
    """The database file deleted while the daemon runs: requests are refused with a 503
    that says so, /health says why, a running job stops, and after a restart every job that
    was acknowledged is there and no new job meets an old job's checkpoints."""

    def setUp(self):
        self.state = tempfile.mkdtemp(prefix="initlab-api-state-")
        self.d = Daemon(args=daemon_args(), state_dir=self.state).start()

    def tearDown(self):
        self.d.close()
        shutil.rmtree(self.state, ignore_errors=True)

    def test_writes_refused_health_says_why_nothing_acknowledged_is_lost(self):
        d = self.d
        register(d)
        r = submit(d, seed=1)
        self.assertEqual(r.status, 201, r)
        first = r.json()["id"]
        self.assertEqual(wait_finished(d, first), "done")
        r = submit(d, seed=2, epochs=400)
        self.assertEqual(r.status, 201, r)
        long_job = r.json()["id"]
        wait_for(lambda: d.get(f"/api/v1/jobs/{long_job}").json()["status"] == "running",
                 what="the long job to run")
        self.assertEqual(d.get("/api/v1/health").status, 200)

        remove_database(self.state)

        acknowledged = []
        for attempt in range(3):
            r = submit(d, seed=10 + attempt)
            if 200 <= r.status < 300:
                acknowledged.append(r.json()["id"])
            self.assertEqual(r.status, 503, r)
            self.assertEqual(r.content_type, "application/problem+json")
            self.assertIn("was deleted", r.json()["detail"])
        r = d.request("POST", "/api/v1/datasets", {"name": "more", "path": DATA})
        self.assertEqual(r.status, 503, r)
        r = d.request("DELETE", f"/api/v1/jobs/{first}")
        self.assertEqual(r.status, 503, r)
        self.assertTrue(os.path.isdir(os.path.join(self.state, "jobs", str(first))))

        health = d.get("/api/v1/health")
        self.assertEqual(health.status, 503)
        self.assertEqual(health.json()["status"], "unavailable")
        self.assertIn("initlab.db was deleted", health.json()["reason"])
        # Nothing created a new database file at the path.
        self.assertFalse(os.path.exists(os.path.join(self.state, "initlab.db")))

        # The running job stops at its next step: nothing it trains could be recorded.
        wait_for(lambda: f"job {long_job} failed" in d.log(), what="the long job to stop")
        self.assertIn("was deleted", d.log().split(f"job {long_job} failed", 1)[1])
        wait_for(lambda: d.get("/api/v1/info").json()["workers_busy"] == 0,
                 what="the worker to be idle")
        self.assertEqual(d.stop(), 0, d.log())

        d2 = Daemon(args=daemon_args(), state_dir=self.state).start()
        try:
            for job_id in acknowledged:
                self.assertEqual(d2.get(f"/api/v1/jobs/{job_id}").status, 200, job_id)
            # The new database never hands out the ids of the folders left behind.
            register(d2)
            r = submit(d2, seed=3)
            self.assertEqual(r.status, 201, r)
            new = r.json()["id"]
            self.assertGreater(new, long_job)
            self.assertEqual(wait_finished(d2, new), "done")
            epochs = d2.get(f"/api/v1/jobs/{new}/epochs").json()["epochs"]
            self.assertEqual([e["epoch"] for e in epochs], [1, 2])
        finally:
            d2.close()


class DatabaseReplaced(unittest.TestCase):
    def test_a_file_moved_over_the_database_is_not_written(self):
        state = tempfile.mkdtemp(prefix="initlab-api-state-")
        try:
            with Daemon(args=daemon_args(), state_dir=state) as d:
                register(d)
                db = os.path.join(state, "initlab.db")
                copy = os.path.join(state, "copy.db")
                online_copy(db, copy)
                os.replace(copy, db)
                r = submit(d, seed=1)
                self.assertEqual(r.status, 503, r)
                self.assertIn("was replaced by another file", r.json()["detail"])
                health = d.get("/api/v1/health")
                self.assertEqual(health.status, 503)
                self.assertIn("replaced", health.json()["reason"])
                # Reads neither: each HTTP thread would read another file.
                for _ in range(8):
                    self.assertEqual(d.get("/api/v1/datasets/weeds").status, 503)
        finally:
            shutil.rmtree(state, ignore_errors=True)


class DeleteJob(unittest.TestCase):
    def test_delete_removes_the_jobs_files_and_sets_aside_another_jobs(self):
        state = tempfile.mkdtemp(prefix="initlab-api-state-")
        try:
            with Daemon(args=daemon_args(), state_dir=state) as d:
                register(d)
                a = submit(d, seed=1).json()["id"]
                b = submit(d, seed=2).json()["id"]
                self.assertEqual(wait_finished(d, a), "done")
                self.assertEqual(wait_finished(d, b), "done")
                folder = os.path.join(state, "jobs", str(b))
                # A write killed half-way, and job a's checkpoint copied over job b's best.
                gone = subprocess.Popen(["true"])
                gone.wait()
                with open(os.path.join(folder, f"latest.ckpt.tmp.{gone.pid}"), "wb") as f:
                    f.write(b"half")
                shutil.copy(os.path.join(state, "jobs", str(a), "latest.ckpt"),
                            os.path.join(folder, "best.ckpt"))
                self.assertEqual(d.request("DELETE", f"/api/v1/jobs/{b}").status, 204)
                self.assertFalse(os.path.exists(folder))
                moved = os.listdir(os.path.join(state, "quarantine"))
                self.assertEqual(sorted(m.rsplit(".", 1)[1] for m in moved), ["ckpt", "txt"])
                self.assertTrue(all(m.startswith(f"job{b}-best.") for m in moved))
                self.assertTrue(os.path.exists(os.path.join(state, "jobs", str(a),
                                                            "latest.ckpt")))
        finally:
            shutil.rmtree(state, ignore_errors=True)


class RestoreFromOlderBackup(unittest.TestCase):
    """A backup taken before two jobs ran, restored over the database while their
    checkpoint folders stay: a new job trains from scratch, exactly as the same job in
    the original database did, instead of resuming a checkpoint the database does not
    know about."""

    def test_new_jobs_never_adopt_a_checkpoint_the_restored_database_does_not_know(self):
        state = tempfile.mkdtemp(prefix="initlab-api-state-")
        backup = state + "-backup.db"
        try:
            with Daemon(args=daemon_args(), state_dir=state) as d:
                register(d)
                online_copy(os.path.join(state, "initlab.db"), backup)
                other = submit(d, seed=1).json()["id"]
                self.assertEqual(wait_finished(d, other), "done")
                reference = submit(d, seed=2).json()["id"]
                self.assertEqual(wait_finished(d, reference), "done")
                want_epochs = d.get(f"/api/v1/jobs/{reference}/epochs").json()["epochs"]
                want = d.get(f"/api/v1/jobs/{reference}/results").json()
            # The restore of the database alone, the job folders left in place.
            remove_database(state)
            shutil.copy(backup, os.path.join(state, "initlab.db"))
            self.assertTrue(os.path.exists(os.path.join(state, "jobs", str(other),
                                                        "latest.ckpt")))
            with Daemon(args=daemon_args(), state_dir=state) as d:
                self.assertEqual(d.get("/api/v1/jobs").json()["total"], 0)
                again = submit(d, seed=2).json()["id"]
                self.assertEqual(wait_finished(d, again), "done")
                got_epochs = d.get(f"/api/v1/jobs/{again}/epochs").json()["epochs"]
                got = d.get(f"/api/v1/jobs/{again}/results").json()
            self.assertEqual([e["epoch"] for e in got_epochs], [1, 2])
            for a, b in zip(got_epochs, want_epochs):
                self.assertEqual(a["train_loss"], b["train_loss"])
                self.assertEqual(a["val_acc"], b["val_acc"])
            for key in ("accuracy", "loss", "f1_macro", "confusion"):
                self.assertEqual(got[key], want[key], key)
        finally:
            shutil.rmtree(state, ignore_errors=True)
            if os.path.exists(backup):
                os.unlink(backup)


if __name__ == "__main__":
    unittest.main()
