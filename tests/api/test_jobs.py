"""test_jobs.py — the job side of the API against a real daemon: datasets, jobs, grids,
results, live events, cancel and retry, and surviving kill -9 and SIGTERM."""
import json
import math
import os
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
import unittest

import daemon as daemon_module
from daemon import BINARY, Daemon, noisy_numbers

# Small, fast jobs: the point is the plumbing, not the accuracy.
FAST = {"epochs": 2, "image_size": 32, "batch_size": 16, "probe_size": 8, "lr": 0.01}
GRID_MODELS = {"mobilenet": {"alpha": 0.25}, "plain": {"depth": 4, "width": 8}}


def setUpModule():
    global ROOT, DATA
    ROOT = tempfile.mkdtemp(prefix="initlab-api-data-")
    DATA = os.path.join(ROOT, "weeds")
    out = subprocess.run([BINARY, "demo-data", DATA, "--classes", "4", "--per-class", "40",
                          "--size", "48"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    # One file of each bad kind: the scan must skip and name them.
    with open(os.path.join(DATA, "clover", "empty.jpg"), "wb"):
        pass
    with open(os.path.join(DATA, "clover", "notes.jpg"), "w") as f:
        f.write("not a jpeg")
    good = os.path.join(DATA, "clover", sorted(os.listdir(os.path.join(DATA, "clover")))[0])
    with open(good, "rb") as f:
        head = f.read()[:300]
    with open(os.path.join(DATA, "clover", "truncated.jpg"), "wb") as f:
        f.write(head)


def tearDownModule():
    shutil.rmtree(ROOT, ignore_errors=True)


def wait_for(predicate, timeout=240, interval=0.2, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def register(d, name="weeds"):
    r = d.request("POST", "/api/v1/datasets", {"name": name, "path": DATA, "seed": 1})
    assert r.status == 202, r
    wait_for(lambda: d.get(f"/api/v1/datasets/{name}").json()["status"] == "ready",
             what="dataset scan")


def job_status(d, job_id):
    return d.get(f"/api/v1/jobs/{job_id}").json()["status"]


def wait_done(d, job_id, timeout=300):
    return wait_for(lambda: job_status(d, job_id) in ("done", "failed"), timeout,
                    what=f"job {job_id}") and job_status(d, job_id)


class Catalogue(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = Daemon(args=["--data-root", ROOT]).start()

    @classmethod
    def tearDownClass(cls):
        cls.d.close()

    def test_models_and_keras_parameter_counts(self):
        names = [m["name"] for m in self.d.get("/api/v1/models").json()["models"]]
        self.assertEqual(set(names), {"mobilenet", "resnet50", "resnet18", "resnet34",
                                      "plain", "mlp"})
        m = self.d.get("/api/v1/models/mobilenet?size=224&classes=1000&head=keras").json()
        self.assertEqual(m["total_params"], 4253864)
        self.assertEqual(m["non_trainable_params"], 21888)
        first = next(l for l in m["layers"] if l["name"] == "conv1")
        self.assertEqual(first["output_shape"], [112, 112, 32])
        self.assertEqual(self.d.get("/api/v1/models/vgg16").status, 404)
        r = self.d.get("/api/v1/models/mobilenet?size=abc")
        self.assertEqual(r.status, 400)
        self.assertEqual(r.json()["field"], "size")

    def test_initializers_and_presets(self):
        inits = self.d.get("/api/v1/initializers").json()["initializers"]
        self.assertEqual([i["name"] for i in inits][6:], ["variance_scaling", "orthogonal", "lsuv"])
        self.assertEqual(len(inits), 9)
        he = next(i for i in inits if i["name"] == "he_uniform")
        self.assertEqual(he["distribution"], "uniform")
        presets = self.d.get("/api/v1/presets").json()["presets"]
        self.assertEqual(presets["paper"]["milestones"], [30, 60])
        self.assertEqual(presets["paper"]["epochs"], 100)


class Validation(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = Daemon(args=["--data-root", ROOT, "--max-body", "65536"]).start()
        register(cls.d)

    @classmethod
    def tearDownClass(cls):
        cls.d.close()

    def problem(self, r, status, field=None):
        self.assertEqual(r.status, status, r)
        self.assertEqual(r.content_type, "application/problem+json")
        body = r.json()
        self.assertEqual(body["status"], status)
        if field:
            self.assertEqual(body.get("field"), field, body)
            self.assertIn(field, body["detail"])
        return body

    def test_bad_jobs_are_refused_naming_the_field(self):
        before = self.d.get("/api/v1/jobs").json()["total"]
        post = lambda body: self.d.request("POST", "/api/v1/jobs", body)
        self.problem(post(b'{"dataset": "weeds", "epochs": '), 400)
        self.problem(post(b'[1, 2]'), 400)
        self.problem(post({"dataset": "weeds", "epoch": 3}), 400, "epoch")
        self.problem(post({"dataset": "weeds", "epochs": "three"}), 400, "epochs")
        self.problem(post({"dataset": "weeds", "epochs": -1}), 400, "epochs")
        self.problem(post({"dataset": "weeds", "model": "vgg"}), 400, "model")
        self.problem(post({"dataset": "weeds", "init": "kaiming"}), 400, "init")
        self.problem(post({"dataset": "nope"}), 400, "dataset")
        self.problem(post({"model": "plain"}), 400, "dataset")
        self.problem(post({"dataset": "weeds", "lr": 1e9}), 400, "lr")
        big = {"dataset": "weeds", "pad": "x" * 100000}
        self.problem(post(big), 413)
        self.assertEqual(self.d.get("/api/v1/jobs").json()["total"], before)

    def test_bad_grids_and_datasets(self):
        r = self.d.request("POST", "/api/v1/grids", {"dataset": "weeds", "models": ["plain", "vgg"],
                                                    "initializers": ["he_uniform"]})
        self.problem(r, 400, "models[1]")
        r = self.d.request("POST", "/api/v1/grids", {"dataset": "weeds", "models": [],
                                                    "initializers": ["he_uniform"]})
        self.problem(r, 400, "models")
        post = lambda body: self.d.request("POST", "/api/v1/datasets", body)
        self.problem(post({"name": "etc", "path": "/etc"}), 400, "path")
        self.problem(post({"name": "up", "path": ROOT + "/../.."}), 400, "path")
        self.problem(post({"name": "x", "path": DATA, "colour": 1}), 400, "colour")
        self.problem(post({"name": "../x", "path": DATA}), 400, "name")
        self.problem(post({"name": "y", "path": DATA, "split": [0.5, 0.5, 0.5]}), 400, "split")
        self.problem(post({"name": "weeds", "path": DATA}), 409, "name")

    def test_grids_refuse_repeated_seeds_and_initializer_options_are_checked(self):
        grid = lambda **kw: self.d.request("POST", "/api/v1/grids", {
            "dataset": "weeds", "models": ["plain"], "initializers": ["he_uniform"], **kw})
        r = grid(seeds=[0, 1, 0])
        self.problem(r, 400, "seeds")
        self.assertIn("appears twice", r.json()["detail"])
        self.problem(grid(initializers=["orthogonal", "orthogonal"]), 400, "initializers")
        self.problem(grid(init_mode="fan_sum"), 400, "init_mode")
        self.problem(grid(init_gain=0), 400, "init_gain")
        self.problem(grid(bn_recalibrate=-1), 400, "bn_recalibrate")
        r = self.d.request("POST", "/api/v1/jobs", {
            "dataset": "weeds", "model": "plain", "init": "variance_scaling", "init_scale": 2,
            "init_mode": "fan_avg", "init_distribution": "uniform", "init_gain": 0.5,
            "zero_gamma": True, "bn_recalibrate": 3, "epochs": 1, "priority": -1000,
            "image_size": 32, "depth": 2, "width": 4})
        self.assertEqual(r.status, 201, r)
        cfg = r.json()["config"]
        self.assertEqual((cfg["init"], cfg["init_scale"], cfg["init_mode"], cfg["init_distribution"],
                          cfg["init_gain"], cfg["zero_gamma"], cfg["bn_recalibrate"]),
                         ("variance_scaling", 2, "fan_avg", "uniform", 0.5, True, 3))
        self.d.request("DELETE", f"/api/v1/jobs/{r.json()['id']}")
        m = self.d.get("/api/v1/models/plain?init=orthogonal&size=32&depth=2&width=8").json()
        conv = next(l for l in m["layers"] if l["name"] == "conv_1")
        self.assertAlmostEqual(conv["init_variance"], 1 / 27)

    def test_scan_names_skipped_files(self):
        d = self.d.get("/api/v1/datasets/weeds").json()
        self.assertEqual(d["status"], "ready")
        self.assertEqual(d["classes"], ["amaranth", "clover", "crabgrass", "dandelion"])
        reasons = {s["path"]: s["reason"] for s in d["skipped"]}
        self.assertIn("zero-byte", reasons["clover/empty.jpg"])
        self.assertIn("not a JPEG", reasons["clover/notes.jpg"])
        self.assertIn("truncated", reasons["clover/truncated.jpg"])
        counts = {c["class"]: c for c in d["class_counts"]}
        self.assertEqual(sum(counts["amaranth"][s] for s in ("train", "val", "test")), 40)
        csv = self.d.get("/api/v1/datasets/weeds?format=csv")
        self.assertEqual(csv.content_type, "text/csv")
        self.assertTrue(csv.body.decode().startswith("label,class,train,val,test"))

    def test_a_job_too_big_for_memory_fails_cleanly(self):
        r = self.d.request("POST", "/api/v1/jobs", {"dataset": "weeds", "model": "resnet50",
                                                   "image_size": 512, "batch_size": 512,
                                                   "priority": 100})
        self.assertEqual(r.status, 201, r)
        job = r.json()["id"]
        wait_for(lambda: job_status(self.d, job) == "failed", 120, what="the job to fail")
        self.assertIn("memory", self.d.get(f"/api/v1/jobs/{job}").json()["error"])
        self.assertEqual(self.d.get("/api/v1/health").status, 200)

    def test_idempotent_submission(self):
        body = {"dataset": "weeds", "model": "plain", "depth": 2, "width": 4, **FAST,
                "priority": -100}
        key = {"Idempotency-Key": "submit-once-1"}
        a = self.d.request("POST", "/api/v1/jobs", body, headers=key)
        b = self.d.request("POST", "/api/v1/jobs", body, headers=key)
        self.assertEqual(a.status, 201)
        self.assertEqual(b.status, 200)
        self.assertEqual(a.json()["id"], b.json()["id"])
        body["seed"] = 9
        c = self.d.request("POST", "/api/v1/jobs", body, headers=key)
        self.problem(c, 422, "Idempotency-Key")
        self.assertEqual(self.d.request("POST", f"/api/v1/jobs/{a.json()['id']}/cancel").status,
                         200)


class Grid(unittest.TestCase):
    """The paper's experiment in miniature: 2 models x glorot/he x 2 seeds."""

    @classmethod
    def setUpClass(cls):
        cls.d = Daemon(args=["--data-root", ROOT, "--workers", "2", "--threads-per-job", "1"]).start()
        register(cls.d)
        cls.events = []
        body = {"dataset": "weeds", "models": list(GRID_MODELS),
                "initializers": ["glorot_uniform", "he_uniform"], "seeds": [0, 1], **FAST}
        r = cls.d.request("POST", "/api/v1/grids", body)
        assert r.status == 201, r
        cls.grid = r.json()
        for job in cls.grid["jobs"]:
            wait_done(cls.d, job["id"], timeout=600)

    @classmethod
    def tearDownClass(cls):
        cls.d.close()

    def test_every_job_finished_with_everything_recorded(self):
        self.assertEqual(len(self.grid["jobs"]), 8)
        for job in self.grid["jobs"]:
            j = self.d.get(f"/api/v1/jobs/{job['id']}").json()
            self.assertEqual(j["status"], "done", j)
            epochs = self.d.get(f"/api/v1/jobs/{job['id']}/epochs").json()["epochs"]
            self.assertEqual([e["epoch"] for e in epochs], [1, 2])
            for mode in ("train", "inference"):
                for q in ("weight", "activation", "gradient"):
                    s = self.d.get(f"/api/v1/jobs/{job['id']}/stats?mode={mode}&quantity={q}&epoch=0").json()
                    self.assertEqual(s["epochs_available"], [0, 1, 2])
                    self.assertGreater(len(s["layers"]), 0, (mode, q))
            res = self.d.get(f"/api/v1/jobs/{job['id']}/results").json()
            self.assertEqual(len(res["confusion"]), 4)
            self.assertEqual(sum(map(sum, res["confusion"])),
                             sum(c["support"] for c in res["per_class"]))

    def test_statistics_differ_between_batchnorm_modes(self):
        job = next(j for j in self.grid["jobs"] if j["model"] == "mobilenet")
        get = lambda mode: self.d.get(f"/api/v1/jobs/{job['id']}/stats?mode={mode}"
                                      f"&quantity=activation&epoch=2").json()["layers"]
        train, inference = get("train"), get("inference")
        self.assertEqual([l["layer"] for l in train], [l["layer"] for l in inference])
        self.assertTrue(any(abs(a["std"] - b["std"]) > 1e-6 for a, b in zip(train, inference)))
        self.assertEqual(train[0]["type"], "input")
        self.assertEqual(train[-1]["type"], "softmax")
        weights = self.d.get(f"/api/v1/jobs/{job['id']}/stats?mode=train&quantity=weight"
                             "&epoch=0").json()["layers"]
        h = self.d.get(f"/api/v1/jobs/{job['id']}/histograms?mode=train&quantity=weight"
                       f"&epoch=0&layer={weights[0]['layer_index']}").json()["layers"]
        self.assertEqual(len(h), 1)
        self.assertEqual(sum(h[0]["histogram"]["counts"]), weights[0]["n"])

    def test_every_job_on_the_dataset_probes_the_same_images(self):
        """The probe batch comes from the validation split with a fixed seed: whatever the
        model, initializer or seed, the preprocessed input is the same, value for value."""
        inputs = []
        for job in self.grid["jobs"]:
            rows = self.d.get(f"/api/v1/jobs/{job['id']}/histograms?mode=inference"
                              "&quantity=activation&epoch=0&layer=0").json()["layers"]
            self.assertEqual(len(rows), 1)
            self.assertEqual(rows[0]["type"], "input")
            inputs.append({k: rows[0][k] for k in ("n", "mean", "std", "min", "max", "median",
                                                     "histogram")})
        self.assertEqual(len({json.dumps(i, sort_keys=True) for i in inputs}), 1)
        self.assertGreater(inputs[0]["std"], 0)

    def test_weights_at_epoch_zero_follow_the_initializer(self):
        for job in self.grid["jobs"]:
            rows = self.d.get(f"/api/v1/jobs/{job['id']}/stats?mode=inference&quantity=weight"
                              "&epoch=0").json()["layers"]
            for r in rows:
                if r["n"] >= 1000:
                    self.assertAlmostEqual(r["std"] ** 2 / r["predicted_var"], 1, delta=0.15)

    def test_table_one(self):
        rows = self.d.get(f"/api/v1/grids/{self.grid['grid_id']}/summary").json()["rows"]
        self.assertEqual(len(rows), 4)
        for r in rows:
            self.assertEqual(r["n"], 2)
            self.assertIsNotNone(r["accuracy"]["std"])
            self.assertTrue(0 <= r["accuracy"]["mean"] <= 1)
        csv = self.d.get(f"/api/v1/grids/{self.grid['grid_id']}/summary?format=csv").body.decode()
        self.assertEqual(len(csv.strip().splitlines()), 5)
        listing = self.d.get(f"/api/v1/jobs?grid={self.grid['grid_id']}&status=done&limit=3").json()
        self.assertEqual(listing["total"], 8)
        self.assertEqual(len(listing["jobs"]), 3)

    def test_table_one_intervals_epochs_to_target_and_tests_against_scipy(self):
        from scipy import stats  # python3-scipy comes with make deps
        import numpy as np
        gid = self.grid["grid_id"]
        s = self.d.get(f"/api/v1/grids/{gid}/summary?target=0.2").json()
        self.assertEqual(s["target"], 0.2)
        for r in s["rows"]:
            acc = [x["accuracy"] for x in r["runs"]]
            self.assertEqual(len(acc), 2)
            half = stats.t.ppf(0.975, 1) * np.std(acc, ddof=1) / np.sqrt(2)
            if half > 0:
                self.assertAlmostEqual(r["accuracy"]["ci95"][0], np.mean(acc) - half, delta=1e-9)
            for x in r["runs"]:
                epochs = self.d.get(f"/api/v1/jobs/{x['job_id']}/epochs").json()["epochs"]
                first = next((e["epoch"] for e in epochs if e["val_acc"] >= 0.2), None)
                self.assertEqual(x["epochs_to_target"], first)
        self.assertEqual(len(s["comparisons"]), 2 * 6)
        for c in s["comparisons"]:
            if c["metric"] == "epochs_to_target":
                continue
            a = [x[c["metric"]] for r in s["rows"] if (r["model"], r["initializer"]) == (c["model"], c["a"]) for x in r["runs"]]
            b = [x[c["metric"]] for r in s["rows"] if (r["model"], r["initializer"]) == (c["model"], c["b"]) for x in r["runs"]]
            self.assertEqual((c["a"], c["b"]), ("glorot_uniform", "he_uniform"))
            self.assertAlmostEqual(c["diff"], np.mean(a) - np.mean(b), delta=1e-12)
            w = stats.ttest_ind(a, b, equal_var=False)
            if np.isfinite(w.pvalue):
                self.assertAlmostEqual(c["welch"]["p"], w.pvalue, delta=1e-9)
            p = stats.permutation_test((a, b), lambda x, y, axis: np.mean(x, axis=axis) - np.mean(y, axis=axis),
                                       permutation_type="independent", n_resamples=np.inf, vectorized=True)
            self.assertAlmostEqual(c["permutation"]["p"], p.pvalue, delta=1e-12)
            self.assertEqual((c["permutation"]["exact"], c["permutation"]["splits"]), (True, 6))
        csv = self.d.get(f"/api/v1/grids/{gid}/summary?format=csv").body.decode().splitlines()
        self.assertIn("accuracy_ci95_lo", csv[0].split(","))
        r = self.d.request("GET", f"/api/v1/grids/{gid}/summary?target=2")
        self.assertEqual((r.status, r.json()["field"]), (400, "target"))

    def test_layer_history_with_histogram_bins_and_the_theory_at_epoch_zero(self):
        job = self.grid["jobs"][0]["id"]
        stats = self.d.get(f"/api/v1/jobs/{job}/stats?quantity=activation&mode=inference&epoch=0").json()
        layer = stats["layers"][1]
        self.assertIsNotNone(layer["theory_std"])
        self.assertAlmostEqual(layer["theory_gap"], math.log10(layer["std"] / layer["theory_std"]),
                               delta=1e-12)
        h = self.d.get(f"/api/v1/jobs/{job}/history?quantity=activation&mode=inference&layer={layer['layer_index']}").json()
        self.assertEqual([e["epoch"] for e in h["epochs"]], [0, 1, 2])
        self.assertEqual(h["layer"], layer["layer"])
        self.assertTrue(all(len(e["histogram"]["counts"]) == 64 for e in h["epochs"]))
        self.assertIsNone(h["epochs"][2]["theory_std"])
        csv = self.d.get(f"/api/v1/jobs/{job}/history?quantity=activation&mode=inference&layer={layer['layer_index']}&format=csv").body.decode().splitlines()
        header = csv[0].split(",")
        self.assertEqual(header[0], "epoch")
        self.assertEqual(len(csv), 4)
        row = dict(zip(header, csv[2].split(",")))
        self.assertEqual(sum(int(row[f"bin_{b}"]) for b in range(64)), h["epochs"][1]["n"] - h["epochs"][1]["nonfinite"])
        hist_csv = self.d.get(f"/api/v1/jobs/{job}/histograms?quantity=weight&format=csv").body.decode().splitlines()
        self.assertIn("bin_63", hist_csv[0].split(","))
        r = self.d.request("GET", f"/api/v1/jobs/{job}/history?quantity=activation")
        self.assertEqual((r.status, r.json()["field"]), (400, "layer"))


    def test_grid_listing_csv_and_metrics(self):
        grids = self.d.get("/api/v1/grids").json()["grids"]
        self.assertEqual([g["id"] for g in grids], [self.grid["grid_id"]])
        self.assertEqual(grids[0]["status_counts"]["done"], 8)
        g = self.d.get(f"/api/v1/grids/{self.grid['grid_id']}").json()
        self.assertEqual(len(g["jobs"]), 8)
        self.assertEqual(g["config"]["models"], list(GRID_MODELS))
        self.assertEqual(self.d.get("/api/v1/grids/999").status, 404)
        job = self.grid["jobs"][0]["id"]
        for path, header in (
                ("/api/v1/jobs?format=csv", "id,grid_id,status"),
                (f"/api/v1/jobs/{job}/epochs?format=csv", "epoch,train_loss"),
                (f"/api/v1/jobs/{job}/stats?format=csv&quantity=weight", "layer_index,layer,type"),
                (f"/api/v1/jobs/{job}/results?format=csv", "class,name,precision")):
            r = self.d.get(path)
            self.assertEqual(r.status, 200, path)
            self.assertEqual(r.content_type, "text/csv", path)
            self.assertTrue(r.body.decode().startswith(header), (path, r.body[:80]))
        self.assertEqual(self.d.get("/api/v1/jobs?format=xml").status, 400)
        self.assertEqual(self.d.get("/api/v1/jobs?status=sleeping").json()["field"], "status")
        metrics = self.d.get("/metrics").body.decode()
        self.assertIn('initlab_jobs{state="queued"} 0', metrics)
        self.assertIn("initlab_epoch_seconds_count 16", metrics)


class Lifecycle(unittest.TestCase):
    """Live events, cancel and retry, and what a crash or a stop does to a running job."""

    def slow_job(self, d, **extra):
        """A job of several seconds per epoch, long enough to watch, cancel and kill."""
        body = {"dataset": "weeds", "model": "plain", "depth": 8, "width": 32, "epochs": 3,
                "image_size": 96, "batch_size": 4, "probe_size": 8, **extra}
        r = d.request("POST", "/api/v1/jobs", body)
        self.assertEqual(r.status, 201, r)
        return r.json()["id"]

    def test_events_cancel_retry(self):
        with Daemon(args=["--data-root", ROOT]) as d:
            register(d)
            conn = d.connection(timeout=60)
            conn.request("GET", "/api/v1/events")
            stream = conn.getresponse()
            self.assertEqual(stream.getheader("Content-Type").split(";")[0], "text/event-stream")
            job = self.slow_job(d)
            progress = []
            deadline = time.monotonic() + 120
            while len(progress) < 2 and time.monotonic() < deadline:
                line = stream.fp.readline().decode()
                if line.startswith("data:"):
                    self.assertEqual(noisy_numbers(line[5:]), [], line)
                if line.startswith("data:") and '"progress"' in line:
                    data = json.loads(line[5:])
                    self.assertNotEqual(data["status"], "done", "the job ended before two "
                                        "progress events: make it slower")
                    if data["id"] == job and data["progress"]["step"] > 0:
                        progress.append((data["progress"]["epoch"], data["progress"]["step"]))
            self.assertEqual(len(progress), 2, "no progress events within 120 s")
            self.assertNotEqual(progress[0], progress[1])
            conn.close()
            r = d.request("POST", f"/api/v1/jobs/{job}/cancel")
            self.assertEqual(r.status, 200)
            wait_for(lambda: job_status(d, job) == "cancelled", 60, what="cancel")
            self.assertEqual(d.request("POST", f"/api/v1/jobs/{job}/cancel").status, 409)
            r = d.request("POST", f"/api/v1/jobs/{job}/retry")
            self.assertEqual(r.status, 200)
            self.assertEqual(wait_done(d, job), "done")
            j = d.get(f"/api/v1/jobs/{job}").json()
            self.assertGreaterEqual(j["attempts"], 2)
            epochs = [e["epoch"] for e in d.get(f"/api/v1/jobs/{job}/epochs").json()["epochs"]]
            self.assertEqual(epochs, list(range(1, 4)))
            self.assertEqual(d.request("POST", f"/api/v1/jobs/{job}/retry").status, 409)
            self.assertEqual(d.request("DELETE", f"/api/v1/jobs/{job}").status, 204)
            self.assertEqual(d.get(f"/api/v1/jobs/{job}").status, 404)

    def restart_test(self, sig):
        state = tempfile.mkdtemp(prefix="initlab-api-state-")
        try:
            d = Daemon(args=["--data-root", ROOT], state_dir=state).start()
            register(d)
            job = self.slow_job(d)
            wait_for(lambda: d.get(f"/api/v1/jobs/{job}").json()["progress"]["epoch"] >= 2,
                     120, what="epoch 2")
            status = d.stop(sig)
            if sig == signal.SIGTERM:
                self.assertEqual(status, 0, d.log())
                self.assertIn("queued again", d.log())
            d.close()
            with sqlite3.connect(os.path.join(state, "initlab.db")) as c:
                before = c.execute("SELECT status FROM jobs WHERE id = ?", (job,)).fetchone()[0]
            self.assertEqual(before, "queued" if sig == signal.SIGTERM else "running")
            d = Daemon(args=["--data-root", ROOT], state_dir=state).start()
            self.assertEqual(wait_done(d, job), "done", d.log())
            epochs = [e["epoch"] for e in d.get(f"/api/v1/jobs/{job}/epochs").json()["epochs"]]
            self.assertEqual(epochs, list(range(1, 4)))
            self.assertIn("resumes after epoch", d.log())
            d.close()
        finally:
            shutil.rmtree(state, ignore_errors=True)

    def test_kill_9_mid_job_then_restart_finishes_it(self):
        self.restart_test(signal.SIGKILL)

    def test_sigterm_exits_0_and_the_job_resumes(self):
        self.restart_test(signal.SIGTERM)


class ScanWait(unittest.TestCase):
    """Jobs queued on a dataset whose scan is still running wait for it, then train."""

    def test_jobs_queued_during_a_long_scan_wait_then_train(self):
        # 200,000 hard links to a few small JPEGs: a scan of a few seconds, made in one.
        big = os.path.join(ROOT, "big")
        sources = {c: sorted(os.path.join(DATA, c, f) for f in os.listdir(os.path.join(DATA, c))
                             if f.startswith(c))[:8] for c in os.listdir(DATA)}
        for c, files in sources.items():
            os.makedirs(os.path.join(big, c))
            for i in range(50000):
                os.link(files[i % len(files)], os.path.join(big, c, f"{i:05d}.jpg"))
        try:
            with Daemon(args=["--data-root", ROOT, "--workers", "2",
                              "--threads-per-job", "1"]) as d:
                r = d.request("POST", "/api/v1/datasets", {"name": "big", "path": big})
                self.assertEqual(r.status, 202, r)
                job_body = {"dataset": "big", "model": "plain", "depth": 2, "width": 4,
                            "epochs": 1, "image_size": 32, "batch_size": 64, "probe_size": 8}
                r = d.request("POST", "/api/v1/grids", {
                    **job_body, "models": ["plain"], "seeds": [0, 1],
                    "initializers": ["glorot_uniform", "he_uniform"]})
                self.assertEqual(r.status, 201, r)
                grid_jobs = [j["id"] for j in r.json()["jobs"]]
                r = d.request("POST", "/api/v1/jobs", job_body)
                self.assertEqual(r.status, 201, r)
                single = r.json()
                self.assertEqual(d.get("/api/v1/datasets/big").json()["status"], "scanning",
                                 "the scan ended before the jobs were queued: nothing tested")
                self.assertEqual(single["status"], "queued")
                self.assertEqual(single["waiting_for"], 'the scan of dataset "big"')
                ids = grid_jobs + [single["id"]]
                for j in ids:
                    job = d.get(f"/api/v1/jobs/{j}").json()
                    self.assertIn(job["status"], ("queued", "running"))
                    if job["status"] == "queued":
                        self.assertEqual(job["waiting_for"], 'the scan of dataset "big"')
                wait_for(lambda: d.get("/api/v1/datasets/big").json()["status"] == "ready",
                         what="the scan")
                # Every job trains: it reaches a training step (then it is cancelled, to
                # keep the test short), and none fails.
                trained = set()

                def all_trained():
                    for j in ids:
                        job = d.get(f"/api/v1/jobs/{j}").json()
                        self.assertNotEqual(job["status"], "failed", job["error"])
                        if job["status"] == "running" and job["progress"]["step"] > 0:
                            trained.add(j)
                            d.request("POST", f"/api/v1/jobs/{j}/cancel")
                        if job["status"] == "queued":
                            self.assertIsNone(job["waiting_for"])
                    return trained == set(ids)
                wait_for(all_trained, 300, what="every job to train")
        finally:
            shutil.rmtree(big, ignore_errors=True)

    def test_a_failed_scan_fails_its_waiting_jobs_with_the_scan_error(self):
        # 200,000 hard links to a few text files: a scan of seconds that finds no image.
        bad = os.path.join(ROOT, "no-images")
        notes = []
        for k in range(4):
            notes.append(os.path.join(ROOT, f"note{k}.txt"))
            with open(notes[-1], "w") as f:
                f.write(f"not a picture {k}\n")
        os.makedirs(os.path.join(bad, "weeds"))
        for i in range(200000):
            os.link(notes[i % 4], os.path.join(bad, "weeds", f"{i:06d}.jpg"))
        try:
            with Daemon(args=["--data-root", ROOT]) as d:
                self.assertEqual(d.request("POST", "/api/v1/datasets",
                                           {"name": "none", "path": bad}).status, 202)
                r = d.request("POST", "/api/v1/jobs",
                              {"dataset": "none", **FAST, "model": "plain"})
                self.assertEqual(r.status, 201, r)
                self.assertEqual(r.json()["waiting_for"], 'the scan of dataset "none"',
                                 "the scan ended before the job was queued: nothing tested")
                job = r.json()["id"]
                self.assertEqual(wait_done(d, job), "failed")
                error = d.get(f"/api/v1/jobs/{job}").json()["error"]
                scan_error = d.get("/api/v1/datasets/none").json()["error"]
                self.assertTrue(scan_error)
                self.assertIn("could not be scanned", error)
                self.assertIn(scan_error, error)
        finally:
            shutil.rmtree(bad, ignore_errors=True)
            for n in notes:
                os.unlink(n)


class Numbers(unittest.TestCase):
    """Numbers are written in the shortest form that reads back the same: hyperparameters
    exactly as submitted, no %.17g tails (every JSON reply of the suite is checked by
    daemon.Response; this class checks the literals and the CSV)."""

    def test_the_number_check_can_fail(self):
        self.assertEqual(noisy_numbers('{"train":0.59999999999999998,"x":"0.100000000000000001"'
                                       ',"lr":0.02,"n":3,"w":1e-5,"z":2.0}'),
                         ["0.59999999999999998", "1e-5"])

    def test_hyperparameters_come_back_exactly_as_submitted(self):
        with Daemon(args=["--data-root", ROOT]) as d:
            register(d)
            self.assertIn('"split":{"train":0.6,"val":0.2,"test":0.2}',
                          d.get("/api/v1/datasets/weeds").body.decode())
            r = d.request("POST", "/api/v1/jobs", {
                "dataset": "weeds", "model": "plain", "depth": 2, "width": 4, "epochs": 2,
                "image_size": 32, "batch_size": 16, "probe_size": 8, "schedule": "step",
                "milestones": [2], "lr": 0.02, "momentum": 0.9, "weight_decay": 1e-4})
            self.assertEqual(r.status, 201, r)
            job = r.json()["id"]
            self.assertEqual(wait_done(d, job), "done")
            text = d.get(f"/api/v1/jobs/{job}").body.decode()
            for literal in ('"lr":0.02', '"momentum":0.9', '"weight_decay":0.0001'):
                self.assertIn(literal, text)
            epochs = d.get(f"/api/v1/jobs/{job}/epochs")
            self.assertIn('"lr":0.02,', epochs.body.decode())
            self.assertEqual(epochs.json()["epochs"][0]["lr"], 0.02)
            csv = d.get(f"/api/v1/jobs/{job}/epochs?format=csv").body.decode().splitlines()
            header = csv[0].split(",")
            first = dict(zip(header, csv[1].split(",")))
            self.assertEqual(first["lr"], "0.02")
            for row in csv[1:]:
                for cell in row.split(","):
                    if cell and any(c in cell for c in ".eE"):
                        self.assertEqual(repr(float(cell)), cell, row)
        self.assertGreater(daemon_module.numbers_checked, 100)


class Token(unittest.TestCase):
    def test_job_routes_need_the_token(self):
        with Daemon(args=["--data-root", ROOT], token="s3cret-token-0123456789") as d:
            self.assertEqual(d.get("/api/v1/jobs", token=None).status, 401)
            self.assertEqual(d.get("/api/v1/jobs", token="wrong").status, 401)
            r = d.request("POST", "/api/v1/jobs", {"dataset": "weeds"}, token=None)
            self.assertEqual(r.status, 401)
            self.assertEqual(d.get("/api/v1/jobs").status, 200)
            self.assertNotIn("s3cret-token-0123456789", d.log())


if __name__ == "__main__":
    unittest.main()
