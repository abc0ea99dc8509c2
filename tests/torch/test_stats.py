"""test_stats.py — stats_summarize (via build/tools/stats_dump) against numpy.

Each tensor is written as raw float32; numpy's reference works on its finite values
converted to float64 (f below), as the C code does. Compared:
  - n, nonfinite, zero_frac (exact zeros / n), min, max: exactly;
  - q1, median, q3, p1, p99 = np.percentile(f, [25, 50, 75, 1, 99]) (default "linear"):
    within 1e-12·max|f| (the C code repeats numpy's arithmetic, so they agree to the bit
    in practice);
  - Tukey whiskers = min of f >= q1 - 1.5·IQR and max of f <= q3 + 1.5·IQR with numpy's
    quartiles: exactly;
  - the 64-bin histogram = np.histogram(f, bins=64, range=(min, max)): every count
    exactly, and hist_lo/hist_hi equal to numpy's first and last edges (numpy widens a
    constant tensor's range to [v - 0.5, v + 0.5]);
  - mean = np.mean(f): within 1e-12·max|f|; std = np.std(f) (population): within
    1e-10·std + 1e-12·max|f|.
"""
import json
import os
import subprocess
import tempfile
import unittest

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(os.environ.get("INITLAB_TOOLS", os.path.join(ROOT, "build", "tools")),
                    "stats_dump")
BINS = 64


def summarize(x, path):
    np.asarray(x, dtype="<f4").tofile(path)
    r = subprocess.run([TOOL, path], capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError(f"stats_dump failed ({r.returncode}): {r.stderr.strip()}")
    return json.loads(r.stdout)


class StatsAgainstNumpy(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.access(TOOL, os.X_OK):
            raise AssertionError(f"{TOOL} missing: run `make build/tools/stats_dump`")

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.file = os.path.join(self.tmp.name, "x.f32")

    def tearDown(self):
        self.tmp.cleanup()

    def check(self, x, label):
        x = np.asarray(x, dtype=np.float32).ravel()
        s = summarize(x, self.file)
        finite = np.isfinite(x)
        f = x[finite].astype(np.float64)
        with self.subTest(tensor=label):
            self.assertEqual(s["n"], x.size)
            self.assertEqual(s["nonfinite"], int((~finite).sum()))
            self.assertEqual(s["zero_frac"], float((x == 0).sum()) / x.size if x.size else 0.0)
            if f.size == 0:
                for key in ("mean", "std", "min", "max", "q1", "median", "q3", "p1", "p99",
                            "whisker_lo", "whisker_hi", "hist_lo", "hist_hi"):
                    self.assertEqual(s[key], 0.0, key)
                self.assertEqual(sum(s["hist"]), 0)
                return
            scale = float(np.max(np.abs(f)))
            self.assertEqual(s["min"], f.min())
            self.assertEqual(s["max"], f.max())
            self.assertLessEqual(abs(s["mean"] - np.mean(f)), 1e-12 * scale, "mean")
            std = np.std(f)
            self.assertLessEqual(abs(s["std"] - std), 1e-10 * std + 1e-12 * scale, "std")
            p1, q1, med, q3, p99 = np.percentile(f, [1, 25, 50, 75, 99])
            for key, ref in (("p1", p1), ("q1", q1), ("median", med), ("q3", q3),
                             ("p99", p99)):
                self.assertLessEqual(abs(s[key] - ref), 1e-12 * scale,
                                     f"{key}: {s[key]!r} vs numpy {ref!r}")
            iqr = q3 - q1
            self.assertEqual(s["whisker_lo"], f[f >= q1 - 1.5 * iqr].min())
            self.assertEqual(s["whisker_hi"], f[f <= q3 + 1.5 * iqr].max())
            counts, edges = np.histogram(f, bins=BINS, range=(f.min(), f.max()))
            self.assertEqual(s["hist_lo"], edges[0])
            self.assertEqual(s["hist_hi"], edges[-1])
            diff = [(i, c, r) for i, (c, r) in enumerate(zip(s["hist"], counts)) if c != r]
            self.assertEqual(diff, [], "histogram bins (index, C, numpy) that differ")

    def test_normal(self):
        rng = np.random.default_rng(1)
        self.check(rng.standard_normal(10_000), "normal")
        self.check(0.05 * rng.standard_normal(30_001) + 3.0, "normal, offset")

    def test_heavy_tailed(self):
        rng = np.random.default_rng(2)
        self.check(rng.standard_cauchy(20_000), "cauchy")
        self.check(rng.standard_t(1.5, 20_000) * 1e-3, "student t")
        self.check(np.exp(rng.standard_normal(5_000) * 8), "log-normal, wide")

    def test_with_zeros(self):
        rng = np.random.default_rng(3)
        relu = np.maximum(rng.standard_normal(40_000), 0)
        self.check(relu, "relu")
        sparse = rng.standard_normal(10_000)
        sparse[rng.random(10_000) < 0.9] = 0
        sparse[:7] = -0.0
        self.check(sparse, "90% zeros")
        self.check(np.zeros(100), "all zeros")

    def test_with_nonfinite(self):
        rng = np.random.default_rng(4)
        x = rng.standard_normal(10_000).astype(np.float32)
        x[rng.random(10_000) < 0.05] = np.nan
        x[:3] = np.inf
        x[3:5] = -np.inf
        self.check(x, "nan and inf")
        self.check(np.array([np.nan, np.inf, -np.nan]), "all non-finite")
        self.check(np.array([np.nan, 2.0, np.nan]), "one finite")

    def test_ties_and_values_on_bin_edges(self):
        rng = np.random.default_rng(5)
        self.check(rng.integers(0, 5, 9_999), "five distinct values")
        # Values on (or one float away from) the bin edges. In the last two ranges some
        # values need numpy's upward index fix-up, in the first its downward one.
        for lo, hi in ((-1.3, 1.9), (1294.5588, 2983.6663), (16.432516, 22.289095)):
            lo, hi = float(np.float32(lo)), float(np.float32(hi))
            edges = np.linspace(lo, hi, BINS + 1).astype(np.float32)
            near = np.concatenate([edges, np.nextafter(edges, np.float32(np.inf))[:-1],
                                   np.nextafter(edges, np.float32(-np.inf))[1:]])
            self.check(rng.permutation(near), f"bin edges of [{lo}, {hi}]")
        self.check(np.arange(1000, dtype=np.float32) / 7, "multiples of 1/7")

    def test_small_and_constant(self):
        self.check(np.array([], dtype=np.float32), "empty")
        self.check(np.array([-4.5]), "size 1")
        self.check(np.array([3.0, 1.0]), "size 2")
        self.check(np.array([1.0, 3.0, 2.0]), "size 3")
        self.check(np.full(7, 2.5), "constant")
        self.check(np.full(5, -1e-30), "constant, tiny")
        self.check(np.array([0.1, 0.1 + 2 ** -26]), "two neighbours")

    def test_large(self):
        rng = np.random.default_rng(6)
        x = (rng.standard_normal(1_000_000) * 0.02).astype(np.float32)
        x[::10] = 0
        self.check(x, "1M")
        self.check(np.sort(x), "1M sorted")


if __name__ == "__main__":
    unittest.main()
