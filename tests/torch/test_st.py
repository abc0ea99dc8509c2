"""test_st.py — the numpy safetensors helper against hand-built bytes and itself."""
import json
import os
import struct
import tempfile
import unittest

import numpy as np

import st


class StTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.path = os.path.join(self.dir.name, "t.safetensors")

    def tearDown(self):
        self.dir.cleanup()

    def test_round_trip(self):
        rng = np.random.default_rng(0)
        tensors = {"conv1/kernel": rng.standard_normal((3, 3, 3, 8)).astype(np.float32),
                   "scalar": np.array(2.5, dtype=np.float32),
                   "empty": np.zeros((0, 4), dtype=np.float32),
                   "t": rng.standard_normal((4, 5)).astype(np.float32).T}
        st.save(self.path, tensors, {"model": "mobilenet", "seed": 3})
        back = st.load(self.path)
        self.assertEqual(list(back), list(tensors))
        for k, v in tensors.items():
            self.assertEqual(back[k].shape, v.shape)
            np.testing.assert_array_equal(back[k], v)
        self.assertEqual(st.metadata(self.path), {"model": "mobilenet", "seed": "3"})
        self.assertEqual(os.listdir(self.dir.name), ["t.safetensors"])

    def test_reads_hand_built_bytes(self):
        header = json.dumps({"b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
                             "a": {"dtype": "F32", "shape": [], "data_offsets": [0, 4]}}).encode()
        data = struct.pack("<3f", 1.5, -2.25, 7.0)
        with open(self.path, "wb") as f:
            f.write(struct.pack("<Q", len(header)) + header + data)
        back = st.load(self.path)
        self.assertEqual(float(back["a"]), 1.5)
        np.testing.assert_array_equal(back["b"], np.array([-2.25, 7.0], dtype=np.float32))
        self.assertEqual(st.metadata(self.path), {})

    def test_refuses_truncated(self):
        st.save(self.path, {"x": np.ones((4, 4), dtype=np.float32)})
        with open(self.path, "rb") as f:
            raw = f.read()
        with open(self.path, "wb") as f:
            f.write(raw[:-5])
        with self.assertRaises(ValueError):
            st.load(self.path)
        with open(self.path, "wb") as f:
            f.write(struct.pack("<Q", 10 ** 6) + b"{}")
        with self.assertRaises(ValueError):
            st.load(self.path)


if __name__ == "__main__":
    unittest.main()
