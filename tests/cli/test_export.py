"""test_export.py — `initlab export --tensorboard`: the event files parse with TensorBoard's
protobuf definitions (compiled here by protoc for Python) and hold the expected tags and
values; `initlab train` prints the test results without --json."""
import json
import os
import shutil
import sqlite3
import struct
import subprocess
import sys
import tempfile
import unittest

from util import run_initlab

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROTO = os.path.join(ROOT, "daemon", "export", "tensorboard.proto")
JOB = ["--model", "plain", "--depth", "3", "--width", "8", "--init", "he_uniform",
       "--epochs", "2", "--image-size", "32", "--batch-size", "8", "--probe-size", "8",
       "--threads", "1"]


def crc32c(data):
    crc = 0xffffffff
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82f63b78 if crc & 1 else crc >> 1
    return crc ^ 0xffffffff


def masked(crc):
    return (((crc >> 15) | (crc << 17)) + 0xa282ead8) & 0xffffffff


def records(path):
    """The TFRecord payloads of path, each frame's two CRCs checked."""
    with open(path, "rb") as f:
        data = f.read()
    out, at = [], 0
    while at < len(data):
        head = data[at:at + 8]
        (n,) = struct.unpack("<Q", head)
        (head_crc,) = struct.unpack("<I", data[at + 8:at + 12])
        assert head_crc == masked(crc32c(head)), f"length CRC of the record at {at}"
        body = data[at + 12:at + 12 + n]
        (body_crc,) = struct.unpack("<I", data[at + 12 + n:at + 16 + n])
        assert body_crc == masked(crc32c(body)), f"data CRC of the record at {at}"
        out.append(body)
        at += 16 + n
    return out


def setUpModule():
    global TMP, DATA, PB
    TMP = tempfile.mkdtemp(prefix="initlab-export-test-")
    DATA = os.path.join(TMP, "weeds")
    out = run_initlab("demo-data", DATA, "--classes", "3", "--per-class", "20", "--size", "32")
    assert out.returncode == 0, out.stderr
    gen = os.path.join(TMP, "pb")
    os.makedirs(gen)
    subprocess.run(["protoc", f"--python_out={gen}", f"-I{os.path.dirname(PROTO)}", PROTO],
                   check=True)
    sys.path.insert(0, gen)
    import tensorboard_pb2  # noqa: E402
    PB = tensorboard_pb2


def tearDownModule():
    shutil.rmtree(TMP, ignore_errors=True)


class TensorBoard(unittest.TestCase):
    def test_event_files_parse_and_hold_the_jobs_records(self):
        db = os.path.join(TMP, "state", "initlab.db")
        out = run_initlab("train", "--data", DATA, "--db", db, *JOB)
        self.assertEqual(out.returncode, 0, out.stderr)
        # Without --json the test results are printed too.
        self.assertRegex(out.stderr, r"test accuracy [0-9.]+.*precision.*recall.*F1.*loss")
        logdir = os.path.join(TMP, "tb")
        out = run_initlab("export", "--tensorboard", logdir, "--db", db, "1")
        self.assertEqual(out.returncode, 0, out.stderr)
        runs = os.listdir(logdir)
        self.assertEqual(runs, ["job1-plain-he_uniform-s0"])
        files = os.listdir(os.path.join(logdir, runs[0]))
        self.assertEqual(len(files), 1)
        self.assertTrue(files[0].startswith("events.out.tfevents."))
        events = []
        for body in records(os.path.join(logdir, runs[0], files[0])):
            e = PB.Event()
            e.ParseFromString(body)
            self.assertEqual(e.SerializeToString(), body, "nothing unknown to the definitions")
            events.append(e)
        self.assertEqual(events[0].file_version, "brain.Event:2")
        scalars, histos = {}, {}
        for e in events[1:]:
            self.assertEqual(len(e.summary.value), 1)
            v = e.summary.value[0]
            if v.WhichOneof("value") == "simple_value":
                scalars.setdefault(v.tag, {})[e.step] = v.simple_value
            else:
                self.assertEqual(v.WhichOneof("value"), "histo")
                histos.setdefault(v.tag, {})[e.step] = v.histo
        with sqlite3.connect(db) as c:
            epochs = c.execute("SELECT epoch, train_loss, val_acc, lr FROM epochs"
                               " WHERE job_id = 1 ORDER BY epoch").fetchall()
            steps = c.execute("SELECT global_step, loss FROM steps WHERE job_id = 1"
                              " ORDER BY global_step").fetchall()
            acc = c.execute("SELECT epoch, accuracy FROM results WHERE job_id = 1").fetchone()
            stats = c.execute("SELECT epoch, mode, quantity, layer_index, layer_name, n,"
                              " nonfinite, min, max, hist_lo, hist_hi FROM layer_stats"
                              " WHERE job_id = 1").fetchall()
        f32 = lambda x: struct.unpack("<f", struct.pack("<f", x))[0]
        self.assertEqual(scalars["epoch/train_loss"], {e: f32(l) for e, l, _, _ in epochs})
        self.assertEqual(scalars["epoch/val_accuracy"], {e: f32(a) for e, _, a, _ in epochs})
        self.assertEqual(scalars["epoch/lr"], {e: f32(lr) for e, _, _, lr in epochs})
        self.assertGreater(len(steps), 2)
        self.assertEqual(scalars["step/train_loss"], {g: f32(l) for g, l in steps})
        self.assertEqual(scalars["test/accuracy"], {acc[0]: f32(acc[1])})
        for tag in ("epoch/train_accuracy", "epoch/val_loss", "step/train_accuracy",
                    "test/f1_macro", "test/loss"):
            self.assertIn(tag, scalars)
        # Per-layer histograms of weights, activations and gradients in both BN modes, at
        # every epoch with statistics (0 = at initialization).
        self.assertEqual(len(histos), len({(m, q, i) for _, m, q, i, *_ in stats}))
        for epoch, mode, quantity, index, layer, n, nonfinite, lo, hi, hlo, hhi in stats:
            h = histos[f"{quantity}/{mode}/{index:03d}_{layer}"][epoch]
            self.assertEqual(sum(h.bucket), n - nonfinite)
            self.assertEqual(h.num, n - nonfinite)
            self.assertEqual(len(h.bucket), 64)
            self.assertEqual((h.min, h.max), (lo, hi))
            self.assertEqual(h.bucket_limit[-1], hhi)
            self.assertTrue(all(a < b for a, b in zip(h.bucket_limit, h.bucket_limit[1:])))
        modes = {k.split("/")[1] for k in histos}
        quantities = {k.split("/")[0] for k in histos}
        self.assertEqual((modes, quantities), ({"train", "inference"},
                                               {"weight", "activation", "gradient"}))
        self.assertEqual(set(next(iter(histos.values()))), {0, 1, 2})

    def test_unknown_jobs_and_usage(self):
        self.assertEqual(run_initlab("export", "1").returncode, 2)
        self.assertEqual(run_initlab("export", "--tensorboard", TMP, "x").returncode, 2)
        db = os.path.join(TMP, "none.db")
        out = run_initlab("export", "--tensorboard", os.path.join(TMP, "tb2"), "--db", db, "1")
        self.assertEqual(out.returncode, 1)
        self.assertIn("no database", out.stderr)


if __name__ == "__main__":
    unittest.main()
