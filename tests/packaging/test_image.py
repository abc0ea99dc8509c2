"""test_image.py — docker/Dockerfile built with podman and run the way docker/compose.yaml
describes: read-only root, a tmpfs /tmp, no capabilities, no new privileges, the token as a
secret, the datasets mounted read-only, a named volume for the state.

A short job trains; `podman stop -t 90` stops the daemon mid-epoch with exit 0 and the job
checkpointed, the next start resumes it and the stored epochs are whole. The image is built
with `--format docker`: podman's own OCI format has no HEALTHCHECK and drops it. Printed,
not asserted: the build time, the image size, start to health, the stop time."""
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

from podman import (IMAGE, ROOT, ULIMITS, bootstrap, inspect, name, note, podman, remove,
                    run, sh, wait_until)

TOKEN = "image-test-token-0123456789abcdef"
BINARY = os.path.join(ROOT, "initlab")
# Small and quick: the plumbing is under test, not the learning. The container is held to a
# twentieth of a core so that an epoch (150 training images, about a quarter of a second of
# CPU at this width) lasts about 5 s and can be stopped in the middle, without loading the
# machine.
JOB = {"dataset": "demo", "model": "plain", "depth": 2, "width": 64, "init": "he_uniform",
       "epochs": 2, "image_size": 32, "batch_size": 2, "probe_size": 4, "threads": 1}
CPUS = "0.05"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Http:
    """Requests to the container's published port."""

    def __init__(self, port, token=None):
        self.port, self.token = port, token

    def request(self, method, path, body=None, token="default"):
        token = self.token if token == "default" else token
        headers = {"Host": f"127.0.0.1:{self.port}"}
        if token:
            headers["Authorization"] = "Bearer " + token
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=data, headers=headers)
            r = conn.getresponse()
            raw = r.read()
            return r.status, (json.loads(raw) if raw[:1] in (b"{", b"[") else raw)
        finally:
            conn.close()

    def status(self, path, token="default"):
        try:
            return self.request("GET", path, token=token)[0]
        except OSError:
            return None

    def json(self, path):
        status, body = self.request("GET", path)
        assert status == 200, (path, status, body)
        return body


BUILT = {}


def setUpModule():
    """Builds the image once for both classes: --format docker (podman's own OCI format
    drops HEALTHCHECK), --pull=never (the base images are local)."""
    bootstrap("debian:12", "debian:12-slim")
    old = podman("image", "inspect", "--format", "{{.Id}}", IMAGE, check=False)
    t0 = time.monotonic()
    r = podman("build", "--format", "docker", "--pull=never", *ULIMITS, "-f",
               os.path.join(ROOT, "docker", "Dockerfile"), "-t", IMAGE, ROOT,
               check=False, timeout=1200)
    seconds = time.monotonic() - t0
    if r.returncode != 0:
        raise AssertionError("podman build failed:\n" + r.stdout[-6000:] + r.stderr[-3000:])
    BUILT["image"] = inspect(IMAGE, "image")
    # The image this build replaced, now untagged: nothing needs it any more.
    if old.returncode == 0 and old.stdout.strip() != BUILT["image"]["Id"]:
        podman("rmi", old.stdout.strip(), check=False)
    note(f"image {IMAGE}: built in {seconds:.0f} s, {BUILT['image']['Size'] / 1e6:.0f} MB")


class Image(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.image = BUILT["image"]

    def test_healthcheck_survives_the_build(self):
        # Built with --format docker; podman's default OCI format would drop it.
        check = self.image.get("Healthcheck") or {}
        self.assertIn("/api/v1/health", " ".join(check.get("Test", [])), self.image)

    def test_only_the_dashboard_files_of_node_modules(self):
        r = podman("run", "--rm", *ULIMITS, "--network", "none", "--entrypoint", "find", IMAGE,
                   "/usr/local/share/initlab/web/node_modules", "-type", "f")
        files = sorted(p.split("/node_modules/", 1)[1] for p in r.stdout.split())
        self.assertEqual(files, ["echarts/LICENSE", "echarts/NOTICE",
                                 "echarts/dist/echarts.min.js"])


class Compose(unittest.TestCase):
    """The image run as docker/compose.yaml runs it, stopped and started again."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="initlab-image-")
        os.chmod(cls.tmp, 0o755)
        cls.data = os.path.join(cls.tmp, "data")
        r = subprocess.run([BINARY, "demo-data", os.path.join(cls.data, "demo"), "--classes",
                            "2", "--per-class", "125", "--size", "32"], capture_output=True,
                           text=True, timeout=300)
        if r.returncode != 0:
            raise AssertionError(r.stderr)
        subprocess.run(["chmod", "-R", "a+rX", cls.data], check=True)
        # compose.yaml's secret is a file bind-mounted at /run/secrets/initlab_token, owned
        # by the container's user, 0400, as the README says to make it. (podman's own
        # --secret cannot be mounted into a read-only root with runc.)
        cls.token = os.path.join(cls.tmp, "initlab_token")
        with open(os.open(cls.token, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(TOKEN + "\n")
        os.chown(cls.token, 10001, 10001)
        os.chmod(cls.token, 0o400)
        cls.volume = name("state")
        podman("volume", "create", cls.volume)
        cls.port = free_port()
        cls.http = Http(cls.port, TOKEN)
        cls.container = None

    @classmethod
    def tearDownClass(cls):
        if cls.container:
            remove(cls.container)
        podman("volume", "rm", "-f", cls.volume, check=False)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def logs(self):
        r = podman("logs", self.container, check=False)
        return r.stdout + r.stderr

    def logged(self, text):
        """The container's log once it holds text, else None."""
        log = self.logs()
        return log if text in log else None

    def start_and_wait(self, first):
        t0 = time.monotonic()
        if first:
            # compose.yaml: read_only, tmpfs /tmp, cap_drop ALL, no-new-privileges, the
            # token, the data folder read-only, the named volume; command: --token-file.
            type(self).container = run(IMAGE, "--token-file", "/run/secrets/initlab_token",
                                       "--threads-per-job", "1", options=[
                "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL",
                "--security-opt", "no-new-privileges",
                "-v", f"{self.token}:/run/secrets/initlab_token:ro",
                "-v", f"{self.data}:/data:ro", "-v", f"{self.volume}:/var/lib/initlab",
                "-p", f"127.0.0.1:{self.port}:8470", "--cpus", CPUS])
        else:
            podman("start", self.container)
        wait_until(lambda: self.http.status("/api/v1/health") == 200, 120,
                   "/api/v1/health to answer 200\n" + self.logs(), interval=0.05)
        return time.monotonic() - t0

    def job(self, job_id):
        return self.http.json(f"/api/v1/jobs/{job_id}")

    def test_train_stop_start_resume(self):
        ready = self.start_and_wait(first=True)
        note(f"container: start to health 200 in {ready:.2f} s (held to {CPUS} CPU)")
        # The HTTP server answers before the main thread logs its summary line, which at
        # 0.05 CPU can come a few hundred milliseconds later.
        log = wait_until(lambda: self.logged("token on"), 30, "\"token on\" in the log")
        self.assertNotIn("accessible by other users", log)
        self.assertEqual(self.http.status("/api/v1/info", token=None), 401)
        self.assertEqual(self.http.status("/api/v1/info"), 200)
        self.assertEqual(self.http.status("/"), 200)
        self.assertEqual(self.http.status("/node_modules/echarts/dist/echarts.min.js"), 200)
        self.assertEqual(podman("healthcheck", "run", self.container, check=False).returncode,
                         0)
        # The daemon is PID 1, called by its name; the root is read-only, the volume not.
        self.assertEqual(sh(self.container, "cat /proc/1/comm").stdout.strip(), "initlab")
        self.assertNotEqual(sh(self.container, "touch /usr/local/probe", check=False)
                            .returncode, 0)
        sh(self.container, "touch /var/lib/initlab/probe && rm /var/lib/initlab/probe")
        self.assertNotEqual(sh(self.container, "touch /data/demo/probe", check=False)
                            .returncode, 0)

        status, body = self.http.request("POST", "/api/v1/datasets",
                                         {"name": "demo", "path": "demo"})
        self.assertEqual(status, 202, body)
        wait_until(lambda: self.http.json("/api/v1/datasets/demo")["status"] == "ready", 120,
                   "the dataset scan")
        status, body = self.http.request("POST", "/api/v1/jobs", JOB)
        self.assertEqual(status, 201, body)
        job = body["id"]

        # Stop in the middle of the second epoch: the job checkpoints at its next step.
        # (The stored progress follows the job about once a second.)
        def mid_epoch():
            j = self.job(job)
            self.assertNotEqual(j["status"], "done", "the job ended before the stop")
            epochs = self.http.json(f"/api/v1/jobs/{job}/epochs")["epochs"]
            # The stored progress of the epoch under way (right after epoch 1 it still
            # shows epoch 1's last step): epoch 2, past its first step and short of 60%
            # of it, so that the stop lands inside it.
            p = j.get("progress") or {}
            return j["status"] == "running" and len(epochs) == 1 and p.get("epoch") == 2 \
                and 0 < p.get("step", 0) <= 0.6 * p.get("steps_per_epoch", 0)
        wait_until(mid_epoch, 300, "the job's second epoch", interval=0.05)
        t0 = time.monotonic()
        podman("stop", "-t", "90", self.container, timeout=200)
        stopped = time.monotonic() - t0
        state = inspect(self.container)["State"]
        self.assertEqual(state["ExitCode"], 0, self.logs())
        log = self.logs()
        self.assertIn("queued again", log)
        note(f"container: podman stop -t 90 with a running job took {stopped:.2f} s, exit 0")

        self.start_and_wait(first=False)
        wait_until(lambda: self.job(job)["status"] in ("done", "failed"), 300,
                   "the job to finish after the restart")
        j = self.job(job)
        self.assertEqual(j["status"], "done", j)
        log = self.logs()
        m = re.findall(rf"job {job} resumes after epoch (\d+) \(step (\d+)\)", log)
        self.assertTrue(m, log[-3000:])
        epoch, step = map(int, m[-1])
        self.assertEqual(epoch, 1)
        self.assertGreater(step, 0, log[-4000:])
        note(f"container: the job resumed after epoch {epoch}, step {step}")
        epochs = self.http.json(f"/api/v1/jobs/{job}/epochs")["epochs"]
        self.assertEqual([e["epoch"] for e in epochs], [1, 2])
        self.assertEqual(self.http.status(f"/api/v1/jobs/{job}/results"), 200)
        podman("stop", "-t", "90", self.container, timeout=200)
        self.assertEqual(inspect(self.container)["State"]["ExitCode"], 0)


if __name__ == "__main__":
    unittest.main()
