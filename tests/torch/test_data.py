"""test_data.py — the data module against independent references, and the datasets end to end.

- Bilinear resize (build/tools/data_image resize) against PyTorch's
  F.interpolate(mode="bilinear", align_corners=False, antialias=False), which samples with
  half-pixel centres exactly as TensorFlow's tf.image.resize(method="bilinear") that Keras'
  image_dataset_from_directory uses: every output within 0.5 (+ float slack) of PyTorch's
  float result, i.e. a correct rounding of it up to float32 rounding of the weights.
- JPEG decode-and-resize (data_image decode) against Pillow (the same libjpeg-turbo IDCT and
  upsampling): at full scale, and with DCT scaling, where Pillow's draft() picks the same
  1/4 scale for 1600x1200 -> 224; then PyTorch's bilinear resize.
- Fashion-MNIST from Debian's dataset-fashion-mnist: import-idx of the train and t10k
  files into one folder tree, then `initlab scan --json`: 10 classes of 7,000 images, split
  4,200 / 1,400 / 1,400, folders in label order, and pixels that match the IDX bytes.
- demo-data: the same seed writes the same bytes; another seed other bytes.
"""
import gzip
import json
import os
import shutil
import subprocess
import tempfile
import unittest

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INITLAB = os.environ.get("INITLAB_BIN", os.path.join(ROOT, "initlab"))
TOOL = os.path.join(os.environ.get("INITLAB_TOOLS", os.path.join(ROOT, "build", "tools")),
                    "data_image")
FASHION = "/usr/share/datasets/fashion-mnist"


def torch_resize(img, dh, dw):
    """(h, w, 3) uint8 -> (dh, dw, 3), PyTorch half-pixel bilinear in float32 (as
    TensorFlow computes it: float32 coordinates and weights)."""
    x = torch.from_numpy(img.astype(np.float32)).permute(2, 0, 1)[None]
    y = F.interpolate(x, size=(dh, dw), mode="bilinear", align_corners=False, antialias=False)
    return y[0].permute(1, 2, 0).numpy().astype(np.float64)


class DataTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="initlab-test-data-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.tmp, name)

    def c_resize(self, img, dh, dw):
        h, w, _ = img.shape
        img.astype(np.uint8).tofile(self.path("in.raw"))
        subprocess.run([TOOL, "resize", self.path("in.raw"), str(w), str(h), str(dw), str(dh),
                        self.path("out.raw")], check=True)
        return np.fromfile(self.path("out.raw"), dtype=np.uint8).reshape(dh, dw, 3)

    def c_decode(self, jpeg_path, size, mode="squash"):
        subprocess.run([TOOL, "decode", jpeg_path, str(size), mode, self.path("dec.raw")],
                       check=True)
        return np.fromfile(self.path("dec.raw"), dtype=np.uint8).reshape(size, size, 3)

    def test_bilinear_matches_torch(self):
        rng = np.random.default_rng(0)
        shapes = [((37, 23), (19, 29)), ((8, 8), (224, 224)), ((300, 400), (224, 224)),
                  ((97, 131), (64, 64)), ((5, 3), (7, 11)), ((28, 28), (28, 28)),
                  ((1, 9), (4, 2))]
        for (h, w), (dh, dw) in shapes:
            img = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
            ours = self.c_resize(img, dh, dw).astype(np.float64)
            ref = torch_resize(img, dh, dw)
            # rounding to uint8 costs 0.5; PyTorch weighs (1 - t)·a + t·b where TensorFlow
            # (and initlab) compute a + (b - a)·t, a float32 difference of a few 1e-3 at 255
            err = np.max(np.abs(ours - ref))
            self.assertLessEqual(err, 0.5 + 1e-2, f"{h}x{w} -> {dh}x{dw}: max error {err}")
            self.assertLess(np.mean(np.abs(ours - ref) > 0.5 + 1e-4), 1e-3)

    def test_decode_matches_pillow_full_scale(self):
        rng = np.random.default_rng(1)
        h, w = 48, 64
        yy, xx = np.mgrid[0:h, 0:w]
        img = np.stack([xx * 4, yy * 5, 128 + 60 * np.sin(xx * 0.3) * np.cos(yy * 0.2)], -1)
        img = np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(self.path("a.jpg"), quality=90)
        ref_full = np.asarray(Image.open(self.path("a.jpg")).convert("RGB"))
        # 7/8 of 48 is 42 < 56: no DCT scaling, a full decode then bilinear 64x48 -> 56x56
        ours = self.c_decode(self.path("a.jpg"), 56).astype(np.float64)
        ref = torch_resize(ref_full, 56, 56)
        self.assertLessEqual(np.max(np.abs(ours - ref)), 0.5 + 1e-3)

    def test_decode_with_dct_scaling_matches_pillow_draft(self):
        rng = np.random.default_rng(2)
        h, w = 1200, 1600
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
        img = np.stack([40 + 150 * xx / w, 30 + 180 * yy / h,
                        128 + 70 * np.sin(xx / 37.0) * np.cos(yy / 23.0)], -1)
        img = np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(self.path("cam.jpg"), quality=90)
        im = Image.open(self.path("cam.jpg"))
        im.draft("RGB", (224, 224))  # libjpeg scale 1/4 -> 400x300
        self.assertEqual(im.size, (400, 300))
        ref_small = np.asarray(im.convert("RGB"))
        for mode in ("squash", "crop"):
            ours = self.c_decode(self.path("cam.jpg"), 224, mode).astype(np.float64)
            src = ref_small if mode == "squash" else ref_small[:, 50:350]
            ref = torch_resize(np.ascontiguousarray(src), 224, 224)
            err = np.max(np.abs(ours - ref))
            self.assertLessEqual(err, 0.5 + 1e-3, f"{mode}: max error {err}")

    def test_fashion_mnist_imports_and_scans(self):
        pairs = []
        for part in ("train", "t10k"):
            pairs += [os.path.join(FASHION, f"{part}-images-idx3-ubyte.gz"),
                      os.path.join(FASHION, f"{part}-labels-idx1-ubyte.gz")]
        for p in pairs:
            self.assertTrue(os.path.exists(p), f"{p} missing: install dataset-fashion-mnist")
        out = self.path("fashion")
        subprocess.run([INITLAB, "import-idx", *pairs, out, "--names", "fashion-mnist"],
                       check=True, capture_output=True)
        scan = subprocess.run([INITLAB, "scan", out, "--json"], check=True,
                              capture_output=True, text=True)
        j = json.loads(scan.stdout)
        self.assertEqual(j["images"], 70000)
        self.assertEqual(j["skipped"], [])
        names = ["tshirt_top", "trouser", "pullover", "dress", "coat", "sandal", "shirt",
                 "sneaker", "bag", "ankle_boot"]
        self.assertEqual([c["name"] for c in j["classes"]],
                         [f"{k}_{n}" for k, n in enumerate(names)])
        for c in j["classes"]:
            self.assertEqual((c["count"], c["train"], c["val"], c["test"]),
                             (7000, 4200, 1400, 1400), c["name"])
        self.assertEqual(j["split"], {"train": 42000, "val": 14000, "test": 14000})

        # pixels: the JPEG of t10k image 0 against the IDX bytes
        with gzip.open(pairs[2], "rb") as f:
            raw = np.frombuffer(f.read(), dtype=np.uint8, offset=16).reshape(-1, 28, 28)
        with gzip.open(pairs[3], "rb") as f:
            labels = np.frombuffer(f.read(), dtype=np.uint8, offset=8)
        folder = f"{labels[0]}_{names[labels[0]]}"
        jpg = os.path.join(out, folder, "t10k_0000.jpg")
        dec = np.asarray(Image.open(jpg)).astype(np.float64)
        self.assertEqual(dec.shape, (28, 28))
        self.assertLess(np.mean(np.abs(dec - raw[0])), 3.0)
        # and through initlab's own decoder, greyscale to RGB at 28 px (no resizing)
        ours = self.c_decode(jpg, 28).astype(np.float64)
        self.assertTrue(np.array_equal(ours[..., 0], ours[..., 1]))
        self.assertLessEqual(np.max(np.abs(ours[..., 0] - dec)), 1.0)

        # importing the same files again would replace files: refused
        again = subprocess.run([INITLAB, "import-idx", pairs[2], pairs[3], out, "--names",
                                "fashion-mnist"],
                               capture_output=True, text=True)
        self.assertEqual(again.returncode, 1)
        self.assertIn("already", again.stderr)

    def test_demo_data_is_deterministic(self):
        def write(name, seed):
            d = self.path(name)
            subprocess.run([INITLAB, "demo-data", d, "--classes", "3", "--per-class", "4",
                            "--size", "48", "--seed", str(seed)], check=True,
                           capture_output=True)
            files = {}
            for root, _, names in os.walk(d):
                for n in names:
                    with open(os.path.join(root, n), "rb") as f:
                        files[os.path.relpath(os.path.join(root, n), d)] = f.read()
            return files
        a, b, c = write("a", 5), write("b", 5), write("c", 6)
        self.assertEqual(len(a), 12)
        self.assertEqual(a, b)
        self.assertEqual(a.keys(), c.keys())
        self.assertTrue(all(a[k] != c[k] for k in a))
        scan = json.loads(subprocess.run([INITLAB, "scan", self.path("a"), "--json"],
                                         check=True, capture_output=True, text=True).stdout)
        self.assertEqual([x["count"] for x in scan["classes"]], [4, 4, 4])


if __name__ == "__main__":
    unittest.main()
