"""test_workers.py — the remote workers' protocol (/api/v1/worker/) against a real daemon
(under the sanitizers in `make test`): leases and their end, fencing of superseded
attempts, cancellation through the heartbeat, the worker token's scope, the upload route's
media type, a dataset that differs on the worker, and a real `initlab worker` (the release
binary) training a job for the daemon."""
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import unittest

from daemon import Daemon, ROOT

WORKER_BIN = os.path.abspath(os.environ.get("INITLAB_WORKER_BIN",
                                            os.path.join(ROOT, "initlab")))
ADMIN = "admin-token-0123456789abcdef"
WORKER = "worker-token-0123456789abcdef"
TMP = None
DATA = None
JOB = {"dataset": "small", "model": "plain", "depth": 2, "width": 4, "image_size": 32,
       "epochs": 2, "batch_size": 8, "init": "he_uniform", "threads": 1}
EPOCH = {"epoch": 1, "train_loss": 1.25, "train_acc": 0.5, "val_loss": "inf",
         "val_acc": 0.25, "lr": 0.05, "seconds": 0.5, "images_per_sec": 10.0}
STEP = {"global_step": 3, "epoch": 1, "step": 3, "steps_per_epoch": 12, "loss": 2.25,
        "accuracy": 0.125}


def setUpModule():
    global TMP, DATA
    TMP = tempfile.mkdtemp(prefix="initlab-workers-")
    DATA = os.path.join(TMP, "data")
    subprocess.run([WORKER_BIN, "demo-data", os.path.join(DATA, "small"), "--classes", "3",
                    "--per-class", "12", "--size", "32"], check=True, capture_output=True)
    with open(os.open(os.path.join(TMP, "worker"), os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
        f.write(WORKER)


def tearDownModule():
    shutil.rmtree(TMP, ignore_errors=True)


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Protocol(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = Daemon(args=["--data-root", DATA, "--workers", "0", "--lease-timeout", "2",
                             "--heartbeat", "1", "--worker-token-file",
                             os.path.join(TMP, "worker")], token=ADMIN).start()
        r = cls.d.request("POST", "/api/v1/datasets", {"name": "small", "path": "small"})
        assert r.status == 202, r
        wait_for(lambda: cls.d.get("/api/v1/datasets/small").json()["status"] == "ready", 60,
                 "the scan")

    @classmethod
    def tearDownClass(cls):
        cls.d.close()

    def submit(self, **extra):
        r = self.d.request("POST", "/api/v1/jobs", dict(JOB, **extra))
        self.assertEqual(r.status, 201, r)
        return r.json()["id"]

    def w(self, method, path, body=None, lease=None, headers=None, token=WORKER):
        h = dict(headers or {})
        if lease:
            h["Initlab-Lease"] = lease
        return self.d.request(method, path, body, headers=h, token=token)

    def lease(self, **body):
        return self.w("POST", "/api/v1/worker/lease", dict({"worker": "test:1", "host": "t"},
                                                            **body))

    def report(self, job, lease, kind, body):
        return self.w("POST", f"/api/v1/worker/jobs/{job}/reports/{kind}", body, lease)

    def epochs(self, job):
        return self.d.get(f"/api/v1/jobs/{job}/epochs").json()["epochs"]

    def steps(self, job):
        return self.d.get(f"/api/v1/jobs/{job}/steps").json()["steps"]

    def refused(self):
        m = re.search(r"^initlab_worker_reports_refused (\S+)$",
                      self.d.get("/metrics").body.decode(), re.M)
        return float(m.group(1))

    def test_1_lease_report_end(self):
        job = self.submit()
        r = self.lease(job_id=job)
        self.assertEqual(r.status, 200, r)
        lease = r.json()
        self.assertEqual(lease["job"]["id"], job)
        self.assertEqual(lease["dataset"]["relpath"], "small")
        self.assertEqual(len(lease["dataset"]["files_digest"]), 16)
        self.assertEqual(lease["epochs_stored"], [])
        self.assertEqual(lease["checkpoints"], {"latest": None, "best": None})
        token = lease["lease"]
        j = self.d.get(f"/api/v1/jobs/{job}").json()
        self.assertEqual((j["status"], j["where"]["worker"], j["where"]["host"]),
                         ("running", "test:1", "t"))
        self.assertIsNotNone(j["where"]["lease_expires_at"])
        hb = self.w("POST", f"/api/v1/worker/jobs/{job}/heartbeat",
                    {"worker": "test:1", "phase": "train",
                     "progress": {"epoch": 1, "step": 3, "steps_per_epoch": 9,
                                  "images_per_sec": 12.5, "eta_seconds": "nan",
                                  "best_val_acc": "nan", "best_epoch": 0}}, token)
        self.assertEqual((hb.status, hb.json()), (200, {"stop": False}))
        j = self.d.get(f"/api/v1/jobs/{job}").json()
        self.assertEqual((j["progress"]["step"], j["progress"]["phase"]), (3, "train"))
        workers = self.d.get("/api/v1/workers").json()
        self.assertIn("test:1", [w["worker"] for w in workers["workers"]])
        self.assertEqual(self.report(job, token, "epoch", {"epoch": EPOCH}).status, 204)
        (e,) = self.epochs(job)
        self.assertEqual((e["train_loss"], e["val_loss"], e["lr"]), (1.25, None, 0.05))
        self.assertEqual(self.report(job, token, "end", {"outcome": "done"}).status, 204)
        self.assertEqual(self.d.get(f"/api/v1/jobs/{job}").json()["status"], "done")
        # An ended attempt writes nothing more.
        self.assertEqual(self.report(job, token, "epoch",
                                     {"epoch": dict(EPOCH, epoch=2)}).status, 409)
        self.assertEqual(len(self.epochs(job)), 1)

    def test_2_superseded_attempt_is_refused(self):
        job = self.submit()
        old = self.lease(job_id=job).json()["lease"]
        self.assertEqual(self.report(job, old, "epoch", {"epoch": EPOCH}).status, 204)
        # No heartbeat: the lease ends and the job is queued again (the reaper, every s).
        wait_for(lambda: self.d.get(f"/api/v1/jobs/{job}").json()["status"] == "queued", 10,
                 "the lease to end")
        self.assertIn(f"job {job}: its worker's lease ended", self.d.log())
        new = self.lease(job_id=job).json()
        self.assertEqual(new["job"]["attempt"], 2)
        self.assertEqual(new["epochs_stored"], [1])
        before = self.refused()
        late = self.report(job, old, "epoch", {"epoch": dict(EPOCH, epoch=2)})
        self.assertEqual(late.status, 409, late)
        self.assertIn("another attempt", late.json()["detail"])
        self.assertEqual(self.w("POST", f"/api/v1/worker/jobs/{job}/heartbeat", {},
                                old).status, 409)
        self.assertEqual(self.report(job, old, "end", {"outcome": "done"}).status, 409)
        self.assertEqual(self.report(job, old, "steps", {"steps": [STEP]}).status, 409)
        self.assertEqual(self.refused(), before + 4)
        self.assertEqual([e["epoch"] for e in self.epochs(job)], [1])
        self.assertEqual(self.d.get(f"/api/v1/jobs/{job}").json()["status"], "running")
        # The current attempt goes on; its curve points are stored, and a malformed one is
        # refused naming the member.
        self.assertEqual(self.report(job, new["lease"], "steps", {"steps": [STEP]}).status, 204)
        self.assertEqual([p["global_step"] for p in self.steps(job)], [STEP["global_step"]])
        bad = self.report(job, new["lease"], "steps", {"steps": [dict(STEP, step=99)]})
        self.assertEqual(bad.status, 400, bad)
        self.assertIn("steps_per_epoch", bad.json()["detail"])
        self.assertEqual(self.report(job, new["lease"], "resumed", {"epoch": 0, "step": 0})
                         .status, 204)
        self.assertEqual(self.epochs(job), [])
        self.assertEqual(self.steps(job), [])
        self.assertEqual(self.report(job, new["lease"], "end", {"outcome": "failed",
                                                                "error": "boom"}).status, 204)
        j = self.d.get(f"/api/v1/jobs/{job}").json()
        self.assertEqual((j["status"], j["error"]), ("failed", "boom"))

    def test_3_same_slurm_job_supersedes_others_do_not(self):
        job = self.submit()
        first = self.lease(job_id=job, slurm_job_id="77").json()["lease"]
        self.assertEqual(self.lease(job_id=job, slurm_job_id="78").status, 409)
        self.assertEqual(self.lease(job_id=job).status, 409)
        # Slurm started job 77 again (its node failed, its controller restarted).
        second = self.lease(job_id=job, slurm_job_id="77")
        self.assertEqual(second.status, 200, second)
        self.assertEqual(second.json()["job"]["attempt"], 2)
        self.assertEqual(self.report(job, first, "epoch", {"epoch": EPOCH}).status, 409)
        self.assertEqual(self.report(job, second.json()["lease"], "end",
                                     {"outcome": "done"}).status, 204)

    def test_4_cancel_reaches_the_worker_through_its_heartbeat(self):
        job = self.submit()
        lease = self.lease(job_id=job).json()["lease"]
        r = self.d.request("POST", f"/api/v1/jobs/{job}/cancel")
        self.assertEqual(r.status, 200, r)
        hb = self.w("POST", f"/api/v1/worker/jobs/{job}/heartbeat", {}, lease)
        self.assertEqual(hb.json(), {"stop": True})
        self.assertEqual(self.report(job, lease, "end", {"outcome": "stopped"}).status, 204)
        self.assertEqual(self.d.get(f"/api/v1/jobs/{job}").json()["status"], "cancelled")

    def test_5_tokens_media_types_and_malformed_reports(self):
        job = self.submit()
        lease = self.lease(job_id=job).json()["lease"]
        self.assertEqual(self.d.request("GET", "/api/v1/jobs", token=WORKER).status, 403)
        self.assertEqual(self.d.request("POST", f"/api/v1/jobs/{job}/cancel",
                                        token=WORKER).status, 403)
        self.assertEqual(self.d.request("POST", "/api/v1/worker/lease",
                                        {"worker": "a", "host": "b"}, token=None).status, 401)
        path = f"/api/v1/worker/jobs/{job}/checkpoints/latest"
        r = self.w("PUT", path, b"{}", lease, headers={"Content-Type": "application/json"})
        self.assertEqual(r.status, 415, r)
        r = self.w("PUT", path, b"not a checkpoint", lease,
                   headers={"Content-Type": "application/octet-stream"})
        self.assertEqual(r.status, 400, r)
        self.assertIn("damaged", r.json()["detail"])
        self.assertEqual(self.w("GET", path, None, lease).status, 404)
        self.assertEqual(self.w("POST", f"/api/v1/worker/jobs/{job}/heartbeat", {}).status,
                         400)  # no lease header
        bad = self.report(job, lease, "epoch", {"epoch": dict(EPOCH, train_loss="lots")})
        self.assertEqual(bad.status, 400, bad)
        self.assertIn("train_loss", bad.json()["detail"])
        bad = self.report(job, lease, "stats", {"epoch": 0, "rows": [{"layer": "x"}]})
        self.assertEqual(bad.status, 400, bad)
        self.assertEqual(self.epochs(job), [])
        self.assertEqual(self.report(job, lease, "end", {"outcome": "done"}).status, 204)
        # No job left: the lease says so with 204.
        self.assertEqual(self.lease().status, 204)

    def run_worker(self, *extra, threads="1", env=None):
        return subprocess.run([WORKER_BIN, "worker", "--server",
                               f"http://127.0.0.1:{self.d.port}", "--token-file",
                               os.path.join(TMP, "worker"), "--cache-dir",
                               os.path.join(TMP, "cache"),
                               *(["--threads", threads] if threads else []), *extra],
                              capture_output=True, text=True, timeout=300,
                              env=dict(os.environ, **(env or {})))

    def test_6_real_worker_trains_a_job(self):
        job = self.submit()
        out = self.run_worker("--once", "--data-root", DATA)
        self.assertEqual(out.returncode, 0, out.stderr)
        j = self.d.get(f"/api/v1/jobs/{job}").json()
        self.assertEqual(j["status"], "done", out.stderr + self.d.log()[-2000:])
        self.assertEqual([e["epoch"] for e in self.epochs(job)], [1, 2])
        # The intra-epoch curve came over the wire as a local job's does: every epoch's
        # points, the last at the epoch's last step.
        steps = self.steps(job)
        self.assertEqual(sorted({p["epoch"] for p in steps}), [1, 2], steps)
        for e in (1, 2):
            last = max((p for p in steps if p["epoch"] == e), key=lambda p: p["step"])
            self.assertEqual(last["step"], last["steps_per_epoch"], steps)
        self.assertEqual(self.d.get(f"/api/v1/jobs/{job}/results").status, 200)
        stats = self.d.get(f"/api/v1/jobs/{job}/stats?epoch=0&quantity=weight&mode=train")
        self.assertEqual(stats.status, 200, stats)
        # The uploaded checkpoints follow the retention policy as a local job's do: the
        # default (best) keeps best.ckpt and deletes latest.ckpt once the job is done.
        folder = os.path.join(self.d.state_dir, "jobs", str(job))
        self.assertTrue(os.path.getsize(os.path.join(folder, "best.ckpt")) > 32, folder)
        self.assertFalse(os.path.exists(os.path.join(folder, "latest.ckpt")), folder)

    def test_7_a_different_dataset_on_the_worker_fails_the_job(self):
        other = os.path.join(TMP, "other")
        shutil.copytree(DATA, other)
        victim = sorted(os.listdir(os.path.join(other, "small", "amaranth")))[0]
        os.unlink(os.path.join(other, "small", "amaranth", victim))
        job = self.submit()
        # Without --threads, the worker runs as many threads as Slurm gave the task CPUs.
        out = self.run_worker("--once", "--data-root", other, threads=None,
                              env={"SLURM_CPUS_PER_TASK": "3"})
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("with 3 thread(s)", out.stderr)
        j = self.d.get(f"/api/v1/jobs/{job}").json()
        self.assertEqual(j["status"], "failed")
        self.assertIn("not the daemon's", j["error"])
        self.assertEqual(self.epochs(job), [])


if __name__ == "__main__":
    unittest.main()
