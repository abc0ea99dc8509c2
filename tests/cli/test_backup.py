"""test_backup.py — `initlab backup` copies a state directory while a job trains, and a job
restored from the copy ends with exactly the weights of an uninterrupted run;
`initlab check` finds orphan, foreign, damaged and half-written checkpoints and problems
of the database, and --quarantine sets them aside."""
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import unittest

from util import BINARY, run_initlab

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "torch"))
import st  # noqa: E402  (numpy safetensors reader)

JOB = ["--model", "plain", "--depth", "4", "--width", "8", "--init", "he_uniform",
       "--epochs", "4", "--image-size", "64", "--batch-size", "8", "--threads", "1",
       "--lr", "0.01"]


def setUpModule():
    global TMP, DATA
    TMP = tempfile.mkdtemp(prefix="initlab-backup-test-")
    DATA = os.path.join(TMP, "weeds")
    out = run_initlab("demo-data", DATA, "--classes", "4", "--per-class", "40", "--size", "64")
    assert out.returncode == 0, out.stderr


def tearDownModule():
    shutil.rmtree(TMP, ignore_errors=True)


def train_cmd(state, *extra):
    return [BINARY, "train", "--data", DATA, "--db", os.path.join(state, "initlab.db"), *JOB,
            *extra]


def train(state, *extra):
    return subprocess.run(train_cmd(state, *extra), capture_output=True, text=True,
                          timeout=600)


def query(state, sql, *args):
    with sqlite3.connect(os.path.join(state, "initlab.db")) as c:
        return c.execute(sql, args).fetchall()


def weights(state, job_id):
    path = os.path.join(state, "jobs", str(job_id), "latest.ckpt")
    out = os.path.join(TMP, f"w-{time.monotonic_ns()}.safetensors")
    res = run_initlab("export-weights", path, out)
    assert res.returncode == 0, res.stderr
    return st.load(out)


def same_weights(a, b):
    return sorted(a) == sorted(b) and all(a[k].tobytes() == b[k].tobytes() for k in a)


def check(state, *extra):
    return run_initlab("check", "--state-dir", state, *extra)


def findings(state, *extra):
    """(exit status, {path relative to state: kind}) of `initlab check --json`."""
    out = check(state, "--json", *extra)
    report = json.loads(out.stdout)
    kinds = {os.path.relpath(f["path"], state): f["kind"] for f in report["findings"]}
    return out.returncode, kinds, report


class Backup(unittest.TestCase):
    def test_a_copy_taken_while_a_job_trains_resumes_to_the_uninterrupted_weights(self):
        reference = os.path.join(TMP, "reference")
        out = train(reference, "--seed", "7", "--epochs", "8")
        self.assertEqual(out.returncode, 0, out.stderr)

        state = os.path.join(TMP, "live")
        copy = os.path.join(TMP, "live-backup")
        proc = subprocess.Popen(train_cmd(state, "--seed", "7", "--epochs", "8"),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for line in proc.stderr:
            if ": epoch 2 " in line:  # the checkpoints of epoch 1 are in place
                backup = run_initlab("backup", copy, "--state-dir", state)
                break
        proc.stderr.read()
        self.assertEqual(proc.wait(), 0)
        self.assertEqual(backup.returncode, 0, backup.stdout + backup.stderr)
        self.assertIn("job 1: latest checkpoint of epoch", backup.stdout)
        self.assertEqual(sorted(os.listdir(copy)), ["initlab.db", "jobs"])

        out = check(copy)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn("all well", out.stdout)
        # The copy is a state directory of its own: the job, stopped in the middle in it,
        # resumes there and ends exactly where the uninterrupted run did.
        (epoch,), = query(copy, "SELECT max(epoch) FROM epochs WHERE job_id = 1")
        self.assertLess(epoch, 8)
        out = train(copy, "--seed", "7", "--epochs", "8")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("resuming the unfinished job", out.stderr)
        self.assertIn("resuming after epoch", out.stderr)
        self.assertEqual(query(copy, "SELECT epoch FROM epochs WHERE job_id = 1 ORDER BY epoch"),
                         [(e,) for e in range(1, 9)])
        self.assertTrue(same_weights(weights(copy, 1), weights(reference, 1)))

    def test_the_destination_must_be_new_and_outside_the_state_directory(self):
        state = os.path.join(TMP, "dest")
        out = train(state, "--seed", "1", "--epochs", "1")
        self.assertEqual(out.returncode, 0, out.stderr)
        taken = os.path.join(TMP, "taken")
        os.makedirs(taken)
        with open(os.path.join(taken, "x"), "w") as f:
            f.write("x")
        out = run_initlab("backup", taken, "--state-dir", state)
        self.assertEqual(out.returncode, 1)
        self.assertIn("is not an empty folder", out.stderr)
        out = run_initlab("backup", os.path.join(state, "b"), "--state-dir", state)
        self.assertEqual(out.returncode, 1)
        self.assertIn("inside the state directory", out.stderr)
        out = run_initlab("backup", os.path.join(TMP, "nowhere"), "--state-dir",
                          os.path.join(TMP, "no-state"))
        self.assertEqual(out.returncode, 1)
        self.assertIn("no database at", out.stderr)


class Check(unittest.TestCase):
    def test_orphan_foreign_damaged_and_temporary_files_are_listed_and_quarantined(self):
        state = os.path.join(TMP, "check")
        for seed in ("1", "2"):
            out = train(state, "--seed", seed)
            self.assertEqual(out.returncode, 0, out.stderr)
        status, kinds, _ = findings(state)
        self.assertEqual((status, kinds), (0, {}))

        jobs = os.path.join(state, "jobs")
        os.makedirs(os.path.join(jobs, "9"))
        shutil.copy(os.path.join(jobs, "1", "latest.ckpt"), os.path.join(jobs, "9",
                                                                          "latest.ckpt"))
        shutil.copy(os.path.join(jobs, "1", "latest.ckpt"), os.path.join(jobs, "2",
                                                                          "latest.ckpt"))
        with open(os.path.join(jobs, "1", "best.ckpt"), "r+b") as f:
            f.seek(100)
            byte = f.read(1)
            f.seek(100)
            f.write(bytes([byte[0] ^ 1]))
        gone = subprocess.Popen(["true"])
        gone.wait()
        with open(os.path.join(jobs, "2", f"best.ckpt.tmp.{gone.pid}"), "wb") as f:
            f.write(b"half")
        want = {"jobs/9/latest.ckpt": "orphan", "jobs/2/latest.ckpt": "foreign",
                "jobs/1/best.ckpt": "damaged", f"jobs/2/best.ckpt.tmp.{gone.pid}": "temporary"}

        status, kinds, report = findings(state)
        self.assertEqual(status, 1)
        self.assertEqual(kinds, want)
        self.assertFalse(report["ok"])
        text = check(state)
        self.assertEqual(text.returncode, 1)
        for path, kind in want.items():
            self.assertRegex(text.stdout, rf"(?m)^{kind} +{state}/{path}: ")
        self.assertIn("belongs to another job (job 1", text.stdout)
        self.assertIn("CRC mismatch", text.stdout)

        status, kinds, report = findings(state, "--quarantine")
        self.assertEqual(status, 1)
        self.assertEqual(kinds, want)
        actions = {os.path.relpath(f["path"], state): f.get("action", "")
                   for f in report["findings"]}
        for path, kind in want.items():
            self.assertFalse(os.path.exists(os.path.join(state, path)), path)
            self.assertTrue(actions[path].startswith("removed" if kind == "temporary"
                                                     else "moved to "), actions[path])
        moved = sorted(os.listdir(os.path.join(state, "quarantine")))
        self.assertEqual(len(moved), 6)  # three checkpoints, each with its reason
        status, kinds, _ = findings(state)
        self.assertEqual((status, kinds), (0, {}))
        # Job 2 lost its latest checkpoint to the quarantine: a retry trains it again.
        self.assertEqual(query(state, "SELECT count(*) FROM checkpoints WHERE job_id = 2"
                                      " AND kind = 'latest'"), [(0,)])

    def test_database_problems_are_listed(self):
        state = os.path.join(TMP, "dbcheck")
        out = train(state, "--seed", "1", "--epochs", "1")
        self.assertEqual(out.returncode, 0, out.stderr)
        with sqlite3.connect(os.path.join(state, "initlab.db")) as c:
            c.execute("PRAGMA foreign_keys = OFF")
            c.execute("INSERT INTO epochs (job_id, epoch) VALUES (42, 1)")
        out = check(state)
        self.assertEqual(out.returncode, 1, out.stdout)
        self.assertRegex(out.stdout, r"(?m)^database .*foreign_key_check: table=epochs")
        out = check(os.path.join(TMP, "no-such-state"))
        self.assertEqual(out.returncode, 1)
        self.assertIn("no database at", out.stderr)


if __name__ == "__main__":
    unittest.main()
