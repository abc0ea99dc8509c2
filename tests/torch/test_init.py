"""test_init.py — initlab's Orthogonal and LSUV initializers against PyTorch.

Orthogonal (Keras semantics): build/tools/init_dump writes the normal matrix it drew and
the matrix it made of it; torch.linalg.qr of the same matrix, with Keras' sign correction
(q · sign(diag r)) and the transpose for wide kernels, must give the same matrix, and its
statistics must be those of torch.nn.init.orthogonal_ on that shape (orthonormal columns
or rows, element variance 1/max(rows, cols), mean near 0).

LSUV (Mishkin & Matas 2016): init_dump starts a `plain` net (3 convs with batch norm, the
paper's head) orthonormal and runs LSUV on a batch; a float64 PyTorch implementation of the
same algorithm, started from the same weights on the same batch, must rescale the same
kernels the same number of times to the same weights, and every kernel layer's output,
recomputed in PyTorch with initlab's final weights, must have variance 1 within the
tolerance (0.1) on the batch.
"""
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import torch
import torch.nn.functional as F

import st

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import keras_models as km  # noqa: E402

TOOL = os.path.join(os.environ.get("INITLAB_TOOLS", os.path.join(ROOT, "build", "tools")),
                    "init_dump")
LSUV_TOL, LSUV_MAX = 0.1, 10


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()}")


def keras_orthogonal(a, rows, cols):
    """Keras' Orthogonal from its normal matrix a (max, min), in float64 PyTorch."""
    q, r = torch.linalg.qr(torch.from_numpy(a.astype(np.float64)))
    q = q * torch.sign(torch.diagonal(r))
    if rows < cols:
        q = q.t()
    return q.numpy()


class Orthogonal(unittest.TestCase):
    def test_same_matrix_as_torch_qr_with_keras_sign_correction(self):
        with tempfile.TemporaryDirectory() as tmp:
            for rows, cols, seed in [(288, 32, 1), (32, 288, 2), (64, 64, 3), (4608, 8, 4)]:
                path = os.path.join(tmp, "o.st")
                run([TOOL, "orthogonal", str(rows), str(cols), str(seed), path])
                t = st.load(path)
                ref = keras_orthogonal(t["a"], rows, cols)
                err = np.max(np.abs(t["q"] - ref))
                self.assertLess(err, 2e-5, f"({rows}, {cols}): max |initlab - torch| = {err}")

    def test_statistics_match_torch_orthogonal_(self):
        with tempfile.TemporaryDirectory() as tmp:
            for rows, cols in [(2304, 256), (256, 2304)]:
                path = os.path.join(tmp, "o.st")
                run([TOOL, "orthogonal", str(rows), str(cols), "7", path])
                ours = st.load(path)["q"].astype(np.float64)
                torch.manual_seed(0)
                theirs = torch.empty(rows, cols, dtype=torch.float64)
                torch.nn.init.orthogonal_(theirs)
                theirs = theirs.numpy()
                for name, w in (("initlab", ours), ("torch", theirs)):
                    g = w.T @ w if rows >= cols else w @ w.T
                    self.assertLess(np.max(np.abs(g - np.eye(g.shape[0]))), 1e-4, name)
                    self.assertAlmostEqual(np.var(w) * max(rows, cols), 1.0, delta=0.01, msg=name)
                    self.assertLess(abs(np.mean(w)), 4 / np.sqrt(w.size) / np.sqrt(max(rows, cols)))
                # the element distributions agree: fourth moments of a near-normal
                k_ours = np.mean(ours ** 4) / np.mean(ours ** 2) ** 2
                k_theirs = np.mean(theirs ** 4) / np.mean(theirs ** 2) ** 2
                self.assertAlmostEqual(k_ours, k_theirs, delta=0.05)


def plain_layers():
    """The `plain` net of init_dump (depth 3, width 8, 32 px): its kernels in build order."""
    return ["conv_1", "conv_2", "conv_3", "fc1", "predictions"]


def plain_forward(w, x, record=None):
    """Keras' plain (conv 3x3 "same", BN eps 1e-3 on batch statistics, ReLU), the paper's
    head (GAP, dense 256, BN, ReLU, dense), float64. w: Keras name -> Keras-layout array.
    record(name, out) sees each kernel layer's output before its batch norm."""
    T = lambda k: torch.from_numpy(w[k].astype(np.float64))  # noqa: E731
    h = torch.from_numpy(x.astype(np.float64)).permute(0, 3, 1, 2)

    def bn(h, name):
        return F.batch_norm(h, None, None, T(f"{name}/gamma"), T(f"{name}/beta"), training=True,
                            eps=1e-3)
    for i, name in enumerate(["conv_1", "conv_2", "conv_3"]):
        stride = 1 if i == 0 else 2
        kernel = T(f"{name}/kernel").permute(3, 2, 0, 1)
        ph = km.tf_same_pads(h.shape[2], 3, stride)
        pw = km.tf_same_pads(h.shape[3], 3, stride)
        h = F.conv2d(F.pad(h, (pw[0], pw[1], ph[0], ph[1])), kernel, stride=stride)
        if record:
            record(name, h)
        h = F.relu(bn(h, f"{name}_bn"))
    h = h.mean((2, 3))
    h = h @ T("fc1/kernel") + T("fc1/bias")
    if record:
        record("fc1", h)
    h = F.relu(bn(h, "fc1_bn"))
    h = h @ T("predictions/kernel") + T("predictions/bias")
    if record:
        record("predictions", h)
    return h


def torch_lsuv(w, x):
    """Mishkin & Matas' LSUV on the orthonormal start w (a dict, modified): returns the
    rescalings per kernel."""
    iters = {}
    for name in plain_layers():
        iters[name] = 0
        while True:
            seen = {}
            plain_forward(w, x, lambda n, h: seen.__setitem__(n, h))
            v = float(torch.var(seen[name], unbiased=False))
            if abs(v - 1) < LSUV_TOL or iters[name] >= LSUV_MAX:
                break
            w[f"{name}/kernel"] = w[f"{name}/kernel"] / np.sqrt(v)
            if f"{name}/bias" in w:
                w[f"{name}/bias"] = w[f"{name}/bias"] / np.sqrt(v)
            iters[name] += 1
    return iters


class Lsuv(unittest.TestCase):
    def test_lsuv_matches_a_pytorch_lsuv_and_reaches_unit_variance(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "l.st")
            run([TOOL, "lsuv", "5", path])
            t = st.load(path)
            names = [k[len("start/"):] for k in t if k.startswith("start/")]
            start = {k: t["start/" + k].astype(np.float64) for k in names}
            final = {k: t["lsuv/" + k] for k in names}
            iters = dict(zip(names, t["iters"].astype(int)))
            x = t["x"]
            # the start is orthonormal (Keras Orthogonal of the flattened kernel)
            k = start["conv_1/kernel"].reshape(27, 8)
            self.assertLess(np.max(np.abs(k.T @ k - np.eye(8))), 1e-5)

            ref = dict(start)
            ref_iters = torch_lsuv(ref, x)
            for name in plain_layers():
                self.assertEqual(iters[f"{name}/kernel"], ref_iters[name], name)
                self.assertGreaterEqual(ref_iters[name], 1, f"{name}: the batch is not unit-scaled")
                r = ref[f"{name}/kernel"]
                err = np.max(np.abs(final[f"{name}/kernel"] - r)) / np.max(np.abs(r))
                self.assertLess(err, 1e-4, f"{name}: initlab's LSUV weights differ by {err}")
            # every kernel layer's output, in PyTorch with initlab's weights: unit variance
            seen = {}
            plain_forward({k: v.astype(np.float64) for k, v in final.items()}, x,
                          lambda n, h: seen.__setitem__(n, h))
            for name in plain_layers():
                v = float(torch.var(seen[name], unbiased=False))
                self.assertLess(abs(v - 1), LSUV_TOL, f"{name}: output variance {v}")


if __name__ == "__main__":
    unittest.main()
