"""test_slurm.py — the Slurm executor on a real Slurm cluster (cluster.py: munged, slurmctld,
two one-CPU slurmd nodes on this machine), against a daemon with --executor slurm:

- a grid of 2 models x 2 initializers runs through Slurm two jobs at a time, and its epochs,
  layer statistics, test results and final weights are bit-identical to the same grid on
  the local executor (one thread per job on both);
- kill -9 of a worker mid-run, kill -9 of the slurmd running a job, and scancel of a
  running job: the job ends done (resumed, its epochs equal to an uninterrupted run's) or
  cancelled, and the superseded attempt's late writes are refused;
- USR1 (what --signal asks for before the time limit): the worker checkpoints, hands the
  job back and exits, and the job is submitted again and resumes;
- the daemon restarted while Slurm jobs run adopts them: no job is submitted twice.

Models and images are tiny (32-64 px, a few dozen images) so that the module takes about a
minute; `make bench` measures speed. Needs Debian's slurm-wlm and munge (make deps)."""
import os
import re
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "api"))
sys.path.insert(0, HERE)
from daemon import Daemon, ROOT, free_port  # noqa: E402
import cluster  # noqa: E402

WORKER_BIN = os.path.abspath(os.environ.get("INITLAB_WORKER_BIN",
                                            os.path.join(ROOT, "initlab")))
BIN = os.path.abspath(os.environ.get("INITLAB_BIN", os.path.join(ROOT, "initlab")))
TMP = None
CLUSTER = None
DATA = None          # the data root
ADMIN = "admin-token-0123456789abcdef"
WORKER = "worker-token-0123456789abcdef"

# The grid: tiny nets, 2 epochs, one thread per job.
GRID = {"dataset": "small", "models": ["plain", "resnet18"],
        "initializers": ["glorot_uniform", "he_uniform"], "seeds": [0],
        "depth": 2, "width": 4, "image_size": 32, "epochs": 2, "batch_size": 8,
        "threads": 1}
# A job long enough to be interrupted: about 0.3 s per epoch on one core.
LONG = {"dataset": "mid", "model": "resnet18", "width": 8, "image_size": 64,
        "batch_size": 8, "init": "he_uniform", "threads": 1, "stats_every": 4}


def wait_for(pred, timeout, what, d=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}" +
                         ("\n" + diag(d) if d else ""))


def setUpModule():
    global TMP, CLUSTER, DATA
    missing = cluster.missing_commands()
    if missing:
        raise unittest.SkipTest("Slurm is not installed (make deps): missing " +
                                " ".join(missing))
    TMP = tempfile.mkdtemp(prefix="initlab-slurmtest-")
    os.chmod(TMP, 0o755)
    DATA = os.path.join(TMP, "data")
    for name, classes, per, size in (("small", 3, 12, 32), ("mid", 4, 40, 64)):
        subprocess.run([BIN, "demo-data", os.path.join(DATA, name), "--classes", str(classes),
                        "--per-class", str(per), "--size", str(size)], check=True,
                       capture_output=True)
    for name, token in (("admin", ADMIN), ("worker", WORKER)):
        path = os.path.join(TMP, name + ".token")
        with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(token + "\n")
    CLUSTER = cluster.Cluster(os.path.join(TMP, "cluster")).start()


def tearDownModule():
    if CLUSTER:
        CLUSTER.stop()
    if TMP:
        shutil.rmtree(TMP, ignore_errors=True)


def register(d, name):
    r = d.request("POST", "/api/v1/datasets", {"name": name, "path": name})
    assert r.status == 202, r
    wait_for(lambda: d.get(f"/api/v1/datasets/{name}").json()["status"] == "ready", 60,
             f"the scan of {name}")


def slurm_daemon(state_dir=None, port=None, extra=()):
    """A daemon with the Slurm executor on the test cluster; its workers run ./initlab."""
    port = port or free_port()
    d = Daemon(args=["--data-root", DATA, "--executor", "slurm", "--workers", "0",
                     "--worker-token-file", os.path.join(TMP, "worker.token"),
                     "--slurm-url", f"http://127.0.0.1:{port}",
                     "--slurm-token-file", os.path.join(TMP, "worker.token"),
                     "--slurm-worker", WORKER_BIN, "--slurm-poll", "1",
                     "--slurm-cache-dir", os.path.join(TMP, "worker-cache"),
                     "--slurm-log-dir", os.path.join(TMP, "slurm-out"),
                     "--lease-timeout", "8", "--heartbeat", "1",
                     # both checkpoints of done jobs stay, to be compared with the local run's
                     "--retention", "all", *extra],
               env={"SLURM_CONF": CLUSTER.conf}, token=ADMIN,
               listen=f"127.0.0.1:{port}", state_dir=state_dir)
    return d.start()


def local_daemon():
    return Daemon(args=["--data-root", DATA, "--workers", "2", "--threads-per-job", "1",
                        "--retention", "all"], token=ADMIN).start()


def job(d, i):
    return d.get(f"/api/v1/jobs/{i}").json()


def wait_status(d, i, statuses, timeout):
    return wait_for(lambda: job(d, i)["status"] in statuses and job(d, i), timeout,
                    f"job {i} to be {'/'.join(statuses)}:\n{d.log()[-3000:]}\n"
                    f"{CLUSTER.logs()[-2000:]}")


def db(d):
    c = sqlite3.connect(os.path.join(d.state_dir, "initlab.db"))
    c.row_factory = sqlite3.Row
    return c


def records(d, job_id):
    """What a job recorded that must not depend on where it ran: epochs (without their
    times), layer statistics, test results, and the tensors of its checkpoints."""
    c = db(d)
    epochs = [tuple(r) for r in c.execute(
        "SELECT epoch, train_loss, train_acc, val_loss, val_acc, lr FROM epochs"
        " WHERE job_id = ? ORDER BY epoch", (job_id,))]
    stats = [tuple(r)[1:] for r in c.execute(
        "SELECT * FROM layer_stats WHERE job_id = ? ORDER BY epoch, mode, quantity,"
        " layer_index", (job_id,))]
    res = [tuple(r)[1:-1] for r in c.execute("SELECT * FROM results WHERE job_id = ?",
                                               (job_id,))]
    ckpts = {}
    for kind, path in c.execute("SELECT kind, path FROM checkpoints WHERE job_id = ?",
                                (job_id,)):
        with open(path, "rb") as f:
            data = f.read()
        meta, tensors = struct.unpack_from("<IQ", data, 12)
        ckpts[kind] = data[32 + meta:32 + meta + tensors]
    c.close()
    return {"epochs": epochs, "stats": stats, "results": res, "checkpoints": ckpts}


def worker_pids(initlab_job):
    """Process ids of `initlab worker ... --job N` processes on this machine."""
    pids = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        if b"worker" in args and b"--job" in args and \
                args[args.index(b"--job") + 1] == str(initlab_job).encode():
            pids.append(int(p))
    return pids


def diag(d):
    """The tails of the daemon's log, the cluster's logs and the workers' outputs."""
    out = [d.log()[-2500:], CLUSTER.logs()[-4000:]]
    folder = os.path.join(TMP, "slurm-out")
    for name in sorted(os.listdir(folder))[-2:] if os.path.isdir(folder) else []:
        with open(os.path.join(folder, name), errors="replace") as f:
            out.append(f"--- {name}\n" + f.read()[-1500:])
    return "\n".join(out)


def stored_epochs(d, i):
    return len(d.get(f"/api/v1/jobs/{i}/epochs").json()["epochs"])


def refused(d):
    m = re.search(r"^initlab_worker_reports_refused (\S+)$", d.get("/metrics").body.decode(),
                  re.M)
    return float(m.group(1)) if m else -1


class SlurmExecutor(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.local = local_daemon()
        cls.d = slurm_daemon()
        for dd in (cls.local, cls.d):
            register(dd, "small")
            register(dd, "mid")
        # The uninterrupted reference of the long job, on the local executor.
        r = cls.local.request("POST", "/api/v1/jobs", dict(LONG, epochs=12))
        assert r.status == 201, r
        cls.reference = r.json()["id"]

    @classmethod
    def tearDownClass(cls):
        cls.d.close()
        cls.local.close()

    def submit_long(self, epochs=12, d=None):
        r = (d or self.d).request("POST", "/api/v1/jobs", dict(LONG, epochs=epochs))
        self.assertEqual(r.status, 201, r)
        return r.json()["id"]

    def reference_records(self):
        wait_status(self.local, self.reference, ("done",), 120)
        return records(self.local, self.reference)

    def test_1_grid_bit_identical_to_local(self):
        ids = {}
        for name, dd in (("local", self.local), ("slurm", self.d)):
            r = dd.request("POST", "/api/v1/grids", GRID)
            self.assertEqual(r.status, 201, r)
            ids[name] = [j["id"] for j in r.json()["jobs"]]
        for i in ids["slurm"]:
            j = wait_status(self.d, i, ("done", "failed", "cancelled"), 120)
            self.assertEqual(j["status"], "done", j)
            self.assertEqual(j["attempts"], 1, j)
        for i in ids["local"]:
            self.assertEqual(wait_status(self.local, i, ("done", "failed"), 120)["status"],
                             "done")
        # Every job ran in its own Slurm job, on one of the two nodes, at most two at once.
        # (slurmctld writes a completion record a moment after its job ends)
        names = {f"initlab-{i}" for i in ids["slurm"]}

        def ran_lines():
            return [line for line in CLUSTER.jobcomp()
                    if any(f"Name={name} " in line for name in names)]
        wait_for(lambda: len(ran_lines()) >= 4, 30, "the four completion records")
        comp = CLUSTER.jobcomp()
        ran = ran_lines()
        self.assertEqual(len(ran), 4, comp)
        node_of = {i: re.search(r"NodeList=(\S+)", line).group(1)
                   for i in ids["slurm"] for line in ran if f"Name=initlab-{i} " in line}
        self.assertEqual(set(node_of.values()), {"n1", "n2"}, comp)
        # Two at a time: some two jobs ran at once, on the two nodes.
        span = {i: (job(self.d, i)["started_at"], job(self.d, i)["finished_at"])
                for i in ids["slurm"]}
        self.assertTrue(any(node_of[a] != node_of[b] and span[a][0] < span[b][1] and
                            span[b][0] < span[a][1] for a in span for b in span), span)
        for line in ran:
            self.assertIn("JobState=COMPLETED", line)
        where = job(self.d, ids["slurm"][0])["where"]
        self.assertTrue(where["worker"].startswith("slurm "), where)
        for a, b in zip(ids["local"], ids["slurm"]):
            ja, jb = job(self.local, a), job(self.d, b)
            self.assertEqual((ja["model"], ja["initializer"]), (jb["model"], jb["initializer"]))
            ra, rb = records(self.local, a), records(self.d, b)
            self.assertTrue(ra["epochs"] and ra["stats"] and ra["results"])
            self.assertEqual(set(ra["checkpoints"]), {"latest", "best"})
            for key in ("epochs", "stats", "results", "checkpoints"):
                self.assertEqual(ra[key], rb[key], f"{key} of {ja['model']} "
                                 f"{ja['initializer']} differ between local and Slurm")

    def test_2_kill_9_worker_resumes(self):
        i = self.submit_long()
        wait_for(lambda: stored_epochs(self.d, i) >= 4 and worker_pids(i), 90,
                 "four epochs stored", self.d)
        pids = worker_pids(i)
        for p in pids:
            os.kill(p, signal.SIGKILL)
        j = wait_status(self.d, i, ("done", "failed", "cancelled"), 120)
        self.assertEqual(j["status"], "done", j)
        self.assertGreaterEqual(j["attempts"], 2, j)
        self.assertIn("queued again", self.d.log())
        got, want = records(self.d, i), self.reference_records()
        self.assertEqual([e[0] for e in got["epochs"]], list(range(1, 13)))
        self.assertEqual(got, want)

    def test_3_kill_9_slurmd_superseded_attempt_refused(self):
        i = self.submit_long()
        wait_for(lambda: stored_epochs(self.d, i) >= 2 and worker_pids(i), 90,
                 "two epochs stored", self.d)
        first = job(self.d, i)["where"]["slurm_job_id"]
        node = CLUSTER.job_state(first)[1]
        self.assertIn(node, cluster.NODES)
        # The worker stalls (as behind a network partition) and its node's slurmd dies:
        # Slurm declares the node down after SlurmdTimeout, the daemon ends the attempt and
        # submits the job again; it resumes on the other node.
        orphans = worker_pids(i)
        for p in orphans:
            os.kill(p, signal.SIGSTOP)
        before = refused(self.d)
        CLUSTER.kill_slurmd(node, signal.SIGKILL)
        try:
            wait_for(lambda: job(self.d, i)["attempts"] >= 2, 90,
                     "the job to be submitted again", self.d)
        finally:
            # The orphan wakes up: whatever it sends now is refused, and it stops.
            for p in orphans:
                os.kill(p, signal.SIGCONT)
        wait_for(lambda: refused(self.d) > before, 30, "the orphan's writes refused", self.d)
        wait_for(lambda: not any(p in worker_pids(i) for p in orphans), 30,
                 "the orphan to stop", self.d)
        CLUSTER.start_slurmd(node)
        j = wait_status(self.d, i, ("done", "failed", "cancelled"), 120)
        self.assertEqual(j["status"], "done", j)
        self.assertGreaterEqual(j["attempts"], 2)
        got = records(self.d, i)
        self.assertEqual([e[0] for e in got["epochs"]], list(range(1, 13)))
        self.assertEqual(got, self.reference_records())
        self.assertRegex(self.d.log(), r"job %d: \w+ refused: job %d is run by another "
                         r"attempt|job %d: \w+ refused: job %d is queued" % (i, i, i, i))

    def test_4_scancel_cancels(self):
        i = self.submit_long(epochs=60)
        wait_for(lambda: stored_epochs(self.d, i) >= 2 and job(self.d, i)["where"]
                 ["slurm_job_id"], 90, "job running in Slurm", self.d)
        sid = job(self.d, i)["where"]["slurm_job_id"]
        CLUSTER.run("scancel", sid)
        j = wait_status(self.d, i, ("done", "failed", "cancelled"), 60)
        self.assertEqual(j["status"], "cancelled", j)
        self.assertIn("scancel", j["error"] or "")
        epochs = [e[0] for e in records(self.d, i)["epochs"]]
        self.assertEqual(epochs, list(range(1, len(epochs) + 1)))
        self.assertLess(len(epochs), 60)

    def test_4b_usr1_before_the_time_limit_checkpoints_and_resubmits(self):
        # What --signal=B:USR1@S delivers before the time limit, sent at once.
        i = self.submit_long()
        wait_for(lambda: stored_epochs(self.d, i) >= 2 and worker_pids(i) and
                 job(self.d, i)["where"]["slurm_job_id"], 90, "job running in Slurm", self.d)
        sid = job(self.d, i)["where"]["slurm_job_id"]
        CLUSTER.run("scancel", "-b", "-s", "USR1", sid)
        j = wait_status(self.d, i, ("done", "failed", "cancelled"), 120)
        self.assertEqual(j["status"], "done", j)
        self.assertGreaterEqual(j["attempts"], 2, j)
        # slurmctld writes a job's completion record a moment after the job ends: the
        # resubmitted job can be done before the first one's record is there.
        def both_recorded():
            mine = [line for line in CLUSTER.jobcomp() if f"Name=initlab-{i} " in line]
            return len(mine) >= 2 and any(f"JobId={sid} " in m for m in mine) and mine
        mine = wait_for(both_recorded, 30, "both Slurm jobs' completion records")
        self.assertIn("JobState=COMPLETED", [m for m in mine if f"JobId={sid} " in m][0])
        got = records(self.d, i)
        self.assertEqual([e[0] for e in got["epochs"]], list(range(1, 13)))
        self.assertEqual(got, self.reference_records())

    def test_5_restart_adopts_running_jobs(self):
        d = self.d
        ids = [self.submit_long(epochs=20) for _ in range(2)]
        for i in ids:
            wait_for(lambda: job(d, i)["status"] == "running" and
                     job(d, i)["progress"]["epoch"] >= 1, 90, f"job {i} running in Slurm")
        slurm_ids = {i: job(d, i)["where"]["slurm_job_id"] for i in ids}
        port, state = d.port, d.state_dir
        self.assertEqual(d.stop(), 0, d.log()[-2000:])
        time.sleep(1)
        type(self).d = d2 = slurm_daemon(state_dir=state, port=port)
        try:
            for i in ids:
                j = wait_status(d2, i, ("done", "failed", "cancelled"), 120)
                self.assertEqual(j["status"], "done", j)
                self.assertEqual(j["attempts"], 1, j)
            wait_for(lambda: all(f"Name=initlab-{i} " in "\n".join(CLUSTER.jobcomp())
                                 for i in ids), 30, "the completion records")
            comp = CLUSTER.jobcomp()
            for i in ids:
                mine = [line for line in comp if f"Name=initlab-{i} " in line]
                self.assertEqual(len(mine), 1, mine)
                self.assertIn(f"JobId={slurm_ids[i]} ", mine[0])
            self.assertNotIn("submitted as Slurm job", d2.log())
        finally:
            d.close()


class PullWorkerArray(unittest.TestCase):
    """deploy/slurm/initlab-workers.sbatch, as shipped: an array of two pull workers leases
    the jobs of a daemon that has no workers of its own and exits when none is left."""

    def test_array_of_pull_workers_drains_the_queue(self):
        d = Daemon(args=["--data-root", DATA, "--workers", "0", "--worker-token-file",
                         os.path.join(TMP, "worker.token"), "--heartbeat", "1"],
                   token=ADMIN).start()
        try:
            register(d, "small")
            r = d.request("POST", "/api/v1/grids", GRID)
            self.assertEqual(r.status, 201, r)
            ids = [j["id"] for j in r.json()["jobs"]]
            out = os.path.join(TMP, "array-out")
            os.makedirs(out, exist_ok=True)
            env = dict(CLUSTER.env, INITLAB_SERVER=f"http://127.0.0.1:{d.port}",
                       INITLAB_TOKEN_FILE=os.path.join(TMP, "worker.token"),
                       INITLAB_DATA_ROOT=DATA, INITLAB_BIN=WORKER_BIN,
                       INITLAB_CACHE_DIR=os.path.join(TMP, "array-cache"),
                       INITLAB_IDLE_EXIT="2")
            sub = subprocess.run(
                ["sbatch", "--parsable", "--array=0-1", "--cpus-per-task=1", "--mem=100M",
                 "--time=10", f"--output={out}/w-%A_%a.out",
                 os.path.join(ROOT, "deploy", "slurm", "initlab-workers.sbatch")],
                env=env, capture_output=True, text=True, check=True)
            array = sub.stdout.strip()
            for i in ids:
                self.assertEqual(wait_status(d, i, ("done", "failed"), 120)["status"], "done")
            workers = {job(d, i)["where"]["worker"] for i in ids}
            self.assertTrue(all(w.startswith(f"slurm {array}_") or w.startswith("slurm ")
                                for w in workers), workers)
            # Both tasks end by themselves once the queue is empty.
            wait_for(lambda: all(CLUSTER.job_state(f"{array}_{k}")[0] == "COMPLETED"
                                 for k in (0, 1)), 60, "both array tasks to complete", d)
        finally:
            d.close()


if __name__ == "__main__":
    unittest.main()
