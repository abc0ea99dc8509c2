"""test_models.py — initlab's MobileNet and ResNet-50 against independent PyTorch definitions.

Weights come from `initlab summary --save-weights` (Keras names and layouts); the BN
statistics, gammas, betas and biases are then randomized so that both BN modes and every
parameter kind matter. build/tools/model_forward runs the C net on a fixed batch; the
PyTorch models of bench/keras_models.py (float64) run the same batch. Compared, as
max|c - ref| / max|ref| per tensor, below 1e-3: logits and loss in the train BN mode
(batch statistics) and the inference mode (moving statistics), the gradients of the first
and last kernels in both modes, and the moving statistics after one training forward
against Keras' update rule. Layer output shapes of `summary --json` are compared with the
PyTorch graph's at 224 and 97 px.

Kinks: ReLU, ReLU6 and max pooling are not differentiable everywhere. Among the ~10^6
activations of a batch a few land within rounding of a kink, where float32 and float64 (or
two float32 orders of summation) take different sides; with train-mode BN, which spreads
and amplifies gradients at initialization, one such element late in the net moves the
first kernel's gradient by up to 10% although both answers are correct one-sided
gradients. model_forward therefore also writes every ReLU/ReLU6 and max-pool output, and
the reference takes the C side of each kink and each max (keras_models.KerasNet.forward,
`decided`) while computing every value itself. The number of kinks where the sides differ
is checked to be tiny, and PyTorch float32 is checked against float64 (REF_TOL) so a
failure points at the engine, not at the conditioning of the test point.
"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import torch

import st

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import keras_models as km  # noqa: E402

# INITLAB_BIN and INITLAB_TOOLS point the test at other builds of the binary and the tool.
INITLAB = os.environ.get("INITLAB_BIN", os.path.join(ROOT, "initlab"))
TOOL = os.path.join(os.environ.get("INITLAB_TOOLS", os.path.join(ROOT, "build", "tools")),
                    "model_forward")
TOL = 1e-3
REF_TOL = 3e-4
# keras.applications MobileNet() and ResNet50() with weights=None: (total, non-trainable).
KERAS_TOTALS = {"mobilenet": (4253864, 21888), "resnet50": (25636712, 53120)}


def rel_err(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    scale = np.max(np.abs(b))
    return float(np.max(np.abs(a - b)) / (scale if scale > 0 else 1.0))


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()}")
    return r.stdout


class ModelsCrossCheck(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for path in (INITLAB, TOOL):
            if not os.access(path, os.X_OK):
                raise AssertionError(f"{path} missing: run `make initlab build/tools/model_forward`")
        torch.set_num_threads(2)

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()

    def tearDown(self):
        self.tmp.cleanup()

    def path(self, name):
        return os.path.join(self.tmp.name, name)

    def cross_check(self, model, head, extra, seed):
        size, classes, n = 64, 10, 8
        wpath = self.path("w.safetensors")
        run([INITLAB, "summary", "--model", model, "--size", str(size), "--classes",
             str(classes), "--head", head, "--init", "he_uniform", "--seed", str(seed),
             "--save-weights", wpath] + extra)
        meta = st.metadata(wpath)
        self.assertEqual(meta["model"], model)
        self.assertEqual(meta["layout"], "keras")
        self.assertEqual(meta["head"], head)
        self.assertEqual(meta["seed"], str(seed))
        weights = st.load(wpath)

        rng = np.random.default_rng(seed)
        for k, v in weights.items():
            kind = k.rsplit("/", 1)[1]
            if kind == "moving_mean" or kind == "beta" or kind == "bias":
                weights[k] = rng.normal(0, 0.2, v.shape).astype(np.float32)
            elif kind == "moving_variance" or kind == "gamma":
                weights[k] = rng.uniform(0.5, 1.5, v.shape).astype(np.float32)
        wpath2 = self.path("w2.safetensors")
        st.save(wpath2, weights, meta)
        x = rng.normal(0, 1, (n, size, size, 3)).astype(np.float32)
        labels = rng.integers(0, classes, n)
        ipath, opath = self.path("in.safetensors"), self.path("out.safetensors")
        st.save(ipath, {"x": x, "labels": labels.astype(np.float32)})
        run([TOOL, wpath2, ipath, opath])
        out = st.load(opath)
        ometa = st.metadata(opath)

        alpha = float(meta.get("alpha", 1))
        net = km.build(model, classes=classes, head=head, alpha=alpha).double()
        net32 = km.build(model, classes=classes, head=head, alpha=alpha)
        self.assertEqual(km.keras_names(net), list(weights))  # same names, same order
        yt = torch.from_numpy(labels).long()

        def nchw(a):
            return torch.from_numpy(a).permute(0, 3, 1, 2).contiguous()

        def reference(m, bn_train, dtype, decided, rec=None):
            xt = nchw(x).to(dtype)
            km.load_keras_weights(m, weights)
            km.set_mode(m, bn_train)
            m.zero_grad()
            logits = m(xt, record=rec, decided=decided)
            loss = torch.nn.functional.cross_entropy(logits, yt)
            loss.backward()
            return logits, loss, xt

        for mode, bn_train in (("train", True), ("inference", False)):
            decided = {}
            for name, layer in net.layers.items():
                key = f"act_{mode}/{name}"
                if layer.kind == "max_pooling2d":
                    decided[name] = (nchw(out[key + "/input"]).double(), nchw(out[key]).double())
                elif key in out:
                    decided[name] = nchw(out[key]).double()
            rec = {}
            logits, loss, xt = reference(net, bn_train, torch.float64, decided, rec)
            logits32, _, _ = reference(net32, bn_train, torch.float32, decided)
            with self.subTest(model=model, head=head, mode=mode):
                # C took the same side as the exact computation at all but a few kinks.
                flips = total = 0
                for name, d in decided.items():
                    if isinstance(d, tuple):
                        continue
                    pre = rec[net.layers[name].inputs[0]].detach()
                    d = d.reshape(pre.shape)
                    ours = (pre > 0) & ((pre < 6) if net.layers[name].cfg["act"] == "relu6" else True)
                    theirs = (d > 0) & ((d < 6) if net.layers[name].cfg["act"] == "relu6" else True)
                    flips += int((ours != theirs).sum())
                    total += d.numel()
                self.assertLessEqual(flips, max(10, total // 100000), f"{flips} kink sides differ")
                for name in (ometa["first_kernel"], ometa["last_kernel"]):
                    e = rel_err(km.keras_grad(net32, name, weights[name].shape),
                                km.keras_grad(net, name, weights[name].shape))
                    self.assertLess(e, REF_TOL, f"ill-conditioned reference: PyTorch float32 "
                                    f"differs from float64 on {name} ({mode})")
                self.assertLess(rel_err(logits32.detach().numpy(), logits.detach().numpy()),
                                REF_TOL, "ill-conditioned reference logits")
                e = rel_err(out[f"logits_{mode}"], logits.detach().numpy())
                self.assertLess(e, TOL, f"logits ({mode})")
                e = rel_err(out[f"loss_{mode}"], [loss.item()])
                self.assertLess(e, TOL, f"loss ({mode})")
                errs = []
                for which in ("first_kernel", "last_kernel"):
                    name = ometa[which]
                    ref = km.keras_grad(net, name, weights[name].shape)
                    got = out[f"grad_{mode}/{name}"]
                    self.assertEqual(got.shape, ref.shape)
                    errs.append(rel_err(got, ref))
                    self.assertLess(errs[-1], TOL, f"gradient of {name} ({mode})")
                print(f"\n    {model} {head} head, {mode}: relative error logits "
                      f"{rel_err(out[f'logits_{mode}'], logits.detach().numpy()):.1e}, loss "
                      f"{rel_err(out[f'loss_{mode}'], [loss.item()]):.1e}, first kernel "
                      f"{errs[0]:.1e}, last kernel {errs[1]:.1e}; kink sides differing "
                      f"{flips} of {total}", end=" ", flush=True)
            if bn_train:
                train_rec = rec
        # Moving statistics after one NET_TRAIN forward, against Keras' rule.
        checked = 0
        for name, layer in net.layers.items():
            if layer.kind != "batch_normalization":
                continue
            bn_in = train_rec[layer.inputs[0]] if layer.inputs[0] != "input" else xt
            mm, mv = km.keras_bn_update(torch.from_numpy(weights[f"{name}/moving_mean"]).double(),
                                        torch.from_numpy(weights[f"{name}/moving_variance"]).double(),
                                        bn_in.detach())
            self.assertLess(rel_err(out[f"moving/{name}/moving_mean"], mm.numpy()), TOL, name)
            self.assertLess(rel_err(out[f"moving/{name}/moving_variance"], mv.numpy()), TOL, name)
            checked += 1
        self.assertGreater(checked, 20)

    def test_mobilenet_alpha025_64px_keras_head(self):
        self.cross_check("mobilenet", "keras", ["--alpha", "0.25"], 11)

    def test_mobilenet_alpha025_64px_paper_head(self):
        self.cross_check("mobilenet", "paper", ["--alpha", "0.25"], 12)

    def test_resnet50_64px_keras_head(self):
        self.cross_check("resnet50", "keras", [], 13)

    def test_resnet50_64px_paper_head(self):
        self.cross_check("resnet50", "paper", [], 14)

    def test_layer_shapes_match_pytorch(self):
        for model in ("mobilenet", "resnet50", "resnet18", "resnet34"):
            for size in (224, 97):
                for head in ("keras", "paper"):
                    with self.subTest(model=model, size=size, head=head):
                        summary = json.loads(run([INITLAB, "summary", "--model", model, "--size",
                                                  str(size), "--head", head, "--json"]))
                        net = km.build(model, head=head).eval()
                        rec = {}
                        with torch.no_grad():
                            net(torch.zeros(1, 3, size, size), record=rec)
                        layers = summary["layers"]
                        self.assertEqual(layers[0]["type"], "input")
                        self.assertEqual([l["name"] for l in layers[1:]], list(rec))
                        for l in layers[1:]:
                            self.assertEqual(tuple(l["output_shape"]), km.keras_shape(rec[l["name"]]),
                                             l["name"])
                        tr = sum(p.numel() for p in net.parameters())
                        nt = sum(b.numel() for k, b in net.named_buffers() if "running" in k)
                        self.assertEqual(summary["trainable_params"], tr)
                        self.assertEqual(summary["non_trainable_params"], nt)
                        self.assertEqual(summary["n_layers"], len(net.layers) + 1)
                        if size == 224 and head == "keras" and model in KERAS_TOTALS:
                            self.assertEqual((summary["total_params"],
                                              summary["non_trainable_params"]),
                                             KERAS_TOTALS[model])


if __name__ == "__main__":
    unittest.main()
