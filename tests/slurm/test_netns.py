"""test_netns.py — a pull worker on a second "host": its own network namespace, reached over a
veth pair this test creates, finishes a job against a daemon that listens on the veth
address over TLS (a certificate for that address, made here with openssl) with a worker
token. The worker verifies the daemon's certificate (--ca-file); without it, it refuses to
talk; with the admin routes, the worker token gets 403.

Creating network namespaces needs root. Without it the test says so and fails in CI
(CI=true); elsewhere it is skipped, which tests/run.py also counts as a failure."""
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "api"))
from daemon import Daemon, ROOT, free_port  # noqa: E402

BIN = os.path.abspath(os.environ.get("INITLAB_BIN", os.path.join(ROOT, "initlab")))
WORKER_BIN = os.path.abspath(os.environ.get("INITLAB_WORKER_BIN",
                                            os.path.join(ROOT, "initlab")))
ADMIN = "admin-token-0123456789abcdef"
WORKER = "worker-token-0123456789abcdef"
# A link-local /30 on the test's own veth pair: nothing outside this machine.
HOST_ADDR, NS_ADDR = "169.254.47.1", "169.254.47.2"


def sh(*args, check=True):
    return subprocess.run(list(args), check=check, capture_output=True, text=True)


class PullWorkerInNamespace(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.ns = None
        if os.geteuid() != 0:
            why = "network namespaces need root (ip netns add); run the suite as root"
            if os.environ.get("CI") in ("true", "1"):
                raise AssertionError("CI runs as root, but this test is not: " + why)
            raise unittest.SkipTest(why)
        for tool in ("ip", "openssl"):
            if not shutil.which(tool):
                raise AssertionError(f"{tool} is missing (make deps installs it)")
        cls.tmp = tempfile.mkdtemp(prefix="initlab-netns-")
        try:
            cls.set_up()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def set_up(cls):
        # A run killed before its clean-up left its link and namespace: remove them.
        for line in sh("ip", "-o", "link", "show").stdout.splitlines():
            name = line.split(":")[1].strip().split("@")[0]
            if name.startswith("ilv") and name[3:].isdigit():
                sh("ip", "link", "del", name, check=False)
        for line in sh("ip", "netns", "list").stdout.splitlines():
            if line.startswith("initlab-w"):
                sh("ip", "netns", "del", line.split()[0], check=False)
        tag = str(os.getpid())[-5:]
        cls.ns, cls.veth = f"initlab-w{tag}", f"ilv{tag}"
        sh("ip", "netns", "add", cls.ns)
        sh("ip", "link", "add", cls.veth, "type", "veth", "peer", "name", cls.veth + "p")
        sh("ip", "link", "set", cls.veth + "p", "netns", cls.ns)
        sh("ip", "addr", "add", HOST_ADDR + "/30", "dev", cls.veth)
        sh("ip", "link", "set", cls.veth, "up")
        sh("ip", "-n", cls.ns, "addr", "add", NS_ADDR + "/30", "dev", cls.veth + "p")
        sh("ip", "-n", cls.ns, "link", "set", cls.veth + "p", "up")
        sh("ip", "-n", cls.ns, "link", "set", "lo", "up")
        # A certificate for the veth address, and the tokens.
        cls.cert, cls.key = (os.path.join(cls.tmp, n) for n in ("cert.pem", "key.pem"))
        sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
           "-subj", "/CN=initlab-test", "-addext", f"subjectAltName=IP:{HOST_ADDR}",
           "-keyout", cls.key, "-out", cls.cert)
        os.chmod(cls.key, 0o600)
        for name, token in (("admin", ADMIN), ("worker", WORKER)):
            with open(os.open(os.path.join(cls.tmp, name), os.O_WRONLY | os.O_CREAT, 0o600),
                      "w") as f:
                f.write(token)
        cls.data = os.path.join(cls.tmp, "data")
        sh(BIN, "demo-data", os.path.join(cls.data, "small"), "--classes", "3",
           "--per-class", "12", "--size", "32")
        cls.port = free_port(HOST_ADDR)
        cls.d = Daemon(args=["--data-root", cls.data, "--workers", "0", "--tls-cert", cls.cert,
                             "--tls-key", cls.key, "--worker-token-file",
                             os.path.join(cls.tmp, "worker"), "--heartbeat", "1",
                             "--lease-timeout", "10"],
                       token=ADMIN, listen=f"{HOST_ADDR}:{cls.port}")
        cls.d.request = cls.https_request
        cls.d.start()

    @classmethod
    def https_request(cls, method, path, body=None, token="default", **kw):
        ctx = ssl.create_default_context(cafile=cls.cert)
        data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
        req = urllib.request.Request(f"https://{HOST_ADDR}:{cls.port}{path}", data=data,
                                     method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        tok = ADMIN if token == "default" else token
        if tok:
            req.add_header("Authorization", "Bearer " + tok)

        class R:
            pass
        r = R()
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
                r.status, r.body = resp.status, resp.read()
        except urllib.error.HTTPError as e:
            r.status, r.body = e.code, e.read()
        r.json = lambda: json.loads(r.body)
        return r

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "d", None):
            cls.d.close()
        if cls.ns:
            sh("ip", "netns", "del", cls.ns, check=False)
            sh("ip", "link", "del", cls.veth, check=False)
        shutil.rmtree(getattr(cls, "tmp", ""), ignore_errors=True)

    def worker(self, *extra, timeout=120):
        return subprocess.run(
            ["ip", "netns", "exec", self.ns, WORKER_BIN, "worker", "--server",
             f"https://{HOST_ADDR}:{self.port}", "--token-file", os.path.join(self.tmp, "worker"),
             "--data-root", self.data, "--cache-dir", os.path.join(self.tmp, "cache"),
             "--threads", "1", *extra], capture_output=True, text=True, timeout=timeout)

    def test_worker_in_namespace_over_tls(self):
        d = self.d
        # The namespace is another host: it reaches the daemon only over the veth pair.
        out = sh("ip", "netns", "exec", self.ns, "ip", "-4", "addr", "show").stdout
        self.assertIn(NS_ADDR, out)
        self.assertNotIn(HOST_ADDR, out)
        r = d.request("POST", "/api/v1/datasets", {"name": "small", "path": "small"})
        self.assertEqual(r.status, 202, r.body)
        deadline = time.monotonic() + 60
        while d.request("GET", "/api/v1/datasets/small").json()["status"] != "ready":
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.1)
        r = d.request("POST", "/api/v1/jobs", {"dataset": "small", "model": "plain", "depth": 2,
                                               "width": 4, "image_size": 32, "epochs": 2,
                                               "batch_size": 8, "init": "he_uniform"})
        self.assertEqual(r.status, 201, r.body)
        jid = r.json()["id"]
        # Without the CA the worker does not trust the daemon and leases nothing.
        bad = self.worker("--once", "--idle-exit", "0", timeout=60)
        self.assertIn("certificate", bad.stderr.lower() + bad.stdout.lower())
        self.assertEqual(d.request("GET", f"/api/v1/jobs/{jid}").json()["status"], "queued")
        # The worker token may lease and report, and nothing else.
        self.assertEqual(d.request("GET", "/api/v1/jobs", token=WORKER).status, 403)
        self.assertEqual(d.request("POST", "/api/v1/worker/lease", {"worker": "x", "host": "y"},
                                   token=None).status, 401)
        ok = self.worker("--once", "--ca-file", self.cert)
        self.assertEqual(ok.returncode, 0, ok.stderr)
        j = d.request("GET", f"/api/v1/jobs/{jid}").json()
        self.assertEqual(j["status"], "done", ok.stderr)
        self.assertEqual(len(d.request("GET", f"/api/v1/jobs/{jid}/epochs").json()["epochs"]), 2)
        self.assertTrue(j["where"]["worker"].endswith(":" + j["where"]["worker"].split(":")[-1]))
        self.assertIn("attempt ended (done)", ok.stderr)


if __name__ == "__main__":
    unittest.main()
