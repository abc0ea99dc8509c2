"""test_datasets.py — datasets against a real daemon: names that are not UTF-8 keep their
place and their bytes (classes, counts, CSV, skipped files), a dataset is sealed in its
folder (links out of it, to /etc/passwd and to / are skipped and reported, never read),
a SIGTERM stops a long scan within a second, and the lesser checks of a registration:
the split, relative paths, huge, damaged and empty inputs."""
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

from daemon import BINARY, Daemon

POOL_FILES = []


def setUpModule():
    global ROOT, POOL, OUTSIDE
    ROOT = tempfile.mkdtemp(prefix="initlab-api-datasets-")
    # the JPEGs every dataset below is made of
    POOL = os.path.join(ROOT, ".pool")
    out = subprocess.run([BINARY, "demo-data", POOL, "--classes", "1", "--per-class", "12",
                          "--size", "32"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    # outside the data root: nothing here may be read by a scan
    OUTSIDE = tempfile.mkdtemp(prefix="initlab-api-outside-")
    os.makedirs(os.path.join(OUTSIDE, "cls"))
    for i in range(3):
        shutil.copy(pool(i), os.path.join(OUTSIDE, "cls", f"{i}.jpg"))
    shutil.copy(pool(0), os.path.join(OUTSIDE, "secret.jpg"))


def tearDownModule():
    shutil.rmtree(ROOT, ignore_errors=True)
    shutil.rmtree(OUTSIDE, ignore_errors=True)


def pool(i):
    """The i-th of the 12 pool JPEGs (modulo 12)."""
    global POOL_FILES
    if not POOL_FILES:
        folder = os.path.join(POOL, "amaranth")
        POOL_FILES = [os.path.join(folder, f) for f in sorted(os.listdir(folder))]
    return POOL_FILES[i % len(POOL_FILES)]


def put(dataset, rel, src=None, data=None):
    """Writes dataset/rel (rel may be bytes) from a pool image or from data."""
    path = os.path.join(os.fsencode(os.path.join(ROOT, dataset)), os.fsencode(rel))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if data is None:
        with open(src, "rb") as f:
            data = f.read()
    with open(path, "wb") as f:
        f.write(data)


def link(dataset, rel, target):
    path = os.path.join(ROOT, dataset, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    os.symlink(target, path)


def wait_for(predicate, timeout=120, interval=0.1, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def register(d, name, path, **extra):
    r = d.request("POST", "/api/v1/datasets", {"name": name, "path": path, **extra})
    assert r.status == 202, r
    wait_for(lambda: d.get(f"/api/v1/datasets/{name}").json()["status"] != "scanning", 60,
             what=f"the scan of {name}")
    return d.get(f"/api/v1/datasets/{name}").json()


class Datasets(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = Daemon(args=["--data-root", ROOT]).start()

    @classmethod
    def tearDownClass(cls):
        cls.d.close()

    def test_names_that_are_not_utf8_keep_their_place_and_bytes(self):
        # class k has k + 3 images, so its counts name it wherever it is listed
        for i in range(2):
            put("names", f"a/{i}.jpg", pool(i))
        put("names", b"a/ok\xfe.jpg", pool(2))               # a file name in Latin-1
        for i in range(4):
            put("names", b"caf\xe9/" + str(i).encode() + b".jpg", pool(i))
        for i in range(5):
            put("names", f"z/{i}.jpg", pool(i))
        put("names", b"z/bad\xff.jpg", data=b"")            # skipped, name not UTF-8
        ds = register(self.d, "names", os.path.join(ROOT, "names"))
        self.assertEqual(ds["status"], "ready", ds)
        self.assertEqual(ds["classes"], ["a", "caf\\xE9", "z"])
        self.assertEqual(ds["n_files"], 12)
        counts = [(c["label"], c["class"], c["train"] + c["val"] + c["test"])
                  for c in ds["class_counts"]]
        self.assertEqual(counts, [(0, "a", 3), (1, "caf\\xE9", 4), (2, "z", 5)])
        self.assertEqual([(s["path"], s["reason"]) for s in ds["skipped"]],
                         [("z/bad\\xFF.jpg", "zero-byte file")])
        csv = self.d.get("/api/v1/datasets/names?format=csv").body.decode("utf-8")
        rows = [line.split(",")[:2] for line in csv.splitlines()[1:]]
        self.assertEqual(rows, [["0", "a"], ["1", "caf\\xE9"], ["2", "z"]])

    def test_links_out_of_the_dataset_folder_are_skipped_and_reported(self):
        for i in range(3):
            put("sealed", f"in/{i}.jpg", pool(i))
        link("sealed", "out", os.path.join(OUTSIDE, "cls"))     # a class folder outside
        link("sealed", "root", "/")                              # the whole file system
        link("sealed", "in/passwd.jpg", "/etc/passwd")
        link("sealed", "in/secret.jpg", os.path.relpath(os.path.join(OUTSIDE, "secret.jpg"),
                                                        os.path.join(ROOT, "sealed", "in")))
        link("sealed", "in/sibling.jpg", "../../names/a/0.jpg")  # under the data root, but
        put("names", "a/0.jpg", pool(0))                         # outside this dataset
        link("sealed", "in/everything", "/")
        link("sealed", "in/alias.jpg", "0.jpg")                  # inside: followed
        started = time.monotonic()
        ds = register(self.d, "sealed", os.path.join(ROOT, "sealed"))
        self.assertLess(time.monotonic() - started, 30, "the scan walked out of the folder")
        self.assertEqual(ds["status"], "ready", ds)
        self.assertEqual(ds["classes"], ["in"])
        self.assertEqual(ds["n_files"], 4)
        reasons = {s["path"]: s["reason"] for s in ds["skipped"]}
        out = "symbolic link out of the dataset folder"
        self.assertEqual(reasons, {"out": out, "root": out, "in/passwd.jpg": out,
                                   "in/secret.jpg": out, "in/sibling.jpg": out,
                                   "in/everything": out})

    def test_split_and_relative_paths(self):
        put("rel", "a/0.jpg", pool(0))
        put("rel", "a/1.jpg", pool(1))
        post = lambda body: self.d.request("POST", "/api/v1/datasets", body)
        for split in ("0.6,0.2,0.1,0.1", "0.6,0.2", "0.6,0.2,0.2 junk"):
            r = post({"name": "s4", "path": "rel", "split": split})
            self.assertEqual((r.status, r.json().get("field")), (400, "split"), (split, r))
        r = post({"name": "up", "path": "../" + os.path.basename(OUTSIDE)})
        self.assertEqual((r.status, r.json().get("field")), (400, "path"), r)
        # relative to the data root, whatever the daemon's working directory
        ds = register(self.d, "rel", "rel", split="0.5, 0.25, 0.25")
        self.assertEqual(ds["path"], os.path.join(os.path.realpath(ROOT), "rel"))
        self.assertEqual(ds["split"], {"train": 0.5, "val": 0.25, "test": 0.25})
        self.assertEqual(ds["status"], "ready", ds)

    def test_huge_damaged_and_empty_inputs_are_skipped_with_a_reason(self):
        for i in range(3):
            put("damaged", f"k/{i}.jpg", pool(i))
        with open(pool(3), "rb") as f:
            jpeg = bytearray(f.read())
        sof = jpeg.index(b"\xff\xc0")
        huge = bytearray(jpeg)
        huge[sof + 5:sof + 9] = b"\xff\xdc\xff\xdc"          # 65500 x 65500
        put("damaged", "k/huge.jpg", data=bytes(huge))
        sos = jpeg.index(b"\xff\xda")
        start = sos + 2 + (jpeg[sos + 2] << 8 | jpeg[sos + 3])
        bad = bytearray(jpeg)
        bad[start:start + 6] = b"\xff\x00\xff\x00\xff\x00"  # an all-ones Huffman code
        put("damaged", "k/bad_code.jpg", data=bytes(bad))
        put("damaged", "k/extra.jpg", data=bytes(jpeg[:-2]) + b"\x5a" * 40 + b"\xff\xd9")
        os.makedirs(os.path.join(ROOT, "damaged", "empty"))
        put("damaged", "nothing/zero.jpg", data=b"")
        ds = register(self.d, "damaged", os.path.join(ROOT, "damaged"))
        self.assertEqual(ds["status"], "ready", ds)
        self.assertEqual(ds["classes"], ["k"])
        self.assertEqual(ds["n_files"], 3)
        reasons = {s["path"]: s["reason"] for s in ds["skipped"]}
        self.assertTrue(reasons.pop("k/huge.jpg").startswith("too large: 65500x65500"))
        self.assertTrue(reasons.pop("k/bad_code.jpg").startswith(
            "corrupt: Corrupt JPEG data: bad Huffman code"))
        self.assertIn("extraneous bytes", reasons.pop("k/extra.jpg"))
        self.assertEqual(reasons.pop("nothing/zero.jpg"), "zero-byte file")
        self.assertEqual(reasons, {c: "no usable image in this class folder: not a class"
                                   for c in ("empty", "nothing")})


class ScanStop(unittest.TestCase):
    def test_sigterm_stops_a_long_scan_within_a_second(self):
        # 200,000 hard links to a few small JPEGs: a scan of many seconds, made in one
        long = os.path.join(ROOT, "long")
        for c in range(4):
            os.makedirs(os.path.join(long, f"c{c}"))
            for i in range(50000):
                os.link(pool(i), os.path.join(long, f"c{c}", f"{i:05d}.jpg"))
        state = tempfile.mkdtemp(prefix="initlab-api-state-")
        try:
            d = Daemon(args=["--data-root", ROOT], state_dir=state).start()
            r = d.request("POST", "/api/v1/datasets", {"name": "long", "path": long})
            self.assertEqual(r.status, 202, r)
            time.sleep(1.0)  # well into the files
            self.assertEqual(d.get("/api/v1/datasets/long").json()["status"], "scanning",
                             "the scan ended before the signal: nothing tested")
            started = time.monotonic()
            status = d.stop(signal.SIGTERM, timeout=120)
            elapsed = time.monotonic() - started
            log = d.log()
            d.close()
            self.assertEqual(status, 0, log)
            self.assertIn("scan stopped for the shutdown", log)
            self.assertLess(elapsed, 1.0, "SIGTERM took {:.2f} s to stop the daemon".format(
                elapsed))
            # the next start scans the dataset again, and stops as quickly
            d = Daemon(args=["--data-root", ROOT], state_dir=state).start()
            self.assertIn("scanning again (interrupted)", d.log())
            self.assertEqual(d.get("/api/v1/datasets/long").json()["status"], "scanning")
            time.sleep(1.0)
            started = time.monotonic()
            self.assertEqual(d.stop(signal.SIGTERM, timeout=120), 0)
            self.assertLess(time.monotonic() - started, 1.0)
            d.close()
        finally:
            shutil.rmtree(state, ignore_errors=True)
            shutil.rmtree(long, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
