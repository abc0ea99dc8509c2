"""test_service.py — the daemon as a service manager sees it: its process name, a token
handed over as a systemd credential, and STATUS= following the queue.

These are the defects that only a run under a real systemd had shown; the
container tests in tests/packaging/ check the same under systemd itself, these catch them
in every `make test` without containers."""
import os
import shutil
import struct
import subprocess
import tempfile
import time
import unittest

from daemon import BINARY, Daemon
from test_server import notify_socket, receive

TOKEN = "credential-token-0123456789"
WARNING = "accessible by other users"

# POSIX ACL as Linux stores it in the system.posix_acl_access attribute.
ACL_VERSION = 2
ACL_USER_OBJ, ACL_USER, ACL_GROUP_OBJ, ACL_GROUP, ACL_MASK, ACL_OTHER = \
    0x01, 0x02, 0x04, 0x08, 0x10, 0x20
ACL_UNDEFINED_ID = 0xFFFFFFFF


def set_acl(path, entries):
    """Sets path's access ACL to entries [(tag, perm, id)]; the kernel sets the mode's group
    bits to the mask, as setfacl does."""
    data = struct.pack("<I", ACL_VERSION)
    for tag, perm, ident in entries:
        data += struct.pack("<HHI", tag, perm, ident)
    os.setxattr(path, "system.posix_acl_access", data)


def credential_acl(uid):
    """What systemd's LoadCredential= gives a credential: readable by its owner (root) and,
    through an ACL entry, by the service's user; no group, no others; mode 0440."""
    return [(ACL_USER_OBJ, 4, ACL_UNDEFINED_ID), (ACL_USER, 4, uid),
            (ACL_GROUP_OBJ, 0, ACL_UNDEFINED_ID), (ACL_MASK, 4, ACL_UNDEFINED_ID),
            (ACL_OTHER, 0, ACL_UNDEFINED_ID)]


class TokenCredential(unittest.TestCase):
    """The token file check warns when another user may read the token, and only then."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="initlab-credentials-")
        self.creds = os.path.join(self.tmp, "credentials")
        os.mkdir(self.creds, 0o500)
        self.token = os.path.join(self.creds, "token")
        with open(os.open(self.token, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(TOKEN + "\n")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def start(self):
        """A daemon reading the token from $CREDENTIALS_DIRECTORY/token, as under the unit
        with LoadCredential=token:...; checks that the token works; returns its log."""
        d = Daemon(args=["--token-file", self.token],
                   env={"CREDENTIALS_DIRECTORY": self.creds})
        try:
            d.start()
            self.assertEqual(d.get("/api/v1/info", token=None).status, 401)
            self.assertEqual(d.get("/api/v1/info", token=TOKEN).status, 200)
            return d.log()
        finally:
            d.close()

    def test_a_credential_0440_with_an_acl_for_the_service_draws_no_warning(self):
        set_acl(self.token, credential_acl(os.geteuid()))
        mode = os.stat(self.token).st_mode & 0o777
        self.assertEqual(mode, 0o440, "the ACL should make the mode 0440, as systemd's does")
        self.assertNotIn(WARNING, self.start())

    def test_a_token_others_may_read_draws_the_warning(self):
        os.chmod(self.token, 0o644)
        log = self.start()
        self.assertIn(WARNING, log)
        self.assertIn("mode 0644", log)

    def test_an_acl_entry_for_another_user_draws_the_warning(self):
        other = 4242 if os.geteuid() != 4242 else 4243
        set_acl(self.token, credential_acl(other))
        log = self.start()
        self.assertIn(WARNING, log)
        self.assertIn(f"user {other} by ACL", log)

    def test_group_access_for_another_group_draws_the_warning(self):
        if os.geteuid() != 0:
            self.skipTest("giving the file to another group needs root")
        os.chown(self.token, 0, 4242)
        os.chmod(self.token, 0o640)
        log = self.start()
        self.assertIn(WARNING, log)
        self.assertIn("group 4242", log)


class ProcessName(unittest.TestCase):
    """The daemon re-executes itself through /proc/self/exe to choose the OpenBLAS core and
    the OpenMP wait policy; it must still be called by its own name (systemctl status, the
    journal's _COMM, ps and pgrep read it from /proc/PID/comm)."""

    def test_comm_is_the_binary_name_after_the_re_execution(self):
        # Without a wait policy of the user's, initlab always sets its own and re-executes.
        saved = {k: os.environ.pop(k) for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
                 if k in os.environ}
        try:
            d = Daemon().start()
        finally:
            os.environ.update(saved)
        try:
            pid = d.proc.pid
            with open(f"/proc/{pid}/environ", "rb") as f:
                environ = f.read().split(b"\0")
            # The environment the running image started with: it re-executed itself.
            self.assertTrue(any(v.startswith(b"INITLAB_BLAS_SOURCE=") for v in environ),
                            "the daemon did not re-execute itself; nothing was tested")
            want = os.path.basename(BINARY)[:15]
            with open(f"/proc/{pid}/comm") as f:
                self.assertEqual(f.read().strip(), want)
            names = set()
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/comm") as f:
                    names.add(f.read().strip())
            self.assertNotIn("exe", names)
            r = subprocess.run(["pgrep", "-x", want], capture_output=True, text=True)
            self.assertIn(str(pid), r.stdout.split())
        finally:
            d.close()


class StatusUpdates(unittest.TestCase):
    """`systemctl status` shows the daemon's STATUS=; it must follow a job that starts at
    once, not at the next watchdog round (every 30 s under the unit's WatchdogSec=60s)."""

    def test_status_names_a_running_job_within_a_second(self):
        tmp = tempfile.mkdtemp(prefix="initlab-status-")
        sock, addr = notify_socket(tmp)
        data = os.path.join(tmp, "data")
        out = subprocess.run([BINARY, "demo-data", os.path.join(data, "weeds"), "--classes",
                              "2", "--per-class", "20", "--size", "32"],
                             capture_output=True, text=True)
        self.assertEqual(out.returncode, 0, out.stderr)
        d = Daemon(args=["--data-root", data],
                   env={"NOTIFY_SOCKET": addr, "WATCHDOG_USEC": "60000000"})
        try:
            d.start()
            r = d.request("POST", "/api/v1/datasets", {"name": "weeds", "path": "weeds"})
            self.assertEqual(r.status, 202, r)
            deadline = time.monotonic() + 120
            while d.get("/api/v1/datasets/weeds").json()["status"] != "ready":
                self.assertLess(time.monotonic(), deadline, "the dataset scan did not end")
                time.sleep(0.1)
            first = [m for _, m in receive(sock, None, 1.5) if m.startswith("STATUS=")]
            self.assertTrue(first and "0 running" in first[-1], first)
            r = d.request("POST", "/api/v1/jobs", {
                "dataset": "weeds", "model": "plain", "depth": 2, "width": 4,
                "epochs": 500, "image_size": 32, "batch_size": 8, "probe_size": 4})
            self.assertEqual(r.status, 201, r)
            job = r.json()["id"]
            while d.get(f"/api/v1/jobs/{job}").json()["status"] != "running":
                self.assertLess(time.monotonic(), deadline, "the job did not start")
                time.sleep(0.02)
            running_at = time.monotonic()
            # 10 s separates "at once" (the daemon looks twice a second) from the next
            # watchdog round, 30 s away, on however loaded a machine.
            got = receive(sock, None, 10.0)
            seen = [(t, m) for t, m in got if m.startswith("STATUS=") and "1 running" in m]
            self.assertTrue(seen, [m for _, m in got])
            print(f"\n    STATUS= named the running job {max(0.0, seen[0][0] - running_at):.2f}"
                  " s after the API did", flush=True)
            self.assertEqual(d.stop(), 0, d.log())
        finally:
            d.close()
            sock.close()
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
