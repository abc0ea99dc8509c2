"""test_science.py — the issue-18 features as a user meets them on the command line: the
theory column of `initlab probe` against ResNet-50's measured explosion, `--sweep-gain`,
every initializer through `probe` and `summary`, LSUV and zero-γ in a training job, the
note about BatchNorm statistics that have not settled, and bn_recalibrate."""
import json
import math
import os
import shutil
import sqlite3
import tempfile
import unittest

from util import run_initlab


def setUpModule():
    global TMP, DATA
    TMP = tempfile.mkdtemp(prefix="initlab-science-test-")
    DATA = os.path.join(TMP, "weeds")
    out = run_initlab("demo-data", DATA, "--classes", "4", "--per-class", "24", "--size", "32")
    assert out.returncode == 0, out.stderr


def tearDownModule():
    shutil.rmtree(TMP, ignore_errors=True)


def probe(*args):
    out = run_initlab("probe", "--json", *args)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


class Probe(unittest.TestCase):
    def test_resnet50_he_explodes_in_inference_mode_and_the_theory_follows(self):
        """The paper's central figure at 32 px, in numbers: He's activations grow block after
        block when batch norm passes the product through (inference mode, moving variance
        1), Glorot's do not, train mode tames both, and the theory's std is within half a
        decade of every measured activation in inference mode."""
        common = ["--model", "resnet50", "--size", "32", "--classes", "10", "--preprocess", "tf",
                  "--batch", "16"]
        he = probe(*common, "--init", "he_uniform")["stats"]
        gl = probe(*common, "--init", "glorot_uniform")["stats"]

        def act(rows, mode, layer):
            return next(r for r in rows if r["quantity"] == "activation" and r["mode"] == mode
                        and r["layer"] == layer)
        he_last = act(he, "inference", "conv5_block3_out")["std"]
        gl_last = act(gl, "inference", "conv5_block3_out")["std"]
        self.assertGreater(he_last, 30 * act(he, "inference", "conv1_relu")["std"])
        self.assertGreater(he_last, 20 * gl_last)
        self.assertLess(act(he, "train", "conv5_block3_out")["std"], 3)
        for name, rows in (("he", he), ("glorot", gl)):
            gaps = [r["theory_gap"] for r in rows if r["mode"] == "inference"
                    and r["quantity"] == "activation" and r["theory_gap"] is not None]
            self.assertGreater(len(gaps), 45, name)
            self.assertLess(max(abs(g) for g in gaps), 0.5, f"{name}: {max(gaps, key=abs)}")
        # weights carry fan_sum: a 3x3 conv with padding sums fewer than 9·C at 8 px
        w = next(r for r in he if r["quantity"] == "weight" and r["layer"] == "conv2_block1_2_conv")
        self.assertLess(w["fan_sum"], 9 * 64)
        self.assertGreater(w["fan_sum"], 4 * 64)

    def test_depthwise_fans_count_c_but_sums_do_not(self):
        """MobileNet's depthwise kernels: Keras' fan_in is kh·kw·C, each output sums kh·kw
        inputs, so n·Var(W) is 2/C for He — the collapse the theory draws."""
        rows = probe("--model", "mobilenet", "--alpha", "0.25", "--size", "32", "--classes", "4",
                     "--init", "he_uniform", "--batch", "4", "--mode", "inference")["stats"]
        dw = next(r for r in rows if r["quantity"] == "weight" and r["layer"] == "conv_dw_3")
        c = 32  # conv_pw_2's 128 filters · 0.25
        self.assertAlmostEqual(dw["predicted_var"], 2 / (9 * c), places=12)
        self.assertLessEqual(dw["fan_sum"], 9)
        self.assertAlmostEqual(dw["fan_sum"] * dw["predicted_var"], dw["fan_sum"] * 2 / (9 * c))

    def test_sweep_gain_profiles_each_gain(self):
        out = probe("--model", "plain", "--depth", "4", "--width", "8", "--size", "32",
                    "--classes", "4", "--init", "orthogonal", "--batch", "8",
                    "--sweep-gain", "0.5,1,2", "--mode", "inference")
        self.assertEqual([p["gain"] for p in out["profiles"]], [0.5, 1, 2])
        last = [next(r for r in p["stats"] if r["layer"] == "conv_4_act")["std"]
                for p in out["profiles"]]
        # four conv layers, batch norm passing through: the std scales as gain^4
        self.assertAlmostEqual(last[2] / last[1], 16, delta=16 * 0.05)
        self.assertAlmostEqual(last[1] / last[0], 16, delta=16 * 0.05)
        text = run_initlab("probe", "--model", "plain", "--depth", "2", "--width", "8", "--size",
                           "32", "--classes", "4", "--init", "he_uniform", "--batch", "4",
                           "--sweep-gain", "0.25,1")
        self.assertEqual(text.returncode, 0, text.stderr)
        self.assertIn("gain 0.25", text.stdout)
        self.assertIn("conv_2_act", text.stdout)
        bad = run_initlab("probe", "--model", "plain", "--sweep-gain", "1,-2")
        self.assertEqual(bad.returncode, 2)
        self.assertIn("--sweep-gain", bad.stderr)

    def test_every_initializer_through_probe_and_summary(self):
        for init, extra in (("orthogonal", ["--init-gain", "2"]),
                            ("variance_scaling", ["--init-scale", "2", "--init-mode", "fan_out",
                                                  "--init-distribution", "uniform"]),
                            ("lsuv", []), ("he_normal", ["--zero-gamma"])):
            rows = probe("--model", "resnet18", "--width", "8", "--size", "32", "--classes",
                         "4", "--init", init, "--batch", "8", "--preprocess", "tf",
                         *extra)["stats"]
            w = [r for r in rows if r["quantity"] == "weight"]
            self.assertTrue(w and all(r["predicted_var"] is not None for r in w), init)
            if init == "lsuv":
                self.assertTrue(all(r["init_iters"] is not None and r["init_iters"] >= 0
                                    for r in w))
            summ = run_initlab("summary", "--model", "resnet18", "--width", "8", "--size", "32",
                               "--init", init, *extra, "--json")
            self.assertEqual(summ.returncode, 0, summ.stderr)
            s = json.loads(summ.stdout)
            self.assertEqual(s["init"], init)
            conv = next(l for l in s["layers"] if l["name"] == "conv1_conv")
            if init == "orthogonal":
                self.assertAlmostEqual(conv["init_variance"], 4 / (7 * 7 * 3), places=12)
                self.assertNotIn("init_limit", conv)
            if init == "variance_scaling":
                self.assertAlmostEqual(conv["init_limit"], math.sqrt(3 * 2 / (7 * 7 * 8)))


class Training(unittest.TestCase):
    def train(self, db, *extra):
        out = run_initlab("train", "--data", DATA, "--db", db, "--model", "resnet18",
                          "--width", "8", "--image-size", "32", "--batch-size", "8",
                          "--epochs", "2", "--threads", "1", *extra)
        self.assertEqual(out.returncode, 0, out.stderr)
        return out

    def test_lsuv_and_zero_gamma_job_records_iterations_and_notes_unsettled_statistics(self):
        db = os.path.join(TMP, "lsuv", "initlab.db")
        os.makedirs(os.path.dirname(db))
        out = self.train(db, "--init", "lsuv", "--zero-gamma", "--lsuv-tol", "0.05")
        # 58 training images, batch 8: 8 steps an epoch, far below the 459 to settle
        self.assertIn("BatchNorm moving statistics", out.stderr)
        self.assertIn("459", out.stderr)
        con = sqlite3.connect(db)
        iters = con.execute("SELECT layer_name, init_iters, fan_sum, theory_var FROM layer_stats "
                            "WHERE epoch = 0 AND quantity = 'weight' AND mode = 'train'").fetchall()
        self.assertTrue(iters)
        self.assertTrue(all(i is not None and i >= 1 for _, i, _, _ in iters), iters[:3])
        self.assertTrue(all(f is not None and t is not None for _, _, f, t in iters))
        later = con.execute("SELECT count(*) FROM layer_stats WHERE epoch = 2 AND "
                            "(init_iters IS NOT NULL OR theory_var IS NOT NULL)").fetchone()[0]
        self.assertEqual(later, 0)
        # zero-γ: the branches end silent, so the first block's output equals its input
        acts = dict(con.execute("SELECT layer_name, std FROM layer_stats WHERE epoch = 0 AND "
                                "quantity = 'activation' AND mode = 'inference'"))
        self.assertAlmostEqual(acts["conv2_block1_out"], acts["conv2_block2_out"], places=5)

    def test_bn_recalibrate_replaces_the_moving_statistics_and_is_recorded(self):
        db = os.path.join(TMP, "recal", "initlab.db")
        os.makedirs(os.path.dirname(db))
        out = self.train(db, "--init", "he_uniform", "--bn-recalibrate", "4", "--json")
        self.assertNotIn("BatchNorm moving statistics", out.stderr)
        job = json.loads(out.stdout)
        self.assertEqual(job["config"]["bn_recalibrate"], 4)
        self.assertEqual(job["results"]["bn_recalibrate"], 4)
        # after recalibration the inference-mode statistics of the probe are normalized
        # like the train-mode ones: the first batch norm's output is near unit scale
        con = sqlite3.connect(db)
        row = dict(con.execute("SELECT mode, std FROM layer_stats WHERE epoch = 2 AND "
                               "quantity = 'activation' AND layer_name = 'conv1_relu'"))
        self.assertAlmostEqual(row["inference"] / row["train"], 1, delta=0.35)


if __name__ == "__main__":
    unittest.main()
