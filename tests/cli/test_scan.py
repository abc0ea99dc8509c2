"""test_scan.py — `initlab scan`: names that are not UTF-8 shown in their lossless text form
(JSON and text), links out of the folder reported and never followed, --quick against the
default full check, and a folder without a usable image refused with the reason."""
import json
import os
import shutil
import tempfile
import unittest

from util import run_initlab


class Scan(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="initlab-cli-scan-")
        pool = os.path.join(cls.tmp, "pool")
        r = run_initlab("demo-data", pool, "--classes", "1", "--per-class", "6", "--size", "24")
        assert r.returncode == 0, r.stderr
        folder = os.path.join(pool, "amaranth")
        cls.jpegs = [os.path.join(folder, f) for f in sorted(os.listdir(folder))]

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def dataset(self, name, files):
        """Makes tmp/name from {relative path (str or bytes): pool index, bytes, or
        ("link", target)} and returns its path."""
        root = os.path.join(self.tmp, name)
        for rel, what in files.items():
            path = os.path.join(os.fsencode(root), os.fsencode(rel))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            if isinstance(what, tuple):
                os.symlink(what[1], path)
            elif isinstance(what, int):
                shutil.copy(self.jpegs[what], path)
            else:
                with open(path, "wb") as f:
                    f.write(what)
        return root

    def test_names_that_are_not_utf8_are_escaped_not_lost(self):
        root = self.dataset("names", {"a/0.jpg": 0, b"caf\xe9/0.jpg": 1, b"caf\xe9/1.jpg": 2,
                                      b"caf\xe9/bad\xff.jpg": b"", "z\\b/0.jpg": 3})
        r = run_initlab("scan", root, "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        j = json.loads(r.stdout)
        self.assertEqual([(c["index"], c["name"], c["count"]) for c in j["classes"]],
                         [(0, "a", 1), (1, "caf\\xE9", 2), (2, "z\\\\b", 1)])
        self.assertEqual(j["skipped"], [{"path": "caf\\xE9/bad\\xFF.jpg",
                                         "reason": "zero-byte file"}])
        r = run_initlab("scan", root)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("caf\\xE9", r.stdout)
        self.assertIn("caf\\xE9/bad\\xFF.jpg: zero-byte file", r.stdout)

    def test_links_out_of_the_folder_are_reported_not_followed(self):
        root = self.dataset("sealed", {"in/0.jpg": 0, "in/1.jpg": ("link", "0.jpg"),
                                       "in/passwd.jpg": ("link", "/etc/passwd"),
                                       "in/up.jpg": ("link", "../../pool/amaranth"),
                                       "root": ("link", "/")})
        j = json.loads(run_initlab("scan", root, "--json").stdout)
        self.assertEqual([c["name"] for c in j["classes"]], ["in"])
        self.assertEqual(j["images"], 2)
        out = "symbolic link out of the dataset folder"
        self.assertEqual({s["path"]: s["reason"] for s in j["skipped"]},
                         {"in/passwd.jpg": out, "in/up.jpg": out, "root": out})

    def test_quick_misses_what_the_full_check_finds(self):
        with open(self.jpegs[4], "rb") as f:
            jpeg = f.read()
        root = self.dataset("damaged", {"k/0.jpg": 0, "k/1.jpg": 1,
                                        "k/extra.jpg": jpeg[:-2] + b"\x5a" * 40 + b"\xff\xd9"})
        full = json.loads(run_initlab("scan", root, "--json").stdout)
        quick = json.loads(run_initlab("scan", root, "--json", "--quick").stdout)
        self.assertEqual((full["images"], quick["images"]), (2, 3))
        self.assertIn("extraneous bytes", full["skipped"][0]["reason"])

    def test_a_folder_without_a_usable_image_is_refused(self):
        root = self.dataset("none", {"a/zero.jpg": b"", "b/notes.txt": b"notes"})
        r = run_initlab("scan", root)
        self.assertEqual(r.returncode, 1)
        self.assertIn("no class folder", r.stderr)
        self.assertIn("a/zero.jpg: zero-byte file", r.stderr)


if __name__ == "__main__":
    unittest.main()
