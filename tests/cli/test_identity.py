"""test_identity.py — `initlab train` resumes only from its own job's checkpoint, for the
configuration and data it was written for: another job's checkpoint is set aside and the
job trains from scratch to exactly the weights of a clean run; a changed configuration or
dataset and a damaged best.ckpt are refused before any training; job ids are never handed
out twice, even when the database is lost."""
import json
import os
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
import unittest
import zlib

from util import BINARY, run_initlab

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "torch"))
import st  # noqa: E402  (numpy safetensors reader)

JOB = ["--model", "plain", "--depth", "4", "--width", "8", "--init", "he_uniform",
       "--epochs", "4", "--image-size", "64", "--batch-size", "8", "--threads", "1",
       "--lr", "0.01"]


def setUpModule():
    global TMP, DATA
    TMP = tempfile.mkdtemp(prefix="initlab-identity-test-")
    DATA = os.path.join(TMP, "weeds")
    # 120 images a class: epochs of a few tenths of a second, time enough to interrupt
    # epoch 2 once epoch 1 is checkpointed.
    out = run_initlab("demo-data", DATA, "--classes", "4", "--per-class", "120", "--size", "64")
    assert out.returncode == 0, out.stderr


def tearDownModule():
    shutil.rmtree(TMP, ignore_errors=True)


def train_cmd(db, *extra, data=None):
    return [BINARY, "train", "--data", data or DATA, "--db", db, *JOB, *extra]


def train(db, *extra, data=None):
    return subprocess.run(train_cmd(db, *extra, data=data), capture_output=True, text=True,
                          timeout=600)


def interrupt(db, *extra, data=None):
    """Starts a training, stops it with Ctrl-C once its first epoch is done and checkpointed
    (best.ckpt written after epoch 1's statistics; it then checkpoints inside epoch 2) and
    returns what it wrote on stderr. A Ctrl-C during epoch 1's statistics would be honoured
    there, before any checkpoint of epoch 1."""
    proc = subprocess.Popen(train_cmd(db, *extra, data=data), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    seen = []
    jobs = os.path.join(os.path.dirname(db), "jobs")
    before = {d for d in os.listdir(jobs)} if os.path.isdir(jobs) else set()
    for line in proc.stderr:
        seen.append(line)
        if ": epoch 1 " in line:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not any(
                    os.path.exists(os.path.join(jobs, d, "best.ckpt"))
                    for d in set(os.listdir(jobs)) - before):
                time.sleep(0.001)
            proc.send_signal(signal.SIGINT)
            break
    rest = proc.stderr.read()
    assert proc.wait() == 130, "".join(seen) + rest
    return "".join(seen) + rest


def query(db, sql, *args):
    with sqlite3.connect(db) as c:
        return c.execute(sql, args).fetchall()


def job_folder(db, job_id):
    return os.path.join(os.path.dirname(db), "jobs", str(job_id))


def weights(db, job_id, kind="latest"):
    path = os.path.join(job_folder(db, job_id), kind + ".ckpt")
    out = os.path.join(TMP, f"w-{time.monotonic_ns()}.safetensors")
    res = run_initlab("export-weights", path, out)
    assert res.returncode == 0, res.stderr
    return st.load(out)


def same_weights(a, b):
    return sorted(a) == sorted(b) and all(a[k].tobytes() == b[k].tobytes() for k in a)


def flip_byte(path, offset=-3):
    with open(path, "r+b") as f:
        f.seek(offset, os.SEEK_END)
        byte = f.read(1)
        f.seek(offset, os.SEEK_END)
        f.write(bytes([byte[0] ^ 0x10]))


def make_legacy(path):
    """Rewrites the checkpoint at path as initlab wrote it before checkpoints had identities:
    format version 1, no "identity" in the metadata, the CRC computed again."""
    with open(path, "rb") as f:
        data = f.read()
    magic, _, meta_len, data_len, _, reserved = struct.unpack("<8sIIQII", data[:32])
    meta = json.loads(data[32:32 + meta_len])
    del meta["identity"]
    text = json.dumps(meta, separators=(",", ":")).encode()
    body = text + data[32 + meta_len:]
    header = struct.pack("<8sIIQII", magic, 1, len(text), data_len, zlib.crc32(body), reserved)
    with open(path, "wb") as f:
        f.write(header + body)


class Reference:
    """One uninterrupted run of seed 2 in its own database, shared by the tests."""
    db = None

    @classmethod
    def get(cls):
        if cls.db is None:
            cls.db = os.path.join(TMP, "reference", "initlab.db")
            out = train(cls.db, "--seed", "2")
            assert out.returncode == 0, out.stderr
        return cls.db


class ForeignCheckpoints(unittest.TestCase):
    def test_another_jobs_checkpoint_is_set_aside_and_the_job_trains_from_scratch(self):
        db = os.path.join(TMP, "foreign", "initlab.db")
        out = train(db, "--seed", "1")
        self.assertEqual(out.returncode, 0, out.stderr)
        interrupt(db, "--seed", "2")
        self.assertEqual(query(db, "SELECT id, status FROM jobs ORDER BY id"),
                         [(1, "done"), (2, "cancelled")])
        # Job 1's finished checkpoints land in job 2's folder (a restore gone wrong, a
        # copy by hand): they must never become job 2's weights.
        for kind in ("latest", "best"):
            shutil.copy(os.path.join(job_folder(db, 1), kind + ".ckpt"),
                        os.path.join(job_folder(db, 2), kind + ".ckpt"))
        out = train(db, "--seed", "2")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("belongs to another job (job 1", out.stderr)
        self.assertEqual(query(db, "SELECT status FROM jobs WHERE id = 2"), [("done",)])
        self.assertEqual(query(db, "SELECT epoch FROM epochs WHERE job_id = 2 ORDER BY epoch"),
                         [(1,), (2,), (3,), (4,)])
        self.assertTrue(same_weights(weights(db, 2), weights(Reference.get(), 1)))
        self.assertFalse(same_weights(weights(db, 2), weights(db, 1)))
        moved = sorted(os.listdir(os.path.join(os.path.dirname(db), "quarantine")))
        self.assertEqual([m.split(".")[0] for m in moved],
                         ["job2-best", "job2-best", "job2-latest", "job2-latest"])
        note = [m for m in moved if m.startswith("job2-latest") and m.endswith(".txt")][0]
        with open(os.path.join(os.path.dirname(db), "quarantine", note)) as f:
            self.assertIn("belongs to another job", f.read())

    def test_a_lost_database_hands_out_no_id_of_a_job_folder(self):
        db = os.path.join(TMP, "lost", "initlab.db")
        out = train(db, "--seed", "1")
        self.assertEqual(out.returncode, 0, out.stderr)
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(db + suffix):
                os.unlink(db + suffix)
        out = train(db, "--seed", "2")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(query(db, "SELECT id, status FROM jobs"), [(2, "done")])
        self.assertEqual(len(query(db, "SELECT epoch FROM epochs WHERE job_id = 2")), 4)
        self.assertTrue(same_weights(weights(db, 2), weights(Reference.get(), 1)))


class Refusals(unittest.TestCase):
    def test_a_checkpoint_for_another_configuration_is_refused(self):
        db = os.path.join(TMP, "config", "initlab.db")
        interrupt(db, "--seed", "3")
        # The job's stored configuration changes under its checkpoint (the learning rate).
        with sqlite3.connect(db) as c:
            (config,) = c.execute("SELECT config FROM jobs WHERE id = 1").fetchone()
            self.assertIn('"lr":0.01,', config)
            c.execute("UPDATE jobs SET config = ? WHERE id = 1",
                      (config.replace('"lr":0.01,', '"lr":0.02,'),))
        out = train(db, "--seed", "3", "--lr", "0.02")
        self.assertEqual(out.returncode, 1, out.stderr)
        self.assertIn("job 1: resuming the unfinished job", out.stderr)
        self.assertIn("was written for another configuration", out.stderr)
        (status, error), = query(db, "SELECT status, error FROM jobs WHERE id = 1")
        self.assertEqual(status, "failed")
        self.assertIn("another configuration", error)
        self.assertEqual(query(db, "SELECT epoch FROM epochs WHERE job_id = 1"), [(1,)])
        self.assertTrue(os.path.exists(os.path.join(job_folder(db, 1), "latest.ckpt")))

    def test_a_checkpoint_of_other_data_is_refused(self):
        data = os.path.join(TMP, "changing")
        shutil.copytree(DATA, data)
        db = os.path.join(TMP, "data", "initlab.db")
        interrupt(db, "--seed", "4", data=data)
        clover = os.path.join(data, "clover")
        first = sorted(os.listdir(clover))[0]
        shutil.copy(os.path.join(clover, first), os.path.join(clover, "zz-added.jpg"))
        out = train(db, "--seed", "4", data=data)
        self.assertEqual(out.returncode, 1, out.stderr)
        self.assertIn("was trained on other data", out.stderr)
        self.assertEqual(query(db, "SELECT status FROM jobs WHERE id = 1"), [("failed",)])

    def test_a_damaged_best_checkpoint_is_found_before_training(self):
        db = os.path.join(TMP, "best", "initlab.db")
        interrupt(db, "--seed", "5")
        flip_byte(os.path.join(job_folder(db, 1), "best.ckpt"))
        out = train(db, "--seed", "5")
        self.assertEqual(out.returncode, 1, out.stderr)
        self.assertIn("best.ckpt is not usable: CRC mismatch", out.stderr)
        self.assertNotIn(": epoch 2 ", out.stderr)
        self.assertEqual(query(db, "SELECT epoch FROM epochs WHERE job_id = 1"), [(1,)])


class LegacyCheckpoints(unittest.TestCase):
    """Checkpoints without identity (format 1): resumed by a job that predates identities
    when their configuration is the job's, set aside by any other job."""

    def legacy_state(self, name):
        db = os.path.join(TMP, name, "initlab.db")
        interrupt(db, "--seed", "2")
        for kind in ("latest", "best"):
            make_legacy(os.path.join(job_folder(db, 1), kind + ".ckpt"))
        info = run_initlab("check", "--state-dir", os.path.dirname(db), "--json")
        kinds = {f["kind"] for f in json.loads(info.stdout)["findings"]}
        self.assertEqual(kinds, {"foreign"})
        return db

    def test_a_job_from_before_identities_resumes_from_its_own(self):
        db = self.legacy_state("legacy-own")
        with sqlite3.connect(db) as c:
            c.execute("UPDATE jobs SET pre_identity = 1")
        out = run_initlab("check", "--state-dir", os.path.dirname(db))
        self.assertEqual(out.returncode, 0, out.stdout)
        out = train(db, "--seed", "2")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("written before checkpoints had identities", out.stderr)
        self.assertEqual(query(db, "SELECT epoch FROM epochs WHERE job_id = 1 ORDER BY epoch"),
                         [(1,), (2,), (3,), (4,)])
        self.assertTrue(same_weights(weights(db, 1), weights(Reference.get(), 1)))

    def test_a_newer_job_sets_them_aside(self):
        db = self.legacy_state("legacy-foreign")
        out = train(db, "--seed", "2")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("has no identity", out.stderr)
        self.assertNotIn("resuming after epoch", out.stderr)
        self.assertTrue(same_weights(weights(db, 1), weights(Reference.get(), 1)))


class TemporaryFiles(unittest.TestCase):
    def test_stale_temporary_files_are_removed_when_the_job_starts(self):
        db = os.path.join(TMP, "temp", "initlab.db")
        interrupt(db, "--seed", "6")
        gone = subprocess.Popen(["true"])
        gone.wait()
        stale = os.path.join(job_folder(db, 1), f"latest.ckpt.tmp.{gone.pid}")
        with open(stale, "wb") as f:
            f.write(b"INITLABK half written")
        live = os.path.join(job_folder(db, 1), f"best.ckpt.tmp.{os.getpid()}")
        with open(live, "wb") as f:
            f.write(b"a write in progress")
        out = train(db, "--seed", "6")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertFalse(os.path.exists(stale))
        self.assertTrue(os.path.exists(live))


if __name__ == "__main__":
    unittest.main()
