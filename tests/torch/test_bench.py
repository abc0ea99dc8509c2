"""test_bench.py — `initlab bench --json --profile` reports what it measured: layers, FLOPs, rates."""
import json
import os
import subprocess
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INITLAB = os.environ.get("INITLAB_BIN", os.path.join(ROOT, "initlab"))


def run_json(args):
    r = subprocess.run([INITLAB] + args, capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError(f"initlab {' '.join(args)} failed: {r.stderr.strip()}")
    return json.loads(r.stdout)


class BenchTest(unittest.TestCase):
    def test_plain_profile_counts_flops_per_type(self):
        # plain, depth 4, width 8, 32 px, batch 4, keras head (GAP, dense 10):
        # stages of one conv each: 32 px 3->8, 16 px 8->16, 8 px 16->32, 4 px 32->64.
        args = ["--model", "plain", "--size", "32", "--depth", "4", "--width", "8",
                "--head", "keras", "--classes", "10"]
        b = run_json(["bench", "--batch", "4", "--steps", "2", "--threads", "1", "--json",
                      "--profile"] + args)
        s = run_json(["summary", "--json"] + args)
        self.assertEqual(len(b["layers"]), s["n_layers"] - 1)  # the input is not timed
        self.assertEqual([l["name"] for l in b["layers"]], [l["name"] for l in s["layers"][1:]])
        n = 4
        conv = sum(2 * n * hw * hw * 9 * cin * cout
                   for hw, cin, cout in ((32, 3, 8), (16, 8, 16), (8, 16, 32), (4, 32, 64)))
        dense = 2 * n * 64 * 10
        types = {t["type"]: t for t in b["types"]}
        self.assertAlmostEqual(types["conv2d"]["gflop"], 3 * conv * 1e-9, places=12)
        self.assertAlmostEqual(types["dense"]["gflop"], 3 * dense * 1e-9, places=12)
        self.assertEqual(types["conv2d"]["layers"], 4)
        self.assertEqual(types["batch_normalization"]["layers"], 4)
        self.assertGreater(b["images_per_s"], 0)
        self.assertAlmostEqual(b["images_per_s"], 4 / b["step_seconds"], places=6)
        self.assertLessEqual(b["step_seconds_min"], b["step_seconds"])
        self.assertGreater(b["peak_rss_mb"], 1)
        self.assertAlmostEqual(sum(t["share"] for t in b["types"]), 1.0, places=6)
        self.assertTrue(all(l["fwd_ms"] >= 0 and l["bwd_ms"] >= 0 for l in b["layers"]))

    def test_bad_options_are_usage_errors(self):
        for args in (["--model", "vgg"], ["--model", "plain", "--batch", "0"],
                     ["--model", "plain", "--steps", "x"], ["--size", "32"],
                     ["--model", "plain", "--frobnicate"]):
            r = subprocess.run([INITLAB, "bench"] + args, capture_output=True, text=True)
            self.assertEqual(r.returncode, 2, args)
            self.assertIn("initlab bench:", r.stderr)


if __name__ == "__main__":
    unittest.main()


class MakeBenchTest(unittest.TestCase):
    """bench/run.py (`make bench`) on one small configuration: the table and the JSON carry
    what both sides measured, the best round of each and their ratio."""

    def test_table_and_json_report_both_sides(self):
        import tempfile
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "bench.json")
            r = subprocess.run(
                ["/usr/bin/python3", os.path.join(ROOT, "bench", "run.py"), "--config",
                 "mobilenet:32:4:0.25", "--steps", "2", "--rounds", "2", "--initlab", INITLAB,
                 "--out", out], capture_output=True, text=True, cwd=ROOT)
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(out) as f:
                d = json.load(f)
        self.assertIn("mobilenet a0.25 32px b4", r.stdout)
        self.assertIn("best of 2 alternating rounds", r.stdout)
        row, = d["rows"]
        self.assertEqual((row["model"], row["size"], row["batch"], row["alpha"]),
                         ("mobilenet", 32, 4, 0.25))
        for side in ("initlab", "torch"):
            self.assertEqual(len(row[f"{side}_rounds"]), 2)
            self.assertEqual(row[side]["images_per_s"], max(row[f"{side}_rounds"]))
            self.assertGreater(row[side]["peak_rss_mb"], 0)
        self.assertAlmostEqual(row["ratio"],
                               row["initlab"]["images_per_s"] / row["torch"]["images_per_s"])
        line = next(l for l in r.stdout.splitlines() if l.startswith("mobilenet a0.25 32px b4 "))
        self.assertIn(f"{row['ratio']:.2f}x", line)
        conc, = d["concurrency"]
        self.assertAlmostEqual(conc["two_1thread_images_per_s"], sum(conc["each"]))
        self.assertAlmostEqual(conc["ratio"], conc["two_1thread_images_per_s"]
                               / conc["one_2thread_images_per_s"])
