"""test_package.py — the Debian package (`make deb`) and the systemd unit it installs, run
under a real systemd: Debian 12 in a podman container with systemd as PID 1.

Deb: lintian reports no error (its tags are printed), the files, the conffile, the
dependencies dpkg-shlibdeps computed, a portable and hardened binary, the maintainer
scripts. Service, in order, on one container: `apt-get install ./initlab_*.deb` enables and
starts it; `systemctl start` returns after READY=1 with health answering at once; a token
through LoadCredential= works without a false warning; the journal keeps the daemon's
priorities; the sandbox holds; `systemctl stop` checkpoints a running job (Result=success,
status 0) and the next start resumes it mid-epoch; after `kill -9` Restart= brings it back
and the job resumes; a SIGSTOPped daemon is killed by the watchdog and restarted;
`apt-get remove` stops it and keeps the state; `apt-get purge` removes configuration and
state. Printed, not asserted: install, start-to-ready, stop and restart times."""
import json
import os
import re
import shlex
import subprocess
import tempfile
import time
import unittest

from podman import (ROOT, SYSTEMD_IMAGE, bootstrap, cgroup_v2, inspect, note, podman, remove,
                    run, sh, wait_until)

with open(os.path.join(ROOT, "VERSION")) as _f:
    VERSION = _f.read().strip()
DEB = os.path.join(ROOT, "build", "deb", f"initlab_{VERSION}_amd64.deb")
DBGSYM = os.path.join(ROOT, "build", "deb", f"initlab-dbgsym_{VERSION}_amd64.deb")
LINTIAN = os.path.join(ROOT, "build", "deb", "lintian.txt")
TOKEN = "service-test-token-0123456789abcdef"
# The image test's small job, half as wide, on 300 training images; the container is held
# to a twentieth of a core while jobs run, so that an epoch (about a quarter of a second of
# CPU) lasts about 5 s (and a `podman exec` of systemctl, inside the same limit, lands in the
# middle of one) without loading the machine.
JOB = {"dataset": "demo", "model": "plain", "depth": 2, "width": 32, "init": "he_uniform",
       "epochs": 2, "image_size": 32, "batch_size": 2, "probe_size": 4, "threads": 1}
CPUS = "0.05"
# For the test only: a short watchdog, no core files from its SIGABRT.
DROP_IN = """[Service]
LoadCredential=token:/etc/initlab/token
WatchdogSec=6s
LimitCORE=0
"""


SYSTEM = {}


def setUpModule():
    """`make deb` (scripts/deb.sh: dpkg-buildpackage, then lintian) and, while it builds,
    the container with systemd booted and apt's lists fetched."""
    t0 = time.monotonic()
    deb = subprocess.Popen([os.path.join(ROOT, "scripts", "deb.sh")], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    try:
        bootstrap("systemd")
        SYSTEM["container"] = boot_systemd()
        note(f"service: systemd booted and apt-get update done in "
             f"{time.monotonic() - t0:.0f} s (beside the package build)")
    finally:
        out, _ = deb.communicate(timeout=900)
    if deb.returncode != 0:
        raise AssertionError("scripts/deb.sh failed:\n" + out[-6000:])
    note(f"deb: {os.path.basename(DEB)} built in {time.monotonic() - t0:.0f} s, "
         f"{os.path.getsize(DEB) // 1024} KiB")


def tearDownModule():
    if "container" in SYSTEM:
        remove(SYSTEM["container"])


def boot_systemd():
    """Starts Debian 12 with systemd as PID 1, waits for it to boot and runs apt-get update;
    returns the container's name.

    systemd's sandbox makes namespaces (user, mount, ...), seccomp filters and credentials:
    the container needs every capability, no seccomp filter of its own and /proc unmasked.
    On a machine systemd makes / a shared mount at boot, but not in a container;
    LoadCredential='s mount, made in a child namespace, reaches the service only through a
    shared /run, so / is made shared before systemd starts."""
    c = run(SYSTEMD_IMAGE, "/bin/sh", "-c", "mount --make-rshared / && exec /sbin/init",
            options=["--systemd=always", "--cap-add", "ALL",
                     "--security-opt", "seccomp=unconfined", "--security-opt", "unmask=ALL"])
    wait_until(lambda: sh(c, "systemctl is-system-running", check=False)
               .stdout.strip() in ("running", "degraded"), 120, "systemd to boot")
    # The archive is the one apt's sources on this machine name (bootstrap-images.sh).
    for attempt in range(3):
        r = sh(c, "apt-get update -qq", check=False, timeout=300)
        if r.returncode == 0:
            return c
        time.sleep(2)
    raise AssertionError("apt-get update failed:\n" + r.stdout + r.stderr)


# The Debian 12 package of each shared library the daemon may link.
LIBRARY_PACKAGE = {
    "libc.so.6": "libc6", "libm.so.6": "libc6", "libgomp.so.1": "libgomp1",
    "libmicrohttpd.so.12": "libmicrohttpd12", "libjansson.so.4": "libjansson4",
    "libsqlite3.so.0": "libsqlite3-0", "libturbojpeg.so.0": "libturbojpeg0",
    "libopenblas.so.0": "libopenblas0", "libz.so.1": "zlib1g",
    "libcurl-gnutls.so.4": "libcurl3-gnutls", "libprotobuf-c.so.1": "libprotobuf-c1",
}


def deb_field(path, field):
    return subprocess.run(["dpkg-deb", "-f", path, field], capture_output=True, text=True,
                          check=True).stdout.strip()


def control_file(path, name):
    """A maintainer script or control file of the package, as text ('' when absent)."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["dpkg-deb", "-e", path, tmp], check=True)
        p = os.path.join(tmp, name)
        if not os.path.exists(p):
            return ""
        with open(p) as f:
            return f.read()


class Deb(unittest.TestCase):
    def test_lintian_reports_no_error(self):
        with open(LINTIAN) as f:
            lines = [l for l in f.read().splitlines() if re.match(r"^[EWIPNX]: ", l)]
        note("lintian: " + ("no tags" if not lines else f"{len(lines)} tag(s)"))
        for line in lines:
            note("  " + line)
        self.assertEqual([l for l in lines if l.startswith("E: ")], [])
        # lintian ran on this package (an empty file would pass the line above).
        r = subprocess.run(["lintian", "--version"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0)
        self.assertGreater(os.path.getmtime(LINTIAN), os.path.getmtime(DEB) - 1)

    def test_files_and_conffile(self):
        listing = subprocess.run(["dpkg-deb", "-c", DEB], capture_output=True, text=True,
                                 check=True).stdout
        files = {line.split()[-1].lstrip(".") for line in listing.splitlines()}
        for path in ("/usr/bin/initlab", "/usr/share/initlab/web/index.html",
                     "/usr/share/initlab/web/node_modules/echarts/dist/echarts.min.js",
                     "/usr/share/initlab/web/node_modules/echarts/LICENSE",
                     "/usr/share/man/man1/initlab.1.gz", "/lib/systemd/system/initlab.service",
                     "/etc/initlab/initlab.conf", "/usr/share/doc/initlab/copyright",
                     "/usr/share/doc/initlab/operations.md.gz"):
            self.assertIn(path, files)
        self.assertFalse([f for f in files if f.startswith("/srv")], "Debian policy 9.1.1")
        self.assertEqual(control_file(DEB, "conffiles").split(), ["/etc/initlab/initlab.conf"])
        self.assertEqual(deb_field(DEB, "Version"), VERSION)
        self.assertEqual(deb_field(DEB, "Architecture"), "amd64")

    def test_dependencies_from_dpkg_shlibdeps(self):
        # Exactly the packages of the libraries the binary links (its DT_NEEDED entries).
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(["dpkg-deb", "-x", DEB, tmp], check=True)
            dynamic = subprocess.run(["readelf", "-d", os.path.join(tmp, "usr/bin/initlab")],
                                     capture_output=True, text=True, check=True).stdout
        needed = set(re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", dynamic))
        unknown = needed - set(LIBRARY_PACKAGE)
        self.assertFalse(unknown, "a library new to this test: add it to LIBRARY_PACKAGE")
        depends = deb_field(DEB, "Depends")
        names = {alt.split()[0] for dep in depends.split(",") for alt in dep.split("|")}
        self.assertEqual(names, {LIBRARY_PACKAGE[n] for n in needed}, depends)
        # Versions from the libraries' symbols files, not written by hand.
        self.assertRegex(depends, r"libc6 \(>= 2\.\d+\)")

    def test_portable_hardened_binary(self):
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(["dpkg-deb", "-x", DEB, tmp], check=True)
            subprocess.run(["dpkg-deb", "-x", DBGSYM, tmp], check=True)
            binary = os.path.join(tmp, "usr", "bin", "initlab")
            build_id = re.search(r"Build ID: ([0-9a-f]+)", subprocess.run(
                ["readelf", "-n", binary], capture_output=True, text=True).stdout).group(1)
            debug = os.path.join(tmp, "usr", "lib", "debug", ".build-id", build_id[:2],
                                 build_id[2:] + ".debug")
            info = subprocess.run(["readelf", "--debug-dump=info", debug], capture_output=True,
                                  text=True).stdout
            producers = set(re.findall(r"DW_AT_producer\s*:.*?: (GNU C.*)$", info, re.M))
            dynamic = subprocess.run(["readelf", "-d", "-l", binary], capture_output=True,
                                     text=True).stdout
        self.assertTrue(producers)
        for p in producers:
            self.assertIn("-march=x86-64-v2", p)
            self.assertNotIn("native", p)
            self.assertIn("-fstack-protector-strong", p)
            self.assertIn("-O3", p)
        self.assertIn("BIND_NOW", dynamic)
        self.assertIn("GNU_RELRO", dynamic)

    def test_maintainer_scripts_follow_debian_for_services(self):
        postinst = control_file(DEB, "postinst")
        self.assertIn("deb-systemd-helper enable 'initlab.service'", postinst)
        self.assertIn("deb-systemd-invoke $_dh_action 'initlab.service'", postinst)
        self.assertIn("deb-systemd-invoke stop 'initlab.service'", control_file(DEB, "prerm"))
        postrm = control_file(DEB, "postrm")
        self.assertIn("deb-systemd-helper purge 'initlab.service'", postrm)
        self.assertIn("rm -rf /var/lib/private/initlab", postrm)


class Service(unittest.TestCase):
    """One container, the steps in order (test_1 ... test_9): each starts from the state
    the one before left."""

    failed = False

    @classmethod
    def setUpClass(cls):
        cls.c = SYSTEM["container"]
        cls.netns = "/proc/%d/ns/net" % inspect(cls.c)["State"]["Pid"]
        podman("cp", DEB, f"{cls.c}:/root/")

    def setUp(self):
        if Service.failed:
            self.skipTest("an earlier step failed")

    def run(self, result=None):
        before = len(result.failures) + len(result.errors) if result else 0
        out = super().run(result)
        if result and len(result.failures) + len(result.errors) > before:
            Service.failed = True
        return out

    # ---- helpers ---------------------------------------------------------------------

    def sh(self, script, **kw):
        return sh(self.c, script, **kw).stdout.strip()

    def show(self, prop):
        return self.sh(f"systemctl show -p {prop} --value initlab")

    def now(self):
        """A timestamp for journalctl --since: the container shares the host's clock."""
        return f"{time.time() - 0.5:.6f}"

    def journal(self, since):
        """The unit's journal entries since a container timestamp, as dicts."""
        out = self.sh(f"journalctl -u initlab -o json --no-pager --since @{since}")
        return [json.loads(line) for line in out.splitlines() if line.startswith("{")]

    def messages(self, since):
        return "\n".join(str(e.get("MESSAGE", "")) for e in self.journal(since))

    def curl(self, method, path, body=None, token=True):
        """(status, body) of a request to the daemon. curl runs on the host inside the
        container's network namespace: outside the container's CPU limit, and without the
        cost of a `podman exec`."""
        cmd = ["nsenter", f"--net={self.netns}", "curl", "-s", "-m", "30", "-X", method,
               "-w", "\n%{http_code}"]
        if token:
            cmd += ["-H", f"Authorization: Bearer {TOKEN}"]
        if body is not None:
            cmd += ["-H", "Content-Type: application/json", "-d", json.dumps(body)]
        r = subprocess.run(cmd + [f"http://127.0.0.1:8470{path}"], capture_output=True,
                           text=True, timeout=60)
        text, _, status = r.stdout.rpartition("\n")
        try:
            return int(status), json.loads(text)
        except ValueError:
            return int(status or 0), text

    def json(self, path):
        status, body = self.curl("GET", path)
        if status != 200:  # the daemon's own account of it, and systemd's, in the failure
            self.fail(f"GET {path}: status {status} (0: no reply), {body!r}\n" +
                      self.sh("journalctl -u initlab --no-pager -n 40 -o short-precise",
                              check=False))
        return body

    def main_pid(self):
        return int(self.show("MainPID"))

    def active_with_new_pid(self, old):
        """The new main PID once health answers and systemd has another one, else None."""
        if self.curl("GET", "/api/v1/health", token=False)[0] != 200:
            return None
        pid = self.main_pid()
        return pid if pid and pid != old and self.show("ActiveState") == "active" else None

    def submit_and_wait_mid_epoch(self):
        status, body = self.curl("POST", "/api/v1/jobs", JOB)
        self.assertEqual(status, 201, body)
        job = body["id"]

        def mid_epoch():
            j = self.json(f"/api/v1/jobs/{job}")
            self.assertNotEqual(j["status"], "done", "the job ended before the stop")
            epochs = self.json(f"/api/v1/jobs/{job}/epochs")["epochs"]
            # The stored progress of the epoch under way (right after epoch 1 it still
            # shows epoch 1's last step): epoch 2, past its first step and short of 60%
            # of it, so that the stop lands inside it.
            p = j.get("progress") or {}
            return j["status"] == "running" and len(epochs) == 1 and p.get("epoch") == 2 \
                and 0 < p.get("step", 0) <= 0.6 * p.get("steps_per_epoch", 0)
        wait_until(mid_epoch, 300, "the job's second epoch", interval=0.1)
        return job

    def resumed(self, job, since):
        m = re.findall(rf"job {job} resumes after epoch (\d+) \(step (\d+)\)",
                       self.messages(since))
        return tuple(map(int, m[-1])) if m else None

    def finish(self, job):
        wait_until(lambda: self.json(f"/api/v1/jobs/{job}")["status"] in ("done", "failed"),
                   300, f"job {job} to finish")
        self.assertEqual(self.json(f"/api/v1/jobs/{job}")["status"], "done")
        epochs = self.json(f"/api/v1/jobs/{job}/epochs")["epochs"]
        self.assertEqual([e["epoch"] for e in epochs], [1, 2])

    # ---- the steps -------------------------------------------------------------------

    def test_1_install_enables_and_starts_the_service(self):
        t0 = time.monotonic()
        r = sh(self.c, f"DEBIAN_FRONTEND=noninteractive apt-get install -y -q "
                       f"/root/{os.path.basename(DEB)}", timeout=600)
        note(f"service: apt-get install ./{os.path.basename(DEB)} took "
             f"{time.monotonic() - t0:.1f} s (dependencies from the archive)")
        self.assertNotIn("Could not execute systemctl", r.stdout + r.stderr)
        self.assertEqual(self.show("UnitFileState"), "enabled")
        self.assertEqual(self.show("ActiveState"), "active")
        self.assertEqual(self.curl("GET", "/api/v1/health", token=False)[0], 200)
        pid = self.main_pid()
        # Called by its own name, not `exe` (it re-executes /proc/self/exe at start).
        self.assertEqual(self.sh(f"cat /proc/{pid}/comm"), "initlab")
        self.assertIn(f"Main PID: {pid} (initlab)",
                      self.sh("systemctl status --no-pager initlab", check=False))
        self.assertEqual(self.sh("pgrep -x initlab").split(), [str(pid)])
        self.assertIn("serving on 127.0.0.1:8470", self.show("StatusText"))
        entries = self.journal(0)
        listening = [e for e in entries if "listening on" in str(e.get("MESSAGE"))]
        self.assertTrue(listening)
        self.assertEqual(listening[-1]["PRIORITY"], "6")
        self.assertEqual(listening[-1]["_COMM"], "initlab")

    def test_2_start_returns_after_ready(self):
        self.sh("systemctl stop initlab")
        t0 = time.monotonic()
        self.sh("systemctl start initlab")
        took = time.monotonic() - t0
        # No retry: READY=1 comes only once the socket listens.
        self.assertEqual(self.curl("GET", "/api/v1/health", token=False)[0], 200)
        start = int(self.show("ExecMainStartTimestampMonotonic"))
        active = int(self.show("ActiveEnterTimestampMonotonic"))
        note(f"service: systemctl start returned in {took:.2f} s; exec to READY=1 "
             f"{(active - start) / 1e6:.3f} s (systemd's clock)")

    def test_3_token_credential_data_root_and_priorities(self):
        self.sh("mkdir -p /srv/initlab/data && initlab demo-data /srv/initlab/data/demo "
                "--classes 2 --per-class 250 --size 32 >/dev/null && "
                "chmod -R a+rX /srv/initlab/data")
        self.sh(f"umask 077 && printf '%s\\n' {TOKEN} > /etc/initlab/token")
        self.sh("sed -i 's|^#data_root = |data_root = |' /etc/initlab/initlab.conf && "
                "printf '%s\\n' 'token_file = /run/credentials/initlab.service/token' "
                "'threads_per_job = 1' 'sse_heartbeat = 30' >> /etc/initlab/initlab.conf")
        self.sh("mkdir -p /etc/systemd/system/initlab.service.d && "
                f"printf %s {shlex.quote(DROP_IN)} > "
                "/etc/systemd/system/initlab.service.d/test.conf && systemctl daemon-reload")
        since = self.now()
        self.sh("systemctl restart initlab")
        self.assertEqual(self.curl("GET", "/api/v1/info", token=False)[0], 401)
        self.assertEqual(self.curl("GET", "/api/v1/info")[0], 200)
        # systemd's credential: 0440 with an ACL entry for the transient user where the
        # credentials file system takes ACLs, else (ramfs) 0400 owned by that user.
        mode, owner = self.sh("stat -c '%a %u' /run/credentials/initlab.service/token").split()
        self.assertIn(mode, ("440", "400"))
        note(f"service: the credential is mode {mode}, owner uid {owner}; no warning")
        entries = self.journal(since)
        text = "\n".join(str(e.get("MESSAGE")) for e in entries)
        self.assertIn("token on", text)
        self.assertNotIn("accessible by other users", text)
        lowered = [e for e in entries if "sse heartbeat lowered" in str(e.get("MESSAGE"))]
        self.assertTrue(lowered, text)
        self.assertEqual(lowered[0]["PRIORITY"], "4")
        status, body = self.curl("POST", "/api/v1/datasets", {"name": "demo", "path": "demo"})
        self.assertEqual(status, 202, body)
        wait_until(lambda: self.json("/api/v1/datasets/demo")["status"] == "ready", 120,
                   "the dataset scan")

    def test_4_sandbox_holds(self):
        pid = self.main_pid()
        enter = f"nsenter -t {pid} -m"
        for path in ("/usr/probe", "/etc/initlab/probe", "/srv/initlab/data/probe",
                     "/root/probe"):
            r = sh(self.c, f"{enter} touch {path}", check=False)
            self.assertNotEqual(r.returncode, 0, path)
        self.sh(f"{enter} sh -c 'touch /var/lib/initlab/probe && rm /var/lib/initlab/probe'")
        # Writable besides the state: a private /tmp and /var/tmp (PrivateTmp=yes), not the
        # container's, and /dev/shm, the system's own (PrivateDevices= binds it in).
        for folder in ("/tmp", "/var/tmp"):
            self.sh(f"{enter} touch {folder}/initlab-probe")
            self.assertNotEqual(sh(self.c, f"test -e {folder}/initlab-probe", check=False)
                                .returncode, 0, folder)
        self.sh(f"{enter} sh -c 'touch /dev/shm/initlab-probe && rm /dev/shm/initlab-probe'")
        self.assertNotEqual(self.sh(f"stat -c %u /proc/{pid}"), "0")
        if cgroup_v2():
            self.assertEqual(self.show("MemoryHigh") != "infinity", True)
        else:
            note("service: MemoryHigh= and IPAddressDeny= are not verifiable here (cgroup "
                 "v1/hybrid host): systemd ignores them")

    def test_5_stop_checkpoints_and_start_resumes(self):
        podman("update", "--cpus", CPUS, self.c)
        job = self.submit_and_wait_mid_epoch()
        since = self.now()
        t0 = time.monotonic()
        self.sh("systemctl stop initlab")
        took = time.monotonic() - t0
        self.assertEqual(self.show("Result"), "success")
        self.assertEqual(self.show("ExecMainStatus"), "0")
        self.assertIn(f"job {job} checkpointed and queued again", self.messages(since))
        note(f"service: systemctl stop with a running job took {took:.2f} s "
             f"(held to {CPUS} CPU), Result=success, status 0")
        since = self.now()
        self.sh("systemctl start initlab")
        self.finish(job)
        epoch, step = self.resumed(job, since) or (None, None)
        self.assertEqual(epoch, 1, self.messages(since))
        self.assertGreater(step, 0)
        note(f"service: after the restart job {job} resumed after epoch {epoch}, step {step}")

    def test_6_kill_9_restarts_and_the_job_resumes(self):
        job = self.submit_and_wait_mid_epoch()
        old = self.main_pid()
        restarts = int(self.show("NRestarts"))
        since = self.now()
        t0 = time.monotonic()
        self.sh(f"kill -9 {old}")
        wait_until(lambda: self.active_with_new_pid(old), 120, "Restart= to bring it back")
        took = time.monotonic() - t0
        self.assertEqual(int(self.show("NRestarts")), restarts + 1)
        self.finish(job)
        epoch, step = self.resumed(job, since) or (None, None)
        self.assertIsNotNone(epoch, self.messages(since))
        note(f"service: kill -9 -> active again in {took:.1f} s (RestartSec=5s); job {job} "
             f"resumed after epoch {epoch}, step {step}")
        self.assertGreaterEqual(epoch, 1)

    def test_7_watchdog_restarts_a_frozen_daemon(self):
        # The CPU limit lifted (podman's --cpus 0 leaves the old quota in place).
        podman("update", "--cpus", str(os.cpu_count()), self.c)
        old = self.main_pid()
        restarts = int(self.show("NRestarts"))
        since = self.now()
        t0 = time.monotonic()
        self.sh(f"kill -STOP {old}")
        wait_until(lambda: self.active_with_new_pid(old), 120, "the watchdog's restart")
        took = time.monotonic() - t0
        self.assertEqual(int(self.show("NRestarts")), restarts + 1)
        log = self.sh(f"journalctl -u initlab --no-pager --since @{since}")
        self.assertIn("Watchdog timeout", log)
        note(f"service: SIGSTOP -> watchdog (WatchdogSec=6s) killed and restarted it, active "
             f"again in {took:.1f} s")

    def test_8_remove_stops_and_keeps_the_state(self):
        self.sh("DEBIAN_FRONTEND=noninteractive apt-get remove -y -q initlab", timeout=300)
        self.assertEqual(sh(self.c, "pgrep -x initlab", check=False).returncode, 1)
        self.assertNotEqual(sh(self.c, "systemctl is-active initlab", check=False).stdout
                            .strip(), "active")
        self.sh("test -f /var/lib/private/initlab/initlab.db")
        self.sh("test -f /etc/initlab/initlab.conf")

    def test_9_purge_removes_configuration_and_state(self):
        self.sh("DEBIAN_FRONTEND=noninteractive apt-get purge -y -q initlab", timeout=300)
        for path in ("/etc/initlab/initlab.conf", "/var/lib/private/initlab",
                     "/var/lib/initlab", "/lib/systemd/system/initlab.service",
                     "/etc/systemd/system/multi-user.target.wants/initlab.service"):
            r = sh(self.c, f"test -e {path} || test -L {path}", check=False)
            self.assertNotEqual(r.returncode, 0, path)
        # What the administrator made stays: the token, the drop-in, the datasets.
        self.sh("test -f /etc/initlab/token && test -d /srv/initlab/data/demo")


if __name__ == "__main__":
    unittest.main()
