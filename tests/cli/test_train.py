"""test_train.py — `initlab train` end to end: what it records, and resuming after kill -9 or
Ctrl-C ends with exactly the weights of an uninterrupted run."""
import os
import random
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

JOB = ["--model", "plain", "--depth", "6", "--width", "16", "--init", "he_uniform",
       "--epochs", "4", "--image-size", "64", "--batch-size", "8", "--threads", "1",
       "--lr", "0.01"]
EPOCHS = 4


def setUpModule():
    global TMP, DATA
    TMP = tempfile.mkdtemp(prefix="initlab-train-test-")
    DATA = os.path.join(TMP, "weeds")
    out = run_initlab("demo-data", DATA, "--classes", "6", "--per-class", "50", "--size", "64")
    assert out.returncode == 0, out.stderr


def tearDownModule():
    shutil.rmtree(TMP, ignore_errors=True)


def train_cmd(db, *extra):
    return [BINARY, "train", "--data", DATA, "--db", db, *JOB, *extra]


def weights(db, job_id=1):
    path = os.path.join(os.path.dirname(db), "jobs", str(job_id), "latest.ckpt")
    out = os.path.join(os.path.dirname(db), f"w{job_id}-{time.monotonic_ns()}.safetensors")
    res = run_initlab("export-weights", path, out)
    assert res.returncode == 0, res.stderr
    return st.load(out)


def assert_same_weights(test, a, b):
    test.assertEqual(sorted(a), sorted(b))
    for name in a:
        test.assertTrue((a[name] == b[name]).all(), f"{name} differs")
        test.assertEqual(a[name].tobytes(), b[name].tobytes(), name)


def query(db, sql, *args):
    with sqlite3.connect(db) as c:
        return c.execute(sql, args).fetchall()


class Reference:
    """One uninterrupted run, shared by the tests that compare against it."""
    db = None
    seconds = None

    @classmethod
    def get(cls):
        if cls.db is None:
            cls.db = os.path.join(TMP, "reference", "initlab.db")
            t0 = time.monotonic()
            out = subprocess.run(train_cmd(cls.db), capture_output=True, text=True)
            cls.seconds = time.monotonic() - t0
            assert out.returncode == 0, out.stderr
        return cls.db


class Records(unittest.TestCase):
    def test_epochs_statistics_results_and_checkpoints_are_stored(self):
        db = Reference.get()
        self.assertEqual(query(db, "SELECT status FROM jobs WHERE id = 1"), [("done",)])
        epochs = [e for (e,) in query(db, "SELECT epoch FROM epochs WHERE job_id = 1 ORDER BY epoch")]
        self.assertEqual(epochs, list(range(1, EPOCHS + 1)))
        combos = query(db, "SELECT epoch, mode, quantity, count(*) FROM layer_stats "
                           "WHERE job_id = 1 GROUP BY epoch, mode, quantity")
        seen = {(e, m, q) for e, m, q, n in combos if n > 0}
        for e in range(EPOCHS + 1):
            for m in ("train", "inference"):
                for q in ("weight", "activation", "gradient"):
                    self.assertIn((e, m, q), seen)
        # Weights are the same in both modes; activations are not (BN batch vs moving stats).
        w = query(db, "SELECT mode, mean FROM layer_stats WHERE job_id = 1 AND epoch = 2 "
                      "AND quantity = 'weight' AND layer_index = 1 ORDER BY mode")
        self.assertEqual(w[0][1], w[1][1])
        a = query(db, "SELECT mode, std FROM layer_stats WHERE job_id = 1 AND epoch = 2 "
                      "AND quantity = 'activation' ORDER BY layer_index LIMIT 2")
        self.assertTrue(len(a) >= 1)
        res = query(db, "SELECT accuracy, f1_macro, confusion FROM results WHERE job_id = 1")
        self.assertEqual(len(res), 1)
        self.assertTrue(0 <= res[0][0] <= 1)
        kinds = {k for (k,) in query(db, "SELECT kind FROM checkpoints WHERE job_id = 1")}
        self.assertEqual(kinds, {"latest", "best"})

    def test_epoch_zero_is_before_any_update(self):
        """The statistics of epoch 0 are those of the initializer: he_uniform kernels have
        the variance 2/fan_in (up to sampling error) and predicted_var says so."""
        db = Reference.get()
        rows = query(db, "SELECT std, predicted_var, n FROM layer_stats WHERE job_id = 1 "
                         "AND epoch = 0 AND mode = 'inference' AND quantity = 'weight'")
        self.assertTrue(rows)
        for std, predicted, n in rows:
            self.assertIsNotNone(predicted)
            self.assertLess(abs(std * std / predicted - 1), 6 / n ** 0.5 + 0.02)


class Resume(unittest.TestCase):
    def test_kill_9_at_a_random_moment_resumes_bit_identically(self):
        """The moment is drawn from a seed printed at the start; INITLAB_KILL_SEED=N replays
        it (the same epoch and fraction of the next one; the step it lands on still
        depends on the machine's speed)."""
        reference = weights(Reference.get())
        db = os.path.join(TMP, "killed", "initlab.db")
        seed = os.environ.get("INITLAB_KILL_SEED")
        seed = int(seed) if seed else random.SystemRandom().randrange(2 ** 32)
        print(f"\n    kill -9 moment: INITLAB_KILL_SEED={seed}", file=sys.stderr, flush=True)
        rnd = random.Random(seed)
        after_epochs = rnd.randint(1, EPOCHS - 2)
        proc = subprocess.Popen(train_cmd(db), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)

        def epochs_done():
            try:
                return query(db, "SELECT count(*) FROM epochs")[0][0]
            except sqlite3.Error:  # not created yet
                return 0
        while epochs_done() < after_epochs and proc.poll() is None:
            time.sleep(0.01)
        # Somewhere inside the next epoch: a random step, or its validation or statistics.
        time.sleep(rnd.uniform(0, 0.8) * Reference.seconds / (EPOCHS + 2))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        before = epochs_done()
        replay = f"replay with INITLAB_KILL_SEED={seed}"
        self.assertLess(before, EPOCHS, "the run ended before the kill; nothing was tested; "
                        + replay)
        out = subprocess.run(train_cmd(db), capture_output=True, text=True)
        self.assertEqual(out.returncode, 0, out.stderr + replay)
        self.assertIn("resuming", out.stderr, f"killed after {before} epochs; {replay}")
        epochs = [e for (e,) in query(db, "SELECT epoch FROM epochs WHERE job_id = 1 ORDER BY epoch")]
        self.assertEqual(epochs, list(range(1, EPOCHS + 1)), replay)
        self.assertEqual(query(db, "SELECT count(*) FROM jobs"), [(1,)], replay)
        try:
            assert_same_weights(self, weights(db), reference)
        except AssertionError as e:
            raise AssertionError(f"{e}; {replay}") from None

    def test_ctrl_c_checkpoints_mid_epoch_and_resumes_bit_identically(self):
        reference = weights(Reference.get())
        db = os.path.join(TMP, "interrupted", "initlab.db")
        proc = subprocess.Popen(train_cmd(db), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        for line in proc.stderr:
            if " epoch 2/4 step " in line:
                proc.send_signal(signal.SIGINT)
                break
        rest = proc.stderr.read()
        self.assertEqual(proc.wait(), 130, rest)
        self.assertIn("interrupted", rest)
        self.assertEqual(query(db, "SELECT status FROM jobs WHERE id = 1"), [("cancelled",)])
        out = subprocess.run(train_cmd(db), capture_output=True, text=True)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertRegex(out.stderr, r"resum")
        epochs = [e for (e,) in query(db, "SELECT epoch FROM epochs WHERE job_id = 1 ORDER BY epoch")]
        self.assertEqual(epochs, list(range(1, EPOCHS + 1)))
        assert_same_weights(self, weights(db), reference)

    def test_copies_of_one_interrupt_count_once(self):
        # A terminal's Ctrl-C and a wrapper's SIGTERM a moment later: one graceful stop.
        db = os.path.join(TMP, "twice-at-once", "initlab.db")
        proc = subprocess.Popen(train_cmd(db), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        for line in proc.stderr:
            if " epoch 2/4 step " in line:
                os.killpg(proc.pid, signal.SIGINT)
                proc.send_signal(signal.SIGTERM)
                break
        rest = proc.stderr.read()
        # 128 + the signal that was handled first: the two may reach different threads
        # in either order.
        self.assertIn(proc.wait(), (130, 143), rest)
        self.assertIn("checkpoint saved", rest)
        self.assertNotIn("exiting at once", rest)
        out = subprocess.run(train_cmd(db), capture_output=True, text=True)
        self.assertEqual(out.returncode, 0, out.stderr)
        epochs = [e for (e,) in query(db, "SELECT epoch FROM epochs WHERE job_id = 1 ORDER BY epoch")]
        self.assertEqual(epochs, list(range(1, EPOCHS + 1)))

    def test_sigterm_checkpoints_and_exits_143(self):
        db = os.path.join(TMP, "sigterm", "initlab.db")
        proc = subprocess.Popen(train_cmd(db), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        for line in proc.stderr:
            if " epoch 2/4 step " in line:
                proc.send_signal(signal.SIGTERM)
                break
        rest = proc.stderr.read()
        self.assertEqual(proc.wait(), 143, rest)
        self.assertIn("checkpoint saved", rest)

    def test_a_corrupt_checkpoint_is_refused(self):
        db = Reference.get()
        src = os.path.join(os.path.dirname(db), "jobs", "1", "best.ckpt")
        bad = os.path.join(TMP, "corrupt.ckpt")
        shutil.copy(src, bad)
        with open(bad, "r+b") as f:
            f.seek(-3, os.SEEK_END)
            byte = f.read(1)
            f.seek(-3, os.SEEK_END)
            f.write(bytes([byte[0] ^ 0x10]))
        out = run_initlab("export-weights", bad, os.path.join(TMP, "never.safetensors"))
        self.assertEqual(out.returncode, 1)
        self.assertIn("CRC mismatch", out.stderr)
        self.assertFalse(os.path.exists(os.path.join(TMP, "never.safetensors")))


class BadInput(unittest.TestCase):
    def test_missing_folder_and_bad_values_are_named(self):
        out = run_initlab("train", "--data", os.path.join(TMP, "nope"), "--db",
                          os.path.join(TMP, "bad", "x.db"), "--model", "plain")
        self.assertEqual(out.returncode, 1)
        self.assertIn("no such directory", out.stderr)
        out = run_initlab("train", "--data", DATA, "--db", os.path.join(TMP, "bad", "x.db"),
                          "--model", "plain", "--epochs", "-3")
        self.assertEqual(out.returncode, 2)
        self.assertIn("--epochs", out.stderr)
        out = run_initlab("train", "--data", DATA, "--db", os.path.join(TMP, "bad", "x.db"),
                          "--model", "plain", "--learning-rate", "0.1")
        self.assertEqual(out.returncode, 2)
        self.assertIn("learning_rate", out.stderr)


if __name__ == "__main__":
    unittest.main()
