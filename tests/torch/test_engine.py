"""test_engine.py — the training engine against PyTorch on a small net, step by step.

build/tools/nn_crosscheck builds conv 3x3/2 same -> BN -> ReLU6 -> ZeroPadding
((0,1),(0,1)) -> depthwise 3x3/2 valid -> BN -> ReLU -> 1x1 conv -> add (with the ReLU
output) -> global average pool -> dense, initializes it, and trains it 3 steps (Nesterov
SGD, lr 0.1, momentum 0.9, L2 1e-3 on kernels, class-weighted cross-entropy), writing the
inputs, every initial weight (Keras names and layouts), the first step's logits, softmax
and every parameter gradient, the loss of each step and every weight after step 3.

The reference is the same net in PyTorch (torch.nn modules, NCHW, float64), loaded with
the initial weights transposed from Keras layouts (conv (kh,kw,cin,cout) ->
(cout,cin,kh,kw), depthwise (kh,kw,C,1) -> (C,1,kh,kw), dense (in,out) -> (out,in)).
TF "same" padding of the stride-2 conv is an explicit ZeroPad2d (extra pixel
bottom/right). Keras semantics the reference follows explicitly:
  - loss: class-weighted cross-entropy with sum_over_batch_size reduction, i.e.
    sum_i w[y_i] * ce_i / N (PyTorch's weighted 'mean' would divide by sum_i w[y_i]);
  - BatchNorm: nn.BatchNorm2d(momentum=0.01, eps=1e-3) normalizes like Keras in training;
    its running_var uses the unbiased batch variance while Keras 3 uses the biased one,
    so the expected moving statistics are tracked here from the batch statistics
    (moving = 0.99 moving + 0.01 batch, biased variance);
  - SGD: torch.optim.SGD(momentum=0.9, nesterov=True) equals Keras' update at constant lr;
    weight decay only on the kernels (a parameter group).
Relative error of a tensor: max|engine - reference| / max(max|reference|, 1e-6); every
compared tensor must be below 1e-4. PyTorch float32 must agree with its float64 run to
1e-5 first, so the tolerance measures the engine and not the conditioning of the point.
The tool missing is a failure, never a skip.
"""
import os
import subprocess
import tempfile
import unittest

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import st

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(os.environ.get("INITLAB_TOOLS", os.path.join(ROOT, "build", "tools")),
                    "nn_crosscheck")
TOL = 1e-4
REF_TOL = 1e-5
STEPS = 3


def rel_err(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-6))


def same_pad(size, k, s):
    """TF 'same': (before, after) with the odd pixel after."""
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


class SmallNet(nn.Module):
    """The tool's net; parameter names map to Keras names in KERAS."""

    def __init__(self, hw):
        super().__init__()
        top, bottom = same_pad(hw, 3, 2)
        self.conv1_pad = nn.ZeroPad2d((top, bottom, top, bottom))
        self.conv1 = nn.Conv2d(3, 8, 3, stride=2, bias=False)
        self.conv1_bn = nn.BatchNorm2d(8, eps=1e-3, momentum=0.01)
        self.conv_pad_1 = nn.ZeroPad2d((0, 1, 0, 1))
        self.conv_dw_1 = nn.Conv2d(8, 8, 3, stride=2, groups=8, bias=False)
        self.conv_dw_1_bn = nn.BatchNorm2d(8, eps=1e-3, momentum=0.01)
        self.conv_pw_1 = nn.Conv2d(8, 8, 1, bias=True)
        self.predictions = nn.Linear(8, 5)
        self.bn_inputs = {}

    def forward(self, x):
        x = self.conv1(self.conv1_pad(x))
        self.bn_inputs["conv1_bn"] = x.detach()
        x = F.relu6(self.conv1_bn(x))
        x = self.conv_dw_1(self.conv_pad_1(x))
        self.bn_inputs["conv_dw_1_bn"] = x.detach()
        r = F.relu(self.conv_dw_1_bn(x))
        x = self.conv_pw_1(r) + r
        x = x.mean(dim=(2, 3))
        return self.predictions(x)


# Keras parameter name -> (module attribute, torch parameter, Keras -> torch transform)
def conv_t(k):
    return k.transpose(3, 2, 0, 1)


def dw_t(k):
    kh, kw, c, m = k.shape
    return k.transpose(2, 3, 0, 1).reshape(c * m, 1, kh, kw)


KERAS = {
    "conv1/kernel": ("conv1", "weight", conv_t),
    "conv1_bn/gamma": ("conv1_bn", "weight", None),
    "conv1_bn/beta": ("conv1_bn", "bias", None),
    "conv1_bn/moving_mean": ("conv1_bn", "running_mean", None),
    "conv1_bn/moving_variance": ("conv1_bn", "running_var", None),
    "conv_dw_1/depthwise_kernel": ("conv_dw_1", "weight", dw_t),
    "conv_dw_1_bn/gamma": ("conv_dw_1_bn", "weight", None),
    "conv_dw_1_bn/beta": ("conv_dw_1_bn", "bias", None),
    "conv_dw_1_bn/moving_mean": ("conv_dw_1_bn", "running_mean", None),
    "conv_dw_1_bn/moving_variance": ("conv_dw_1_bn", "running_var", None),
    "conv_pw_1/kernel": ("conv_pw_1", "weight", conv_t),
    "conv_pw_1/bias": ("conv_pw_1", "bias", None),
    "predictions/kernel": ("predictions", "weight", lambda k: k.T),
    "predictions/bias": ("predictions", "bias", None),
}
TRAINABLE = [k for k in KERAS if "moving" not in k]


def to_keras(name, t):
    """A torch tensor of parameter `name` back in the Keras layout (a numpy copy)."""
    a = t.detach().cpu().numpy().copy()
    if name.endswith("depthwise_kernel"):
        c_m, _, kh, kw = a.shape
        return a.reshape(c_m, 1, kh, kw).transpose(2, 3, 0, 1)
    if name.startswith("predictions/kernel"):
        return a.T
    if name.endswith("/kernel"):
        return a.transpose(2, 3, 1, 0)
    return a


def reference(data, meta, dtype):
    """Runs the 3 steps in PyTorch; returns a dict of the quantities the tool wrote."""
    torch.manual_seed(0)
    hw = data["x"].shape[2]
    net = SmallNet(hw).to(dtype)
    with torch.no_grad():
        for name, (mod, attr, tf) in KERAS.items():
            w = data["init/" + name]
            getattr(getattr(net, mod), attr).copy_(
                torch.from_numpy(np.ascontiguousarray(tf(w) if tf else w)).to(dtype))
    lr, mom, wd = float(meta["lr"]), float(meta["momentum"]), float(meta["weight_decay"])
    bn_mom = float(meta["bn_momentum"])
    kernels = [getattr(getattr(net, KERAS[n][0]), KERAS[n][1]) for n in TRAINABLE
               if n.endswith("kernel")]
    others = [getattr(getattr(net, KERAS[n][0]), KERAS[n][1]) for n in TRAINABLE
              if not n.endswith("kernel")]
    opt = torch.optim.SGD([{"params": kernels, "weight_decay": wd},
                           {"params": others, "weight_decay": 0.0}],
                          lr=lr, momentum=mom, nesterov=True)
    cw = torch.from_numpy(data["class_weights"]).to(dtype)
    moving = {n: data["init/" + n].astype(np.float64) for n in KERAS if "moving" in n}
    out = {"loss": []}
    for s in range(STEPS):
        x = torch.from_numpy(data["x"][s].transpose(0, 3, 1, 2).copy()).to(dtype)
        y = torch.from_numpy(data["labels"][s].astype(np.int64))
        net.train()
        logits = net(x)
        # Keras sum_over_batch_size: weighted per-sample losses summed, divided by N
        loss = (F.cross_entropy(logits, y, weight=cw, reduction="none")).sum() / x.shape[0]
        opt.zero_grad()
        loss.backward()
        out["loss"].append(loss.item())
        if s == 0:
            out["logits"] = logits.detach().numpy()
            out["probs"] = torch.softmax(logits, dim=1).detach().numpy()
            for n in TRAINABLE:
                p = getattr(getattr(net, KERAS[n][0]), KERAS[n][1])
                out["grad/" + n] = to_keras(n, p.grad)
        for layer, xin in net.bn_inputs.items():  # Keras 3 moving statistics
            xin = xin.double().numpy()
            mean = xin.mean(axis=(0, 2, 3))
            var = xin.var(axis=(0, 2, 3))  # biased, as Keras' ops.moments
            mm, mv = layer + "/moving_mean", layer + "/moving_variance"
            moving[mm] = bn_mom * moving[mm] + (1 - bn_mom) * mean
            moving[mv] = bn_mom * moving[mv] + (1 - bn_mom) * var
        opt.step()
    for n in TRAINABLE:
        out["final/" + n] = to_keras(n, getattr(getattr(net, KERAS[n][0]), KERAS[n][1]))
    for n, v in moving.items():
        out["final/" + n] = v
        # PyTorch's running_mean follows the same rule as Keras' moving_mean
        if n.endswith("moving_mean"):
            torch_mm = getattr(getattr(net, KERAS[n][0]), "running_mean").detach().numpy()
            assert rel_err(torch_mm, v) < (1e-10 if dtype == torch.float64 else 1e-5), n
    out["loss"] = np.array(out["loss"])
    return out


class EngineCrossCheck(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.path.exists(TOOL):
            raise AssertionError(f"{TOOL} is missing: build it with `make {os.path.relpath(TOOL, ROOT)}`")
        cls.tmp = tempfile.TemporaryDirectory()
        cls.runs = {}
        for threads in (1, 2):
            path = os.path.join(cls.tmp.name, f"engine_{threads}.safetensors")
            r = subprocess.run([TOOL, path, "--seed", "7", "--threads", str(threads)],
                               capture_output=True, text=True)
            if r.returncode != 0:
                raise AssertionError(f"nn_crosscheck failed ({r.returncode}): {r.stderr.strip()}")
            cls.runs[threads] = (st.load(path), st.metadata(path))
        data, meta = cls.runs[2]
        cls.ref = reference(data, meta, torch.float64)
        cls.ref32 = reference(data, meta, torch.float32)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def compare(self, got, want, what):
        e = rel_err(got, want)
        self.assertLess(e, TOL, f"{what}: relative error {e:.3g}")

    def test_reference_is_well_conditioned(self):
        for key, want in self.ref.items():
            e = rel_err(self.ref32[key], want)
            self.assertLess(e, REF_TOL, f"PyTorch float32 vs float64 on {key}: {e:.3g}")

    def test_logits_probs_and_losses(self):
        data, _ = self.runs[2]
        self.compare(data["logits"], self.ref["logits"], "logits")
        self.compare(data["probs"], self.ref["probs"], "softmax")
        self.compare(data["loss"], self.ref["loss"], "loss of each step")

    def test_every_parameter_gradient(self):
        data, _ = self.runs[2]
        for n in TRAINABLE:
            with self.subTest(param=n):
                self.compare(data["grad/" + n], self.ref["grad/" + n], "gradient of " + n)

    def test_weights_after_three_nesterov_steps(self):
        for threads, (data, _) in self.runs.items():
            for n in KERAS:
                with self.subTest(param=n, threads=threads):
                    self.compare(data["final/" + n], self.ref["final/" + n],
                                 f"{n} after {STEPS} steps ({threads} threads)")

    def test_the_steps_changed_every_trainable_weight(self):
        data, _ = self.runs[2]
        for n in TRAINABLE:
            self.assertGreater(np.max(np.abs(data["final/" + n] - data["init/" + n])), 1e-4, n)


if __name__ == "__main__":
    unittest.main()
