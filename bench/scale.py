#!/usr/bin/env python3
"""scale.py — what scaling out buys and costs (make bench-scale).

1. A 4-job grid (ResNet-18 of width 16 x 2 initializers x 2 seeds, 128 px, 960 images,
   4 epochs of about 10 s each on one core, statistics every epoch) trained by one
   local worker thread (--workers 1 --threads-per-job 1), then by the Slurm executor on
   the test cluster of tests/slurm/cluster.py (two slurmd nodes of one CPU each, one thread
   per job): wall time from submission to the last job's end, and the speed-up.
2. The share of each Slurm job's time its worker spent waiting for the daemon to store its
   records (epochs, statistics, checkpoints, results), from the workers' own accounting.
3. What one daemon can ingest: N simulated workers (processes) each lease a job and send
   epochs and full layer-statistics reports (a ResNet-50-sized set of rows) as fast as the
   daemon stores them, for a fixed time: reports/s, epochs/s and statistics bytes/s.

Prints a table and writes build/bench-scale.json. The machine's load during the run is
printed too: compare figures from one run only."""
import json
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import http.client

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "api"))
sys.path.insert(0, os.path.join(ROOT, "tests", "slurm"))
from daemon import Daemon, free_port  # noqa: E402
import cluster  # noqa: E402

BIN = os.path.join(ROOT, "initlab")
GRID = {"dataset": "bench", "models": ["resnet18"], "initializers": ["glorot_uniform",
        "he_uniform"], "seeds": [0, 1], "width": 16, "image_size": 128, "epochs": 4,
        "batch_size": 16, "threads": 1, "stats_every": 1}
WORKER_TOKEN = "bench-worker-token-0123456789"


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def wait_grid(d, ids, timeout=3600):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = [d.get(f"/api/v1/jobs/{i}").json()["status"] for i in ids]
        if all(s in ("done", "failed", "cancelled") for s in st):
            if any(s != "done" for s in st):
                raise RuntimeError(f"jobs did not all finish: {st}\n{d.log()[-3000:]}")
            return
        time.sleep(0.2)
    raise RuntimeError("the grid did not finish")


def run_grid(d):
    r = d.request("POST", "/api/v1/datasets", {"name": "bench", "path": "bench"})
    assert r.status == 202, r
    while d.get("/api/v1/datasets/bench").json()["status"] != "ready":
        time.sleep(0.1)
    t0 = time.monotonic()
    r = d.request("POST", "/api/v1/grids", GRID)
    assert r.status == 201, r
    ids = [j["id"] for j in r.json()["jobs"]]
    wait_grid(d, ids)
    return time.monotonic() - t0, ids


# ---- the coordinator's capacity -----------------------------------------------------------

def stat_row(i, mode, quantity):
    return {"layer_index": i, "layer": f"conv{i}", "type": "conv2d", "mode": mode,
            "quantity": quantity, "n": 100000, "mean": 0.001 * i, "std": 0.05,
            "min": -0.2, "max": 0.21, "q1": -0.03, "median": 0.0001, "q3": 0.031,
            "whisker_lo": -0.08, "whisker_hi": 0.08, "p1": -0.11, "p99": 0.12,
            "zero_frac": 0.0, "nonfinite": 0, "predicted_var": 0.0025, "dead_units": 0,
            "saturation": "nan", "flags": 0, "hist_lo": -0.2, "hist_hi": 0.21,
            "hist": [(i * 37 + k * 11) % 5000 for k in range(64)]}


# ResNet-50 with the paper's head: about 110 probed layers x 2 BatchNorm modes x (weights,
# activations, gradients) measured, of which ~ 700 rows.
STATS = [stat_row(i, m, q) for i in range(117) for m in ("train", "inference")
         for q in ("weight", "activation", "gradient")]


def sim_worker(port, seconds, n_job, out):
    """One simulated worker: lease a job, then send epoch + statistics reports until time
    is up. Puts (reports, epochs, stats_bytes) on out."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    hdr = {"Content-Type": "application/json", "Authorization": "Bearer " + WORKER_TOKEN}

    def post(path, body, lease=None):
        h = dict(hdr)
        if lease:
            h["Initlab-Lease"] = lease
        data = json.dumps(body).encode()
        conn.request("POST", path, body=data, headers=h)
        r = conn.getresponse()
        payload = r.read()
        return r.status, payload, len(data)

    status, payload, _ = post("/api/v1/worker/lease", {"worker": f"sim:{os.getpid()}",
                                                       "host": "sim", "job_id": n_job})
    assert status == 200, (status, payload)
    lease = json.loads(payload)["lease"]
    reports = epochs = stats_bytes = 0
    deadline = time.monotonic() + seconds
    epoch = 0
    while time.monotonic() < deadline:
        epoch += 1
        s, p, _ = post(f"/api/v1/worker/jobs/{n_job}/reports/epoch",
                       {"epoch": {"epoch": epoch, "train_loss": 1.0, "train_acc": 0.5,
                                  "val_loss": 1.1, "val_acc": 0.4, "lr": 0.01,
                                  "seconds": 100.0, "images_per_sec": 50.0}}, lease)
        assert s == 204, (s, p)
        s, p, n = post(f"/api/v1/worker/jobs/{n_job}/reports/stats",
                       {"epoch": epoch, "rows": STATS}, lease)
        assert s == 204, (s, p)
        reports += 2
        epochs += 1
        stats_bytes += n
    out.put((reports, epochs, stats_bytes))


def capacity(n_workers, seconds, tmp):
    with open(os.path.join(tmp, "wt"), "w") as f:
        f.write(WORKER_TOKEN)
    os.chmod(os.path.join(tmp, "wt"), 0o600)
    d = Daemon(args=["--data-root", os.path.join(tmp, "data"), "--workers", "0",
                     "--worker-token-file", os.path.join(tmp, "wt"), "--lease-timeout", "600",
                     "--max-body", "16M"]).start()
    try:
        r = d.request("POST", "/api/v1/datasets", {"name": "bench", "path": "bench"})
        while d.get("/api/v1/datasets/bench").json()["status"] != "ready":
            time.sleep(0.1)
        ids = []
        for k in range(n_workers):
            r = d.request("POST", "/api/v1/jobs", {"dataset": "bench", "model": "resnet50",
                                                   "seed": k, "epochs": 100})
            ids.append(r.json()["id"])
        out = multiprocessing.Queue()
        procs = [multiprocessing.Process(target=sim_worker, args=(d.port, seconds, i, out))
                 for i in ids]
        t0 = time.monotonic()
        for p in procs:
            p.start()
        results = [out.get() for _ in procs]
        for p in procs:
            p.join()
        wall = time.monotonic() - t0
        reports = sum(r[0] for r in results)
        epochs = sum(r[1] for r in results)
        stats_bytes = sum(r[2] for r in results)
        return {"workers": n_workers, "seconds": round(wall, 1),
                "reports_per_s": round(reports / wall, 1),
                "epochs_per_s": round(epochs / wall, 2),
                "stats_MB_per_s": round(stats_bytes / wall / 1e6, 2),
                "stats_rows_per_epoch": len(STATS),
                "stats_bytes_per_epoch": stats_bytes // max(epochs, 1)}
    finally:
        d.close()


def main():
    tmp = tempfile.mkdtemp(prefix="initlab-bench-scale-")
    os.chmod(tmp, 0o755)
    result = {"load_before": loadavg()}
    c = None
    try:
        data = os.path.join(tmp, "data")
        subprocess.run([BIN, "demo-data", os.path.join(data, "bench"), "--classes", "4",
                        "--per-class", "240", "--size", "128"], check=True, capture_output=True)
        print(f"load average before: {result['load_before']}", flush=True)

        local = Daemon(args=["--data-root", data, "--workers", "1", "--threads-per-job", "1"])
        local.start()
        try:
            t_local, _ = run_grid(local)
        finally:
            local.close()
        print(f"local executor, 1 worker x 1 thread: {t_local:.1f} s", flush=True)

        c = cluster.Cluster(os.path.join(tmp, "cluster")).start()
        with open(os.path.join(tmp, "wt"), "w") as f:
            f.write(WORKER_TOKEN)
        os.chmod(os.path.join(tmp, "wt"), 0o600)
        port = free_port()
        out_dir = os.path.join(tmp, "slurm-out")
        sd = Daemon(args=["--data-root", data, "--executor", "slurm", "--workers", "0",
                          "--worker-token-file",
                          os.path.join(tmp, "wt"), "--slurm-url", f"http://127.0.0.1:{port}",
                          "--slurm-token-file", os.path.join(tmp, "wt"), "--slurm-worker", BIN,
                          "--slurm-poll", "1", "--slurm-log-dir", out_dir,
                          "--slurm-cache-dir", os.path.join(tmp, "worker-cache"),
                          "--heartbeat", "2", "--lease-timeout", "30", "--log-level", "info"],
                    env={"SLURM_CONF": c.conf}, listen=f"127.0.0.1:{port}").start()
        try:
            t_slurm, ids = run_grid(sd)
            shares = [tuple(map(float, m)) for m in re.findall(
                r"job \d+: ([\d.]+) s on its worker, ([\d.]+) s", sd.log())]
        finally:
            sd.close()
        print(f"Slurm executor, 2 nodes x 1 CPU: {t_slurm:.1f} s", flush=True)
        result.update({
            "grid": GRID, "local_seconds": round(t_local, 1), "slurm_seconds": round(t_slurm, 1),
            "speedup": round(t_local / t_slurm, 2),
            "report_share_percent": [round(100 * r / s, 2) for s, r in shares],
            "report_ms_per_epoch": [round(1000 * r / GRID["epochs"]) for _, r in shares],
            "job_seconds_on_worker": [s for s, _ in shares]})
        c.stop()
        c = None
        result["capacity"] = [capacity(n, 20, tmp) for n in (1, 4, 16)]
        result["load_after"] = loadavg()
    finally:
        if c:
            c.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    print()
    print(f"4-job grid: local {result['local_seconds']} s, Slurm 2x1 CPU "
          f"{result['slurm_seconds']} s: speed-up {result['speedup']}x (target >= 1.8)")
    print(f"share of each Slurm job's time spent reporting: "
          f"{', '.join(f'{p}%' for p in result['report_share_percent'])} (target < 2%); "
          f"per epoch {', '.join(f'{m} ms' for m in result['report_ms_per_epoch'])}")
    print("one daemon ingesting simulated workers (epoch + ResNet-50-sized statistics):")
    print("  workers  reports/s  epochs/s  statistics MB/s")
    for row in result["capacity"]:
        print(f"  {row['workers']:7d}  {row['reports_per_s']:9.1f}  {row['epochs_per_s']:8.2f}"
              f"  {row['stats_MB_per_s']:15.2f}")
    print(f"load average before {result['load_before']}, after {result['load_after']}")
    os.makedirs(os.path.join(ROOT, "build"), exist_ok=True)
    with open(os.path.join(ROOT, "build", "bench-scale.json"), "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
