"""test_lab.py — a daemon a lab lives in for months, against a real daemon: every change
of a job, grid or dataset on the event stream with Last-Event-ID resumption, cancel
within two seconds in the statistics, training, validation and test phases and SIGTERM in
the statistics phase, grid operations, names, tags, notes and search, retention and disk
usage, downloads (weights, record bundles), the image-cache limit, datasets deleted and
rescanned."""
import json
import os
import queue
import shutil
import signal
import sqlite3
import struct
import subprocess
import tempfile
import threading
import time
import unittest

from daemon import BINARY, Daemon

TINY = {"model": "plain", "depth": 2, "width": 4, "epochs": 1, "image_size": 32,
        "batch_size": 16, "probe_size": 8}
# Long enough to be running while the queue behind it is edited.
SLOW = {"model": "plain", "depth": 6, "width": 16, "epochs": 50, "image_size": 64,
        "batch_size": 4, "probe_size": 8}


def setUpModule():
    global ROOT, DATA
    ROOT = tempfile.mkdtemp(prefix="initlab-api-lab-")
    DATA = os.path.join(ROOT, "weeds")
    out = subprocess.run([BINARY, "demo-data", DATA, "--classes", "3", "--per-class", "30",
                          "--size", "40"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def tearDownModule():
    shutil.rmtree(ROOT, ignore_errors=True)


def wait_for(predicate, timeout=180, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def register(d, name="weeds", path=None, **extra):
    r = d.request("POST", "/api/v1/datasets", {"name": name, "path": path or DATA, **extra})
    assert r.status == 202, r
    wait_for(lambda: d.get(f"/api/v1/datasets/{name}").json()["status"] == "ready",
             what="dataset scan")


def status(d, job):
    return d.get(f"/api/v1/jobs/{job}").json()["status"]


def wait_status(d, job, want, timeout=180):
    wait_for(lambda: status(d, job) in want, timeout, what=f"job {job} to be {want}")
    return status(d, job)


class Stream:
    """An event-stream client in a thread: (id, event, data) tuples in a queue."""

    def __init__(self, d, last_event_id=None):
        self.events = queue.Queue()
        self.conn = d.connection(timeout=120)
        headers = {"Last-Event-ID": str(last_event_id)} if last_event_id is not None else {}
        self.conn.request("GET", "/api/v1/events", headers=headers)
        self.resp = self.conn.getresponse()
        assert self.resp.status == 200
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        ev = {}
        try:
            for raw in self.resp.fp:
                line = raw.decode().rstrip("\n")
                if not line:
                    if "data" in ev:
                        self.events.put((int(ev.get("id", 0)), ev.get("event", "message"),
                                         json.loads(ev["data"])))
                    ev = {}
                elif not line.startswith(":"):
                    k, _, v = line.partition(":")
                    ev[k] = v[1:] if v.startswith(" ") else v
        except (OSError, ValueError):
            pass

    def wait(self, match, timeout=60, what="event"):
        """The first event (id, name, data) for which match is true; the others are
        dropped on the way."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                e = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if match(*e):
                return e
        raise AssertionError(f"no {what} within {timeout} s")

    def close(self):
        self.conn.close()


class LiveQueue(unittest.TestCase):
    """An SSE client sees every change made through the API, resumes with Last-Event-ID,
    and a cancel takes effect within two seconds in every phase of a job."""

    @classmethod
    def setUpClass(cls):
        cls.d = Daemon(args=["--data-root", ROOT, "--threads-per-job", "1"]).start()
        register(cls.d)

    @classmethod
    def tearDownClass(cls):
        cls.d.close()

    def job_event(self, stream, job, state, name="job"):
        return stream.wait(lambda i, e, d: e == name and d.get("id") == job and
                           d["status"] == state, what=f"{name} event: job {job} {state}")

    def test_every_change_is_an_event_and_the_stream_resumes(self):
        d = self.d
        stream = Stream(d)
        try:
            running = d.request("POST", "/api/v1/jobs", {"dataset": "weeds", **SLOW}).json()["id"]
            wait_status(d, running, ("running",))
            r = d.request("POST", "/api/v1/jobs", {"dataset": "weeds", **TINY, "name": "probe",
                                                   "tags": ["lab", "q1"]})
            self.assertEqual(r.status, 201, r)
            job = r.json()["id"]
            self.assertEqual(r.json()["config"]["threads"], 1, "threads: the daemon's")
            first, _, created = self.job_event(stream, job, "queued")
            self.assertEqual((created["name"], created["tags"]), ("probe", ["lab", "q1"]))
            r = d.request("PATCH", f"/api/v1/jobs/{job}", {"priority": 7, "note": "try 7"})
            self.assertEqual(r.status, 200, r)
            _, _, changed = stream.wait(lambda i, e, x: e == "job" and x["id"] == job and
                                        x["priority"] == 7, what="the priority change")
            self.assertEqual((changed["config"]["priority"], changed["note"]), (7, "try 7"))
            self.assertEqual(d.request("POST", f"/api/v1/jobs/{job}/cancel").status, 200)
            self.job_event(stream, job, "cancelled")
            self.assertEqual(d.request("POST", f"/api/v1/jobs/{job}/retry").status, 200)
            self.job_event(stream, job, "queued")
            self.assertEqual(d.request("POST", f"/api/v1/jobs/{job}/cancel").status, 200)
            self.job_event(stream, job, "cancelled")
            self.assertEqual(d.request("DELETE", f"/api/v1/jobs/{job}").status, 204)
            last, _, _ = stream.wait(lambda i, e, x: e == "job_deleted" and x["id"] == job,
                                     what="job_deleted")
            # Progress of the running job, at most one event a second, and curve points.
            _, _, p = stream.wait(lambda i, e, x: e == "progress" and x["id"] == running,
                                  what="a progress event")
            self.assertEqual(p["status"], "running")
            # At most one progress event a second per job (one more for a change of phase).
            n, end = 0, time.monotonic() + 3.0
            while time.monotonic() < end:
                try:
                    _, e, x = stream.events.get(timeout=max(0.01, end - time.monotonic()))
                except queue.Empty:
                    break
                n += e == "progress" and x.get("id") == running
            self.assertTrue(1 <= n <= 4, f"{n} progress events in 3 s")
            stream.wait(lambda i, e, x: e == "step" and x["job_id"] == running,
                        what="a step event")
            r = d.request("PATCH", f"/api/v1/jobs/{running}", {"priority": 1})
            self.assertEqual(r.status, 409, "the priority of a running job cannot change")
            self.assertEqual(r.json()["field"], "priority")
        finally:
            stream.close()
        # A client that reconnects with the id of the first event gets what followed it.
        again = Stream(d, last_event_id=first)
        try:
            i, name, data = again.wait(lambda i, e, x: True, what="a replayed event")
            self.assertEqual(i, first + 1)
            again.wait(lambda i, e, x: i == last and e == "job_deleted", what="the replay")
        finally:
            again.close()
        stale = Stream(d, last_event_id=1)
        try:
            stale.wait(lambda i, e, x: e == "reset", what="a reset for an unknown id")
        finally:
            stale.close()
        steps = d.get(f"/api/v1/jobs/{running}/steps").json()
        self.assertGreater(len(steps["steps"]), 0, "intra-epoch points before epoch 1 ends")
        self.assertEqual(d.request("POST", f"/api/v1/jobs/{running}/cancel").status, 200)
        wait_status(d, running, ("cancelled",), 30)

    def test_cancel_during_statistics_takes_effect_within_two_seconds(self):
        d = self.d
        # The statistics of epoch 0 of this net take several seconds (32 images of 160 px
        # through MobileNet, both BatchNorm modes, every layer summarized).
        job = d.request("POST", "/api/v1/jobs", {
            "dataset": "weeds", "model": "mobilenet", "image_size": 160, "batch_size": 8,
            "probe_size": 32, "epochs": 1, "priority": 1000}).json()["id"]
        wait_for(lambda: d.get(f"/api/v1/jobs/{job}").json()["progress"]["phase"] ==
                 "statistics", 120, 0.01, "the statistics phase")
        t0 = time.monotonic()
        self.assertEqual(d.request("POST", f"/api/v1/jobs/{job}/cancel").status, 200)
        wait_status(d, job, ("cancelled",), 30)
        took = time.monotonic() - t0
        self.assertLess(took, 2.0, f"cancel in the statistics phase took {took:.2f} s")
        self.assertEqual(d.get(f"/api/v1/jobs/{job}/stats?epoch=0").json()["layers"], [],
                         "statistics cut short are not recorded")

    def test_cancel_takes_effect_within_two_seconds_in_every_phase(self):
        d = self.d
        # A validation and a test split twice the training split, so that validating and
        # testing last long enough (about a second or more) to be caught and cut.
        register(d, "phases", DATA, split=[0.2, 0.4, 0.4], seed=0)
        config = {"dataset": "phases", "model": "mobilenet", "image_size": 160,
                  "batch_size": 6, "probe_size": 6, "epochs": 1, "priority": 1000}
        took = {}
        for phase in ("train", "validate", "test"):
            job = d.request("POST", "/api/v1/jobs", config).json()["id"]
            wait_for(lambda: d.get(f"/api/v1/jobs/{job}").json()["progress"]["phase"] ==
                     phase, 120, 0.01, f"the {phase} phase")
            t0 = time.monotonic()
            self.assertEqual(d.request("POST", f"/api/v1/jobs/{job}/cancel").status, 200)
            wait_status(d, job, ("cancelled", "done"), 30)
            took[phase] = time.monotonic() - t0
            self.assertEqual(status(d, job), "cancelled", f"the {phase} phase ran to its end")
        self.assertLess(max(took.values()), 2.0, f"cancel took {took}")


class Shutdown(unittest.TestCase):
    def test_sigterm_in_the_statistics_phase_stops_the_daemon_within_two_seconds(self):
        with Daemon(args=["--data-root", ROOT, "--threads-per-job", "1"]) as d:
            register(d)
            job = d.request("POST", "/api/v1/jobs", {
                "dataset": "weeds", "model": "mobilenet", "image_size": 160, "batch_size": 8,
                "probe_size": 32, "epochs": 1}).json()["id"]
            wait_for(lambda: d.get(f"/api/v1/jobs/{job}").json()["progress"]["phase"] ==
                     "statistics", 120, 0.01, "the statistics phase")
            t0 = time.monotonic()
            self.assertEqual(d.stop(signal.SIGTERM), 0, d.log())
            took = time.monotonic() - t0
            self.assertLess(took, 2.0, f"SIGTERM in the statistics phase took {took:.2f} s")
            self.assertIn(f"job {job} checkpointed and queued again", d.log())
            with sqlite3.connect(os.path.join(d.state_dir, "initlab.db")) as c:
                (state,) = c.execute("SELECT status FROM jobs WHERE id = ?", (job,)).fetchone()
            self.assertEqual(state, "queued", "it runs again at the next start")


class Grids(unittest.TestCase):
    """Grid-wide operations, Table 1's k of n, names, tags, notes and search."""

    def test_grid_operations(self):
        with Daemon(args=["--data-root", ROOT, "--workers", "2", "--threads-per-job", "1"]) as d:
            register(d)
            stream = Stream(d)
            self.addCleanup(stream.close)
            # Two slow jobs hold both workers, so that the whole grid waits in the queue.
            blockers = [d.request("POST", "/api/v1/jobs", {"dataset": "weeds", **SLOW,
                                                           "seed": k}).json()["id"]
                        for k in range(2)]
            body = {"dataset": "weeds", **{k: v for k, v in TINY.items() if k != "model"},
                    "models": ["plain", "mlp"], "initializers": ["glorot_uniform", "he_uniform"],
                    "seeds": [0, 1], "name": "paper-mini", "tags": ["paper"], "priority": -5}
            r = d.request("POST", "/api/v1/grids", body)
            self.assertEqual(r.status, 201, r)
            grid = r.json()["grid_id"]
            jobs = [j["id"] for j in r.json()["jobs"]]
            self.assertEqual(len(jobs), 8)
            stream.wait(lambda i, e, x: e == "grid" and x["id"] == grid, what="the new grid")
            # Cancel the whole grid in one call, then retry it in one call.
            r = d.request("POST", f"/api/v1/grids/{grid}/cancel")
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json()["jobs_changed"], 8)
            wait_for(lambda: all(status(d, j) == "cancelled" for j in jobs), 60,
                     what="every job cancelled")
            for j in blockers:
                d.request("POST", f"/api/v1/jobs/{j}/cancel")
            r = d.request("POST", f"/api/v1/grids/{grid}/retry")
            self.assertEqual(r.json()["jobs_changed"], 8)
            for j in jobs:
                self.assertEqual(wait_status(d, j, ("done", "failed"), 300), "done")
            g = d.get(f"/api/v1/grids/{grid}").json()
            self.assertEqual((g["name"], g["tags"], g["n_seeds"]), ("paper-mini", ["paper"], 2))
            self.assertTrue(all(j["tags"] == ["paper"] for j in g["jobs"]))
            # One seed's job deleted: Table 1 says 1 of 2, and adding the seed again runs it.
            gone = next(j for j in g["jobs"] if j["model"] == "mlp" and j["seed"] == 1)
            self.assertEqual(d.request("DELETE", f"/api/v1/jobs/{gone['id']}").status, 204)
            rows = d.get(f"/api/v1/grids/{grid}/summary").json()["rows"]
            row = next(x for x in rows if x["model"] == "mlp" and
                       x["initializer"] == gone["initializer"])
            self.assertEqual((row["n"], row["n_seeds"]), (1, 2))
            csv = d.get(f"/api/v1/grids/{grid}/summary?format=csv").body.decode()
            self.assertIn("n_seeds", csv.splitlines()[0])
            r = d.request("POST", f"/api/v1/grids/{grid}/seeds", {"seeds": [1, 2]})
            self.assertEqual(r.status, 201, r)
            added = r.json()["jobs"]
            self.assertEqual(sorted((j["model"], j["initializer"], j["seed"]) for j in added),
                             sorted([("mlp", gone["initializer"], 1)] +
                                    [(m, i, 2) for m in ("plain", "mlp")
                                     for i in ("glorot_uniform", "he_uniform")]))
            self.assertEqual(r.json()["n_seeds"], 3)
            self.assertEqual(r.json()["config"]["seeds"], [0, 1, 2])
            # Priorities of the queued jobs change with the grid's.
            r = d.request("PATCH", f"/api/v1/grids/{grid}", {"priority": 9, "note": "more seeds",
                                                            "tags": ["paper", "seeds3"]})
            self.assertEqual(r.status, 200, r)
            stream.wait(lambda i, e, x: e == "grid" and x["id"] == grid and
                        x["note"] == "more seeds", what="the grid's change")
            queued = [j for j in d.get(f"/api/v1/grids/{grid}").json()["jobs"]
                      if j["status"] == "queued"]
            self.assertTrue(all(j["priority"] == 9 for j in queued))
            # Search and filters.
            self.assertEqual([x["id"] for x in d.get("/api/v1/grids?tag=seeds3").json()["grids"]],
                             [grid])
            self.assertEqual(d.get("/api/v1/grids?tag=nothing").json()["grids"], [])
            self.assertEqual(d.get("/api/v1/grids?q=MORE").json()["grids"][0]["id"], grid)
            self.assertEqual(d.get("/api/v1/jobs?tag=paper").json()["total"], 12)
            first = added[0]["id"]
            d.request("PATCH", f"/api/v1/jobs/{first}", {"name": "100% odd_name"})
            found = d.get("/api/v1/jobs?q=100%25%20odd_").json()["jobs"]
            self.assertEqual([j["id"] for j in found], [first])
            self.assertEqual(d.get("/api/v1/jobs?q=100%25x").json()["total"], 0,
                             "% in a search is a character, not a wildcard")
            r = d.request("PATCH", f"/api/v1/jobs/{first}", {"tags": ["bad tag"]})
            self.assertEqual((r.status, r.json()["field"]), (400, "tags"))
            r = d.request("PATCH", f"/api/v1/jobs/{first}", {"name": None})
            self.assertIsNone(r.json()["name"])
            grids_csv = d.get("/api/v1/grids?format=csv")
            self.assertEqual(grids_csv.content_type, "text/csv")
            self.assertTrue(grids_csv.body.decode().startswith("id,name,tags,"))
            # The running grid cannot be deleted; cancelled, it goes with its files.
            d.request("POST", f"/api/v1/grids/{grid}/cancel")
            wait_for(lambda: all(j["status"] not in ("queued", "running") for j in
                                 d.get(f"/api/v1/grids/{grid}").json()["jobs"]), 60,
                     what="the grid to stop")
            state = os.path.join(d.state_dir, "jobs")
            self.assertTrue(any(os.path.exists(os.path.join(state, str(j))) for j in jobs))
            self.assertEqual(d.request("DELETE", f"/api/v1/grids/{grid}").status, 204)
            stream.wait(lambda i, e, x: e == "grid_deleted" and x["id"] == grid,
                        what="grid_deleted")
            self.assertEqual(d.get(f"/api/v1/grids/{grid}").status, 404)
            self.assertEqual(d.get("/api/v1/jobs").json()["total"], 2, "the blockers stay")
            self.assertFalse(any(os.path.exists(os.path.join(state, str(j))) for j in jobs))


def safetensors_names(data):
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    return header.pop("__metadata__", {}), header


class Storage(unittest.TestCase):
    """Retention frees the files it should and no others; disk usage; downloads; the
    image-cache limit; datasets deleted and rescanned."""

    def test_retention_usage_and_downloads(self):
        data = os.path.join(ROOT, "rescan")
        shutil.copytree(DATA, data)
        with Daemon(args=["--data-root", ROOT, "--retention", "best", "--keep-finished", "2"]) as d:
            register(d, "rescan", data)
            stream = Stream(d)
            self.addCleanup(stream.close)
            submit = lambda **kw: d.request("POST", "/api/v1/jobs", {
                "dataset": "rescan", **TINY, "epochs": 2, **kw}).json()["id"]
            folder = lambda j: os.path.join(d.state_dir, "jobs", str(j))

            def ended(j):
                # The job is done, then retention runs and logs what it freed.
                self.assertEqual(wait_status(d, j, ("done", "failed")), "done")
                wait_for(lambda: f"after job {j} ended" in d.log(), 30,
                         what=f"retention after job {j}")
            pinned = submit(keep_checkpoints="all")
            self.assertEqual(wait_status(d, pinned, ("done", "failed")), "done")
            a = submit(seed=1)
            ended(a)
            self.assertEqual(sorted(os.listdir(folder(pinned))), ["best.ckpt", "latest.ckpt"])
            self.assertEqual(os.listdir(folder(a)), ["best.ckpt"], "best kept, latest dropped")
            # Downloads: the best weights as safetensors, the latest one no more.
            r = d.get(f"/api/v1/jobs/{a}/weights?checkpoint=best")
            self.assertEqual(r.status, 200, r)
            self.assertIn(f"job{a}-best-epoch", r.header("Content-Disposition"))
            meta, tensors = safetensors_names(r.body)
            self.assertEqual(meta["model"], "plain")
            self.assertTrue(any(k.endswith("/kernel") for k in tensors))
            r = d.get(f"/api/v1/jobs/{a}/weights?checkpoint=latest")
            self.assertEqual((r.status, r.json()["field"]), (404, "checkpoint"))
            bundle = d.get(f"/api/v1/jobs/{a}/bundle").json()
            self.assertEqual(bundle["job"]["id"], a)
            self.assertEqual([e["epoch"] for e in bundle["epochs"]], [1, 2])
            self.assertGreater(len(bundle["steps"]), 0)
            self.assertEqual({(s["epoch"], s["mode"], s["quantity"]) for s in bundle["statistics"]},
                             {(e, m, q) for e in (0, 1, 2) for m in ("train", "inference")
                              for q in ("weight", "activation", "gradient")})
            self.assertEqual(bundle["results"]["job_id"], a)
            csv = d.get(f"/api/v1/jobs/{a}/bundle?format=csv")
            lines = csv.body.decode().splitlines()
            self.assertEqual(lines[0], "section,epoch,step,mode,quantity,layer_index,layer,key,value")
            sections = {l.split(",")[0] for l in lines[1:]}
            self.assertEqual(sections, {"job", "config", "epoch", "step", "statistics",
                                        "results", "per_class", "confusion"})
            # Third and fourth jobs: only the 2 that ended last keep checkpoints (the
            # pinned one does not count and keeps both).
            b = submit(seed=2)
            ended(b)
            c = submit(seed=3)
            ended(c)
            self.assertFalse(os.path.exists(folder(a)) and os.listdir(folder(a)))
            self.assertEqual(os.listdir(folder(b)), ["best.ckpt"])
            self.assertEqual(os.listdir(folder(c)), ["best.ckpt"])
            self.assertEqual(sorted(os.listdir(folder(pinned))), ["best.ckpt", "latest.ckpt"])
            self.assertEqual(d.get(f"/api/v1/jobs/{a}/weights").status, 404)
            self.assertTrue(d.get(f"/api/v1/jobs/{a}/results").status == 200,
                            "the records stay")
            # Disk usage, per job and in all.
            st = d.get("/api/v1/storage").json()
            du = lambda p: sum(os.stat(os.path.join(r, f)).st_blocks * 512
                               for r, _, fs in os.walk(p) for f in fs)
            jobs = {j["id"]: j["bytes"] for j in st["jobs"]}
            self.assertGreater(jobs[pinned], jobs[c])
            self.assertEqual(d.get(f"/api/v1/jobs/{c}").json()["disk_bytes"], jobs[c])
            self.assertEqual(st["retention"], {"checkpoints": "best", "keep_finished": 2})
            self.assertGreater(st["caches_bytes"], 0)
            self.assertEqual(len(st["caches"]), 1)
            self.assertGreaterEqual(st["checkpoints_bytes"], du(folder(pinned)) + du(folder(c)))
            self.assertEqual(st["total_bytes"], sum(st[k] for k in (
                "database_bytes", "checkpoints_bytes", "caches_bytes", "quarantine_bytes",
                "other_bytes")))
            # DELETE removes every file of a job, its folder too.
            self.assertEqual(d.request("DELETE", f"/api/v1/jobs/{pinned}").status, 204)
            self.assertFalse(os.path.exists(folder(pinned)))
            # Files added to the folder: a rescan sees them.
            before = d.get("/api/v1/datasets/rescan").json()["n_files"]
            cls = sorted(os.listdir(data))[0]
            src = os.path.join(data, cls, sorted(os.listdir(os.path.join(data, cls)))[0])
            for k in range(5):
                shutil.copy(src, os.path.join(data, cls, f"added{k}.jpg"))
            r = d.request("POST", "/api/v1/datasets/rescan/rescan")
            self.assertEqual(r.status, 202, r)
            stream.wait(lambda i, e, x: e == "dataset" and x["name"] == "rescan" and
                        x["status"] == "ready", timeout=120, what="the rescanned dataset")
            wait_for(lambda: d.get("/api/v1/datasets/rescan").json()["status"] == "ready")
            self.assertEqual(d.get("/api/v1/datasets/rescan").json()["n_files"], before + 5)
            # A dataset with a queued job stays; without, it goes with its caches.
            q = d.request("POST", "/api/v1/jobs", {"dataset": "rescan", **SLOW}).json()["id"]
            self.assertEqual(d.request("DELETE", "/api/v1/datasets/rescan").status, 409)
            d.request("POST", f"/api/v1/jobs/{q}/cancel")
            wait_status(d, q, ("cancelled",), 60)
            dataset_id = d.get("/api/v1/datasets/rescan").json()["id"]
            self.assertEqual(d.request("DELETE", "/api/v1/datasets/rescan").status, 204)
            stream.wait(lambda i, e, x: e == "dataset_deleted" and x["id"] == dataset_id,
                        what="dataset_deleted")
            self.assertEqual(d.get("/api/v1/datasets/rescan").status, 404)
            self.assertEqual(d.get("/api/v1/storage").json()["caches"], [])
            datasets_csv = d.get("/api/v1/datasets?format=csv")
            self.assertEqual(datasets_csv.content_type, "text/csv")

    def test_the_image_cache_limit_evicts_the_least_recently_used(self):
        # One 32 px cache of 90 images is 90·32·32·3 bytes plus a page-aligned header: about
        # 290 kB on disk; a 48 px one about 640 kB. With a 700 kB limit they cannot both stay.
        with Daemon(args=["--data-root", ROOT, "--cache-limit", "700k"]) as d:
            register(d)
            run = lambda size: d.request("POST", "/api/v1/jobs", {
                "dataset": "weeds", **TINY, "image_size": size}).json()["id"]
            self.assertEqual(wait_status(d, run(32), ("done", "failed")), "done")
            caches = lambda: sorted(c["file"] for c in d.get("/api/v1/storage").json()["caches"])
            small = caches()
            self.assertEqual(len(small), 1)
            self.assertEqual(wait_status(d, run(48), ("done", "failed")), "done")
            now = caches()
            self.assertEqual(len(now), 1)
            self.assertNotEqual(now, small, "the 32 px cache was evicted for the 48 px one")
            self.assertIn("evicted", d.log())
            big = run(96)
            self.assertEqual(wait_status(d, big, ("done", "failed")), "failed")
            self.assertIn("cache limit", d.get(f"/api/v1/jobs/{big}").json()["error"])
            self.assertEqual(caches(), now, "a build that cannot fit evicts nothing")


if __name__ == "__main__":
    unittest.main()
