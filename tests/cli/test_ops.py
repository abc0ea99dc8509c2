"""test_ops.py — operations: the systemd unit, `make install`, the configuration, the man page,
the container files.

The unit is checked by systemd itself (`systemd-analyze verify` and `security`). There is
no systemd running as PID 1 on the test machines, so the daemon is run under the unit's
restrictions in two other ways: traced by strace as an unprivileged user with the kernel's
memory-deny-write-execute flag, each system call, socket family, connection, /proc and /dev
access and file write compared with what the unit allows (Sandbox); and in mount and PID
namespaces with a read-only file system but the state directory, /proc mounted
hidepid=invisible,subset=pid and no capabilities, as PID 1 (Namespaces). The Docker image is
not built here (no Docker engine): its files are checked for form, the runtime packages
against the binary's libraries, and the HEALTHCHECK command runs against a real daemon."""
import ctypes
import http.client
import json
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
import unittest

from util import BINARY, run_initlab

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
UNIT = os.path.join(ROOT, "systemd", "initlab.service")
EXAMPLE_CONF = os.path.join(ROOT, "systemd", "initlab.conf.example")
DOCKER_CONF = os.path.join(ROOT, "docker", "initlab.conf")
DOCKERFILE = os.path.join(ROOT, "docker", "Dockerfile")
COMPOSE = os.path.join(ROOT, "docker", "compose.yaml")
MAN_SOURCE = os.path.join(ROOT, "docs", "initlab.1")
LISTENING = re.compile(r"listening on http://(\[[0-9a-fA-F:.]+\]|[0-9.]+):(\d+)/")
CLEAN_ENV = {k: v for k, v in os.environ.items()
             if not k.startswith(("INITLAB_", "OPENBLAS_CORETYPE", "NOTIFY_SOCKET",
                                  "WATCHDOG_", "JOURNAL_STREAM"))}

with open(os.path.join(ROOT, "VERSION")) as _f:
    VERSION = _f.read().strip()


# ---- helpers ---------------------------------------------------------------------------

def tool(name):
    """Path of a program the tests need; a missing one fails the test with its name."""
    path = shutil.which(name)
    if not path:
        raise AssertionError(f"{name} is not installed (scripts/deps.sh installs it)")
    return path


def make_install(destdir, *extra, env=None):
    """Runs `make install DESTDIR=destdir [extra...]`; returns the CompletedProcess."""
    full = dict(CLEAN_ENV)
    full.update(env or {})
    return subprocess.run(["make", "--no-print-directory", "install", f"DESTDIR={destdir}",
                           *extra], cwd=ROOT, capture_output=True, text=True, env=full,
                          timeout=900)


def unit_directives(path):
    """The [Service]/[Unit]/[Install] directives of a unit file: {name: [values in order]}."""
    out = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith(("#", ";", "[")):
                continue
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def serve_help_options():
    """{flag: help text} for every option `initlab serve --help` lists."""
    text = run_initlab("serve", "--help").stdout
    opts = {}
    current = None
    for line in text.splitlines():
        m = re.match(r"^  (--[a-z-]+)\s+(?:\S+\s+)?(.*)$", line)
        if m:
            current = m.group(1)
            opts[current] = m.group(2)
        elif current and line.startswith("      "):
            opts[current] += " " + line.strip()
        else:
            current = None
    return opts


def commands():
    """The subcommand names that `initlab --help` lists."""
    listing = run_initlab("--help").stdout.split("commands:")[1]
    return [line.split()[0] for line in listing.splitlines() if line.strip()]


def http_get(host, port, path, headers=None, timeout=10):
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def http_post_json(host, port, path, body, timeout=10):
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("POST", path, body=json.dumps(body).encode(),
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def descendants(pid):
    """Process ids below pid, children first (from /proc/PID/task/TID/children)."""
    out = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                kids = [int(k) for k in f.read().split()]
        except OSError:
            continue
        for kid in kids:
            out.append(kid)
            out.extend(descendants(kid))
    return out


def kill_tree(proc):
    """SIGKILL to a Popen and everything it started (a traced or namespaced daemon would
    outlive its strace or unshare parent)."""
    for pid in [proc.pid] + descendants(proc.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()


def run_tree(argv, timeout, **kw):
    """subprocess.run with capture, killing the whole process tree on timeout."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **kw)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_tree(proc)
        raise
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


class Daemon:
    """`initlab serve` (or a wrapper command around it) started in the background; the port
    comes from its "listening on" log line."""

    def __init__(self, argv, cwd, env=None, preexec_fn=None, timeout=60):
        full = dict(CLEAN_ENV)
        full.update(env or {})
        self.lines = []
        self._ready = threading.Event()
        self.host = self.port = None
        self.proc = subprocess.Popen(argv, cwd=cwd, env=full, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     preexec_fn=preexec_fn)
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise AssertionError("initlab serve did not start:\n" + self.log())

    def _read(self):
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.lines.append(line)
            m = LISTENING.search(line)
            if m and not self._ready.is_set():
                self.host, self.port = m.group(1).strip("[]"), int(m.group(2))
                self._ready.set()

    def log(self):
        time.sleep(0.05)
        return "\n".join(self.lines)

    def get(self, path, **kw):
        return http_get(self.host, self.port, path, **kw)

    def stop(self, pid=None, timeout=60):
        """SIGTERM to pid (default: the started process); returns the exit status."""
        os.kill(pid or self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def child(self):
        """The first child of the started process (the daemon under strace or unshare)."""
        with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
            return int(f.read().split()[0])

    def kill(self):
        if self.proc.poll() is None:
            kill_tree(self.proc)


# ---- the systemd unit ----------------------------------------------------------------

class Installed(unittest.TestCase):
    """Shares one `make install DESTDIR=tmp` (PREFIX=/usr/local) among the tests below."""

    destdir = None

    @classmethod
    def setUpClass(cls):
        cls.destdir = tempfile.mkdtemp(prefix="initlab-install-")
        cls.install = make_install(cls.destdir)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.destdir, ignore_errors=True)

    def setUp(self):
        self.assertEqual(self.install.returncode, 0,
                         self.install.stdout + self.install.stderr)

    def path(self, rel):
        return os.path.join(self.destdir, rel.lstrip("/"))

    def verifiable_unit(self, tmp):
        """The installed unit, copied to tmp with ExecStart's binary moved under DESTDIR."""
        unit = self.path("/usr/local/lib/systemd/system/initlab.service")
        with open(unit) as f:
            text = f.read()
        exec_start = re.search(r"^ExecStart=(\S+)", text, re.M).group(1)
        self.assertEqual(exec_start, "/usr/local/bin/initlab")
        self.assertTrue(os.access(self.path(exec_start), os.X_OK))
        text = text.replace("ExecStart=" + exec_start, "ExecStart=" + self.path(exec_start))
        out = os.path.join(tmp, "initlab.service")
        with open(out, "w") as f:
            f.write(text)
        return out


class SystemdUnit(Installed):
    def analyze(self, *args, env=None):
        full = dict(CLEAN_ENV)
        full.update(env or {})
        return subprocess.run([tool("systemd-analyze"), *args], capture_output=True,
                              text=True, env=full, timeout=120)

    def test_verify_passes_on_the_installed_unit(self):
        # verify checks the syntax, that ExecStart is executable and that Documentation=
        # resolves: the binary and the man page are the ones `make install` put in DESTDIR.
        with tempfile.TemporaryDirectory() as tmp:
            unit = self.verifiable_unit(tmp)
            r = self.analyze("verify", unit,
                             env={"MANPATH": self.path("/usr/local/share/man")})
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertEqual(r.stderr.strip(), "")

    def test_verify_catches_a_missing_binary_and_man_page(self):
        with tempfile.TemporaryDirectory() as tmp:
            unit = self.verifiable_unit(tmp)
            with open(unit) as f:
                text = f.read()
            with open(unit, "w") as f:
                f.write(re.sub(r"^ExecStart=\S+", "ExecStart=/nonexistent/initlab", text,
                               flags=re.M))
            r = self.analyze("verify", unit, env={"MANPATH": tmp})
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("/nonexistent/initlab", r.stderr)
            self.assertIn("man initlab(1)", r.stderr)

    def test_security_exposure_at_most_2(self):
        # systemd 252 reads --threshold on the 0..100 scale of its exposure level (10.0
        # prints as 100), so 2.0 is --threshold=20; the score is also checked as printed.
        with tempfile.TemporaryDirectory() as tmp:
            unit = self.verifiable_unit(tmp)
            r = self.analyze("security", "--offline=true", "--threshold=20", unit)
        m = re.search(r"Overall exposure level for initlab\.service: (\d+\.\d+) (\w+)",
                      r.stdout)
        self.assertIsNotNone(m, r.stdout + r.stderr)
        print(f"\n    systemd-analyze security: exposure {m.group(1)} {m.group(2)}",
              flush=True)
        for line in r.stdout.splitlines():
            if line.startswith("✗"):
                print("      " + re.sub(r"\s{2,}", "  ", line), flush=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertLessEqual(float(m.group(1)), 2.0)

    def test_security_threshold_can_fail(self):
        with tempfile.TemporaryDirectory() as tmp:
            unit = self.verifiable_unit(tmp)
            r = self.analyze("security", "--offline=true", "--threshold=0", unit)
        self.assertNotEqual(r.returncode, 0, r.stdout)

    def test_service_settings(self):
        d = unit_directives(UNIT)
        expect = {
            "Type": "notify", "NotifyAccess": "main", "DynamicUser": "yes",
            "StateDirectory": "initlab", "ProtectSystem": "strict", "ProtectHome": "yes",
            "PrivateTmp": "yes", "PrivateDevices": "yes", "NoNewPrivileges": "yes",
            "CapabilityBoundingSet": "", "AmbientCapabilities": "",
            "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
            "SystemCallArchitectures": "native", "MemoryDenyWriteExecute": "yes",
            "LockPersonality": "yes", "RestrictRealtime": "yes", "RestrictNamespaces": "yes",
            "RestrictSUIDSGID": "yes", "ProtectKernelTunables": "yes",
            "ProtectKernelModules": "yes", "ProtectKernelLogs": "yes",
            "ProtectControlGroups": "yes", "ProtectClock": "yes", "ProtectHostname": "yes",
            "ProtectProc": "invisible", "ProcSubset": "pid", "UMask": "0077",
            "Restart": "on-failure", "KillMode": "mixed",
            "ExecStart": "/usr/local/bin/initlab serve --config /etc/initlab/initlab.conf",
        }
        for key, value in expect.items():
            self.assertEqual(d.get(key), [value], key)
        self.assertEqual(d["SystemCallFilter"][0], "@system-service")
        for key in ("WatchdogSec", "TimeoutStopSec", "MemoryHigh", "MemoryMax",
                    "ReadOnlyPaths", "IPAddressDeny", "IPAddressAllow"):
            self.assertIn(key, d)
        # The data root the example configuration names is the one the unit mounts read-only.
        conf = parse_conf(EXAMPLE_CONF)
        self.assertIn("-" + conf["data_root"], d["ReadOnlyPaths"])
        self.assertEqual(conf["state_dir"], "/var/lib/" + d["StateDirectory"][0])


# ---- make install --------------------------------------------------------------------

class Install(Installed):
    def test_binary_runs(self):
        r = subprocess.run([self.path("/usr/local/bin/initlab"), "--version"],
                           capture_output=True, text=True, env=CLEAN_ENV, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.strip(), "initlab " + VERSION)
        mode = os.stat(self.path("/usr/local/bin/initlab")).st_mode
        self.assertEqual(stat.S_IMODE(mode), 0o755)

    def test_web_files(self):
        web = self.path("/usr/local/share/initlab/web")
        if os.path.exists(os.path.join(ROOT, "web", "index.html")):
            self.assertTrue(os.path.isfile(os.path.join(web, "index.html")))
        for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, "web")):
            dirnames[:] = [d for d in dirnames if d != "node_modules"]
            for name in filenames:
                src = os.path.join(dirpath, name)
                rel = os.path.relpath(src, os.path.join(ROOT, "web"))
                dst = os.path.join(web, rel)
                if rel in ("package.json", "package-lock.json"):
                    self.assertFalse(os.path.exists(dst), rel)
                    continue
                with open(src, "rb") as a, open(dst, "rb") as b:
                    self.assertEqual(a.read(), b.read(), rel)
        # Of node_modules, only the files the dashboard names (ECharts' echarts.min.js, not
        # the 46 MB of its dist/), each with its package's licence and notice.
        loaded = set()
        for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, "web")):
            dirnames[:] = [d for d in dirnames if d != "node_modules"]
            for name in filenames:
                if name.endswith((".html", ".js", ".css")):
                    with open(os.path.join(dirpath, name), errors="replace") as f:
                        loaded |= set(re.findall(r"/node_modules/([A-Za-z0-9@._/-]+)",
                                                 f.read()))
        self.assertIn("echarts/dist/echarts.min.js", loaded)
        installed = set()
        for dirpath, _, filenames in os.walk(os.path.join(web, "node_modules")):
            for name in filenames:
                installed.add(os.path.relpath(os.path.join(dirpath, name),
                                              os.path.join(web, "node_modules")))
        packages = {"/".join(p.split("/")[:2 if p.startswith("@") else 1]) for p in loaded}
        notices = {f"{p}/{n}" for p in packages for n in ("LICENSE", "NOTICE")
                   if os.path.exists(os.path.join(ROOT, "web", "node_modules", p, n))}
        self.assertIn("echarts/LICENSE", notices)
        self.assertEqual(installed, loaded | notices)
        for rel in loaded:
            with open(os.path.join(ROOT, "web", "node_modules", rel), "rb") as a, \
                    open(os.path.join(web, "node_modules", rel), "rb") as b:
                self.assertEqual(a.read(), b.read(), rel)

    def test_schema(self):
        src = sorted(f for f in os.listdir(os.path.join(ROOT, "schema")) if f.endswith(".sql"))
        dst = sorted(os.listdir(self.path("/usr/local/share/initlab/schema")))
        self.assertTrue(src)
        self.assertEqual(src, dst)

    def test_unit_and_configuration(self):
        unit = self.path("/usr/local/lib/systemd/system/initlab.service")
        d = unit_directives(unit)
        self.assertEqual(d["ExecStart"],
                         ["/usr/local/bin/initlab serve --config /etc/initlab/initlab.conf"])
        with open(self.path("/etc/initlab/initlab.conf")) as a, open(EXAMPLE_CONF) as b:
            self.assertEqual(a.read(), b.read())
        self.assertTrue(os.path.isdir(self.path("/srv/initlab/data")))
        for rel in ("/usr/local/share/doc/initlab/initlab.conf.example",
                    "/usr/local/share/doc/initlab/operations.md"):
            self.assertTrue(os.path.isfile(self.path(rel)), rel)

    def test_man_page(self):
        page = self.path("/usr/local/share/man/man1/initlab.1")
        with open(page) as f:
            text = f.read()
        th = re.search(r'^\.TH INITLAB 1 "[^"]*" "initlab ([^"]+)"', text, re.M)
        self.assertIsNotNone(th)
        self.assertEqual(th.group(1), VERSION)
        self.assertIn("/usr/local/share/initlab/web", text)
        self.assertNotIn("PREFIX/", text)
        rendered = render_man(self, page)
        self.assertIn("SERVE OPTIONS", rendered)

    def test_configuration_is_never_overwritten(self):
        with tempfile.TemporaryDirectory() as dest:
            os.makedirs(os.path.join(dest, "etc/initlab"))
            conf = os.path.join(dest, "etc/initlab/initlab.conf")
            with open(conf, "w") as f:
                f.write("workers = 2\n")
            r = make_install(dest)
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(conf) as f:
                self.assertEqual(f.read(), "workers = 2\n")
            self.assertIn("kept", r.stdout)

    def test_other_prefix_and_unit_directory(self):
        with tempfile.TemporaryDirectory() as dest:
            r = make_install(dest, "PREFIX=/opt/initlab", "UNITDIR=/etc/systemd/system")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertNotIn("warning", r.stderr)
            d = unit_directives(os.path.join(dest, "etc/systemd/system/initlab.service"))
            self.assertEqual(d["ExecStart"][0].split()[0], "/opt/initlab/bin/initlab")
            self.assertTrue(os.access(os.path.join(dest, "opt/initlab/bin/initlab"), os.X_OK))
        with tempfile.TemporaryDirectory() as dest:
            r = make_install(dest, "PREFIX=/opt/initlab")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("systemd does not look for units in /opt/initlab/lib/systemd/system",
                          r.stderr)
        with tempfile.TemporaryDirectory() as dest:
            r = make_install(dest, "PREFIX=relative/path")
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("PREFIX must be an absolute path", r.stderr)

    def test_installed_binary_serves_the_installed_dashboard(self):
        # No --web-dir and no ./web: the daemon must find PREFIX/share/initlab/web from
        # PREFIX/bin/initlab, which is where install.sh put it.
        with tempfile.TemporaryDirectory() as tmp:
            d = Daemon([self.path("/usr/local/bin/initlab"), "serve", "--listen",
                        "127.0.0.1:0", "--state-dir", os.path.join(tmp, "state")], cwd=tmp)
            try:
                status, body = d.get("/")
                self.assertEqual(status, 200)
                index = self.path("/usr/local/share/initlab/web/index.html")
                if os.path.exists(index):
                    with open(index, "rb") as f:
                        self.assertEqual(body, f.read())
                status, _ = d.get("/node_modules/echarts/dist/echarts.min.js")
                self.assertEqual(status, 200)
                self.assertEqual(d.stop(), 0)
            finally:
                d.kill()


def render_man(test, page):
    """Renders a man page with warnings on; fails the test on any warning."""
    man = shutil.which("man")
    if man:
        r = subprocess.run([man, "--warnings", "-l", page], capture_output=True, text=True,
                           env=dict(CLEAN_ENV, MANWIDTH="100", MAN_KEEP_FORMATTING="0"),
                           timeout=60)
    else:
        r = subprocess.run([tool("groff"), "-man", "-ww", "-Tutf8", page],
                           capture_output=True, text=True, timeout=60)
    test.assertEqual(r.returncode, 0, r.stderr)
    test.assertEqual(r.stderr.strip(), "", "warnings rendering " + page)
    return re.sub(r".\x08", "", r.stdout)


# ---- the man page against the binary ---------------------------------------------------

def man_sections(text):
    """{section title: roff source of the section}."""
    parts = re.split(r"^\.SH (.+)$", text, flags=re.M)
    return {parts[i].strip('"'): parts[i + 1] for i in range(1, len(parts), 2)}


def roff_flags(text):
    """Every --flag written in roff source (as \\-\\-flag), without the dashes."""
    return {f.replace("\\-", "-") for f in re.findall(r"\\-\\-([a-z](?:[a-z]|\\-)*[a-z])", text)}


class ManPage(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(MAN_SOURCE) as f:
            cls.text = f.read()
        cls.sections = man_sections(cls.text)

    def entries(self, section):
        """{first word of each .TP tag: roff source of the entry} in a section."""
        out = {}
        for block in re.split(r"^\.TP\n", self.sections[section], flags=re.M)[1:]:
            tag = block.split("\n", 1)[0]
            word = re.sub(r'^\.\w+\s+"?', "", tag).split()[0].strip('"').replace("\\-", "-")
            out[word] = block
        return out

    def test_renders_without_warnings(self):
        render_man(self, MAN_SOURCE)

    def test_every_command_is_described(self):
        described = self.entries("COMMANDS")
        self.assertEqual(sorted(described), sorted(commands()))

    def test_flags_named_for_a_command_exist(self):
        for name, block in self.entries("COMMANDS").items():
            known = set(re.findall(r"--([a-z][a-z-]*)", run_initlab(name, "--help").stdout))
            named = roff_flags(block) - {"help"}
            self.assertLessEqual(named, known, name)

    def test_every_serve_option_is_described(self):
        listed = {flag[2:] for flag in serve_help_options()}
        described = {w[2:] for w in self.entries("SERVE OPTIONS")}
        self.assertEqual(described, listed)

    def test_configuration_keys(self):
        keys = {flag[2:].replace("-", "_") for flag in serve_help_options()} - {"config"}
        block = self.sections["CONFIGURATION FILE"]
        named = set(re.findall(r"^\.(?:BR|RB \() ?([a-z_]+) [,)]", block, re.M))
        self.assertEqual(named, keys)


# ---- configuration files ---------------------------------------------------------------

def parse_conf(path, uncomment=False):
    """{key: value} of a key = value file; with uncomment, '#key = value' lines count too."""
    out = {}
    with open(path) as f:
        for line in f:
            m = re.match(r"^(#?)([a-z_]+) = (.*)$", line.rstrip("\n"))
            if m and (not m.group(1) or uncomment):
                out[m.group(2)] = m.group(3)
    return out


class Configuration(unittest.TestCase):
    def start(self, conf_text, tmp, extra=()):
        conf = os.path.join(tmp, "test.conf")
        with open(conf, "w") as f:
            f.write(conf_text)
        os.makedirs(os.path.join(tmp, "data"), exist_ok=True)
        token = os.path.join(tmp, "token")
        with open(os.open(token, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write("0123456789abcdef0123\n")
        # The flags move the paths into tmp; the file's own values are still parsed and
        # checked (a bad value or unknown key stops the daemon before it listens).
        return [BINARY, "serve", "--config", conf, "--listen", "127.0.0.1:0",
                "--state-dir", os.path.join(tmp, "state"), "--data-root",
                os.path.join(tmp, "data"), "--web-dir", os.path.join(ROOT, "web"),
                "--token-file", token, *extra]

    def test_example_documents_every_setting(self):
        keys = {flag[2:].replace("-", "_") for flag in serve_help_options()} - {"config"}
        documented = parse_conf(EXAMPLE_CONF, uncomment=True)
        self.assertEqual(set(documented), keys)

    def test_example_shows_the_defaults(self):
        with open(EXAMPLE_CONF) as f:
            commented = {m.group(1): m.group(2) for m in
                         re.finditer(r"^#([a-z_]+) = (.*)$", f.read(), re.M)}
        checked = 0
        for flag, text in serve_help_options().items():
            m = re.search(r"\(default (\w+)\)", text)
            key = flag[2:].replace("-", "_")
            if m and key in commented:
                self.assertEqual(commented[key], m.group(1), key)
                checked += 1
        self.assertGreaterEqual(checked, 5)

    def test_example_and_container_configurations_start_the_daemon(self):
        with open(EXAMPLE_CONF) as f:
            # Every setting but those naming files this machine has not got (TLS, the
            # worker token): their checks are tests/slurm/test_netns.py's.
            example = re.sub(r"^#((?!tls_|worker_token_file)[a-z_]+ = )", r"\1", f.read(),
                             flags=re.M)
        with open(DOCKER_CONF) as f:
            container = f.read()
        for name, text in (("example, every setting", example), ("container", container)):
            with self.subTest(name), tempfile.TemporaryDirectory() as tmp:
                d = Daemon(self.start(text, tmp), cwd=tmp)
                try:
                    status, _ = d.get("/api/v1/health")
                    self.assertEqual(status, 200)
                    self.assertEqual(d.stop(), 0)
                finally:
                    d.kill()

    def test_a_wrong_key_stops_the_daemon(self):
        with tempfile.TemporaryDirectory() as tmp:
            argv = self.start("listen = 127.0.0.1:0\nwrokers = 2\n", tmp)
            r = subprocess.run(argv, capture_output=True, text=True, env=CLEAN_ENV,
                               timeout=60)
            self.assertEqual(r.returncode, 2)
            self.assertIn("test.conf:2", r.stderr)
            self.assertIn("wrokers", r.stderr)


# ---- the daemon inside the unit's restrictions -----------------------------------------

PR_SET_MDWE, PR_GET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 66, 1
PROC_SELF = re.compile(r"^/proc/(self|thread-self)(/|$)")
# Read before a job starts (util/sysmem.c: will the net fit in memory?). ProcSubset=pid
# hides it under the unit; the daemon then skips that check and relies on MemoryMax.
PROC_PUBLIC = {"/proc/meminfo", "/proc/cpuinfo"}
PRIVATE_DEVICES = {"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom",
                   "/dev/tty", "/dev/ptmx", "/dev/shm", "/dev/stdin", "/dev/stdout",
                   "/dev/stderr"}


def syscall_groups():
    """{"@group": set of members (names or "@groups")} from systemd-analyze."""
    out = subprocess.run([tool("systemd-analyze"), "syscall-filter"], capture_output=True,
                         text=True, timeout=60).stdout
    groups, cur = {}, None
    for line in out.splitlines():
        if line.startswith("@"):
            cur = groups.setdefault(line.strip(), set())
        elif cur is not None and line.strip() and not line.strip().startswith("#"):
            cur.add(line.strip())
    return groups


def expand(groups, names):
    out = set()
    for name in names:
        out |= expand(groups, groups[name]) if name.startswith("@") else {name}
    return out


def allowed_syscalls(directives):
    """The calls SystemCallFilter= lines allow, applied in order as systemd does."""
    groups = syscall_groups()
    allowed = None
    for value in directives.get("SystemCallFilter", []):
        deny = value.startswith("~")
        names = expand(groups, value.lstrip("~").split())
        if allowed is None:
            if deny:
                raise AssertionError("the unit's system-call filter should be an allow list")
            allowed = names | expand(groups, ["@default"])
        elif deny:
            allowed -= names
        else:
            allowed |= names
    return allowed


class Trace:
    """System calls of a process tree, from `strace -f -o FILE`."""

    CALL = re.compile(r"^(\d+)\s+([a-z_0-9]+)\((.*)$")
    RESUMED = re.compile(r"^(\d+)\s+<\.\.\. ([a-z_0-9]+) resumed>(.*)$")
    UNFINISHED = " <unfinished ...>"

    def __init__(self, path):
        self.calls = []   # (pid, name, arguments and result)
        self.pids = set()
        pending = {}      # pid: index in calls of its unfinished call
        with open(path, errors="replace") as f:
            for line in f:
                line = line.rstrip("\n")
                m = self.CALL.match(line)
                if m:
                    pid, rest = int(m.group(1)), m.group(3)
                    if rest.endswith(self.UNFINISHED):
                        rest = rest[:-len(self.UNFINISHED)]
                        pending[pid] = len(self.calls)
                    self.calls.append((pid, m.group(2), rest))
                    self.pids.add(pid)
                    continue
                m = self.RESUMED.match(line)
                if m and int(m.group(1)) in pending:
                    i = pending.pop(int(m.group(1)))
                    pid, name, rest = self.calls[i]
                    self.calls[i] = (pid, name, rest + m.group(3))

    def names(self):
        return {name for _, name, _ in self.calls}

    def of(self, *names):
        return [(pid, rest) for pid, name, rest in self.calls if name in names]


def mdwe_supported():
    """True when the kernel has PR_SET_MDWE (Linux 6.3), tried in a child process."""
    r = subprocess.run(["/usr/bin/python3", "-c",
                        "import ctypes, sys; l = ctypes.CDLL(None);"
                        f"sys.exit(0 if l.prctl({PR_SET_MDWE}, {PR_MDWE_REFUSE_EXEC_GAIN},"
                        " 0, 0, 0) == 0 else 1)"], timeout=60)
    return r.returncode == 0


def nobody():
    """uid and gid to drop to when the tests run as root (the unit's DynamicUser)."""
    try:
        pw = pwd.getpwnam("nobody")
        return pw.pw_uid, pw.pw_gid
    except KeyError:
        return 65534, 65534


class Sandbox(unittest.TestCase):
    """Runs `initlab serve` through start-up, notifications, requests and SIGTERM, and
    `initlab train` through a small job (the same trainer, store, data cache and checkpoint
    code the daemon's workers run), both under strace and the kernel's W^X flag."""

    @classmethod
    def setUpClass(cls):
        cls.unit = unit_directives(UNIT)
        cls.work = tempfile.mkdtemp(prefix="initlab-sandbox-")
        os.chmod(cls.work, 0o755)
        cls.state = os.path.join(cls.work, "state")
        cls.data = os.path.join(cls.work, "data")
        demo = os.path.join(cls.data, "demo")
        r = run_initlab("demo-data", demo, "--classes", "2", "--per-class", "20", "--size",
                        "32")
        if r.returncode != 0:
            raise AssertionError(r.stderr)
        cls.uid, cls.gid = nobody() if os.geteuid() == 0 else (os.geteuid(), os.getegid())
        os.makedirs(cls.state)
        os.chown(cls.state, cls.uid, cls.gid)
        cls.mdwe = mdwe_supported()
        cls.notify_path = os.path.join(cls.work, "notify.sock")
        cls.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        cls.notify.bind(cls.notify_path)
        os.chmod(cls.notify_path, 0o777)
        cls.notify.settimeout(60)
        strace = tool("strace")

        def preexec():
            # The flag is inherited by strace and, across execve, by initlab.
            libc = ctypes.CDLL(None, use_errno=True)
            if cls.mdwe and (libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0 or
                             libc.prctl(PR_GET_MDWE, 0, 0, 0, 0) != PR_MDWE_REFUSE_EXEC_GAIN):
                raise OSError(ctypes.get_errno(), "prctl(PR_SET_MDWE)")
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(cls.gid)
                os.setuid(cls.uid)

        cls.serve_trace = os.path.join(cls.work, "serve.trace")
        cls.train_trace = os.path.join(cls.work, "train.trace")
        for path in (cls.serve_trace, cls.train_trace):
            open(path, "w").close()
            os.chown(path, cls.uid, cls.gid)
        env = {"NOTIFY_SOCKET": cls.notify_path, "WATCHDOG_USEC": "10000000",
               "JOURNAL_STREAM": "8:12345"}
        d = Daemon([strace, "-f", "-qq", "-s", "512", "-o", cls.serve_trace, BINARY,
                    "serve", "--listen", "127.0.0.1:0", "--state-dir", cls.state,
                    "--data-root", cls.data, "--web-dir", os.path.join(ROOT, "web")],
                   cwd=cls.work, env=env, preexec_fn=preexec, timeout=120)
        try:
            cls.messages = []
            while not ("READY=1" in cls.messages and "WATCHDOG=1" in cls.messages):
                cls.messages.append(cls.notify.recv(4096).decode())
            cls.statuses = [d.get(p)[0] for p in
                            ("/api/v1/health", "/api/v1/info", "/", "/metrics",
                             "/node_modules/echarts/dist/echarts.min.js")]
            cls.register = http_post_json(d.host, d.port, "/api/v1/datasets",
                                          {"name": "demo", "path": demo})[0]
            time.sleep(1.5)
            cls.serve_rc = d.stop(pid=d.child(), timeout=120)
        finally:
            d.kill()
        cls.serve_log = d.lines

        cls.train = run_tree(
            [strace, "-f", "-qq", "-s", "512", "-o", cls.train_trace, BINARY, "train",
             "--data", demo, "--model", "plain", "--init", "he_uniform", "--epochs", "1",
             "--image-size", "32", "--batch-size", "8", "--threads", "2", "--db",
             os.path.join(cls.state, "train.db")],
            600, cwd=cls.work, env=CLEAN_ENV, preexec_fn=preexec)
        cls.traces = {"serve": Trace(cls.serve_trace), "train": Trace(cls.train_trace)}

    @classmethod
    def tearDownClass(cls):
        cls.notify.close()
        shutil.rmtree(cls.work, ignore_errors=True)

    def test_runs_as_the_unit_would(self):
        self.assertIn("READY=1", self.messages)
        self.assertEqual(self.statuses, [200] * 5)
        self.assertLess(self.register, 500)
        self.assertEqual(self.serve_rc, 0, "\n".join(self.serve_log))
        self.assertEqual(self.train.returncode, 0, self.train.stderr)
        # Under the journal every line carries its syslog priority instead of a timestamp.
        self.assertTrue(self.serve_log)
        for line in self.serve_log:
            self.assertRegex(line, r"^<[3-7]>[a-z]+: ")

    def test_system_calls_pass_the_filter(self):
        allowed = allowed_syscalls(self.unit)
        self.assertIn("read", allowed)
        self.assertNotIn("fchown", allowed)
        for name, trace in self.traces.items():
            used = trace.names()
            self.assertIn("execve", used)
            self.assertEqual(sorted(used - allowed), [], name)

    def test_address_families_and_peers(self):
        # RestrictAddressFamilies=, and IPAddressAllow=localhost for every peer the daemon
        # talks to (the clients it accepts here all connect over loopback).
        families = set(self.unit["RestrictAddressFamilies"][0].split())
        peers = 0
        for name, trace in self.traces.items():
            for _, rest in trace.of("socket"):
                self.assertIn(rest.split(",")[0], families, name)
            for _, rest in trace.of("connect", "sendto", "sendmsg", "accept", "accept4"):
                for m in re.finditer(r"sin6?_addr=inet_(?:addr|pton)\((?:AF_INET6?, )?"
                                     r"\"([^\"]+)\"", rest):
                    self.assertIn(m.group(1), ("127.0.0.1", "::1"), name)
                    peers += 1
        self.assertGreater(peers, 0)

    def test_proc_and_dev_access(self):
        for name, trace in self.traces.items():
            for pid, rest in trace.of("open", "openat", "readlink", "readlinkat", "execve",
                                      "newfstatat", "stat", "access", "statx"):
                for path in re.findall(r"\"(/(?:proc|dev)(?:/[^\"]*)?)\"", rest):
                    if path.startswith("/proc"):
                        own = re.match(r"^/proc/(\d+)(/|$)", path)
                        self.assertTrue(PROC_SELF.match(path) or path in PROC_PUBLIC or
                                        (own and int(own.group(1)) in trace.pids),
                                        f"{name}: {path}")
                    else:
                        self.assertIn(path, PRIVATE_DEVICES, name)

    def test_writes_stay_in_the_state_directory(self):
        # ProtectSystem=strict: only the state directory and the private /tmp are writable.
        def writable(path):
            if path.startswith(self.state + "/") or path == self.state:
                return True
            if path.startswith(self.work + "/") or path == self.work:
                return False
            # ProtectSystem= leaves /proc writable (ProtectKernelTunables= closes /proc/sys
            # and the like): the daemon names its threads in /proc/self/task/TID/comm.
            if re.fullmatch(r"/proc/self/task/\d+/comm", path):
                return True
            return path.startswith(("/tmp/", "/var/tmp/")) or path in PRIVATE_DEVICES

        write_flags = re.compile(r"O_WRONLY|O_RDWR|O_CREAT|O_TRUNC")
        for name, trace in self.traces.items():
            seen = 0
            for pid, call, rest in trace.calls:
                paths = re.findall(r"\"([^\"]*)\"", rest)
                if call in ("open", "openat", "creat") and paths:
                    if call != "creat" and not write_flags.search(rest):
                        continue
                    targets = paths[:1]
                elif call in ("mkdir", "mkdirat", "rename", "renameat", "renameat2", "unlink",
                              "unlinkat", "rmdir", "link", "linkat", "symlink", "symlinkat",
                              "truncate", "chmod", "fchmodat", "utimensat"):
                    targets = paths
                else:
                    continue
                if "EEXIST" in rest:
                    continue
                for path in targets:
                    path = os.path.normpath(os.path.join(self.work, path))
                    seen += 1
                    self.assertTrue(writable(path), f"{name}: {call}({path})")
            self.assertGreater(seen, 0, name)

    def test_no_writable_executable_memory(self):
        # What MemoryDenyWriteExecute= forbids, as systemd's seccomp filter words it.
        for name, trace in self.traces.items():
            for _, rest in trace.of("mmap"):
                prot = (rest.split(",") + ["", "", ""])[2]
                self.assertFalse("PROT_WRITE" in prot and "PROT_EXEC" in prot, rest)
            for _, rest in trace.of("mprotect", "pkey_mprotect"):
                self.assertNotIn("PROT_EXEC", (rest.split(",") + ["", "", ""])[2], rest)
            self.assertFalse(trace.of("shmat"), name)

    def test_the_w_x_flag_bites(self):
        # The flag set as for the daemon (before exec) refuses a writable executable
        # mapping in the program exec'd after it, and only with the flag.
        if not self.mdwe:
            self.skipTest("kernel without PR_SET_MDWE (Linux < 6.3): only the trace is checked")

        def preexec():
            if ctypes.CDLL(None).prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
                raise OSError("prctl(PR_SET_MDWE)")
        code = ("import mmap, sys\n"
                "try:\n mmap.mmap(-1, 4096, prot=7)\nexcept PermissionError:\n sys.exit(3)\n")
        argv = ["/usr/bin/python3", "-c", code]
        self.assertEqual(subprocess.run(argv, preexec_fn=preexec, timeout=60).returncode, 3)
        self.assertEqual(subprocess.run(argv, timeout=60).returncode, 0)


NAMESPACE_SETUP = r"""
set -e
# Every mount read-only (ProtectSystem=strict), but the state directory.
sed -e 's/^[^ ]* [^ ]* [^ ]* [^ ]* \([^ ]*\) .*/\1/' /proc/self/mountinfo | sort -u |
while read -r mp; do
    case "$mp" in /proc|/proc/*|/sys|/sys/*|/dev|/dev/*) continue ;; esac
    mount -o remount,bind,ro "$mp" 2>/dev/null || [ "$mp" != / ]
done
mount --bind "$STATE" "$STATE"
mount -o remount,bind,rw "$STATE"
if touch "$STATE/../write-probe" 2>/dev/null; then echo "sandbox: not read-only" >&2; exit 99; fi
# Only the service's own processes, and of /proc nothing else (ProtectProc=invisible,
# ProcSubset=pid).
mount -t proc -o hidepid=invisible,subset=pid proc /proc
test ! -e /proc/cpuinfo
cd "$STATE"
exec setpriv --reuid="$RUN_UID" --regid="$RUN_GID" --clear-groups --no-new-privs \
     --bounding-set=-all --inh-caps=-all "$@"
"""


class Namespaces(unittest.TestCase):
    """The daemon in a mount namespace with the unit's file-system view: everything
    read-only but the state directory, /proc mounted hidepid=invisible,subset=pid; as an
    unprivileged user without capabilities and with no_new_privs; as PID 1 of its own PID
    namespace, as in a container. It must still re-execute itself through /proc/self/exe to
    choose the OpenBLAS core, serve, stop on SIGTERM with status 0, and train."""

    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.mkdtemp(prefix="initlab-ns-")
        os.chmod(cls.work, 0o755)
        cls.state = os.path.join(cls.work, "state")
        cls.data = os.path.join(cls.work, "data")
        os.makedirs(cls.state)
        cls.uid, cls.gid = nobody()
        os.chown(cls.state, cls.uid, cls.gid)
        cls.demo = os.path.join(cls.data, "demo")
        r = run_initlab("demo-data", cls.demo, "--classes", "2", "--per-class", "12",
                        "--size", "32")
        if r.returncode != 0:
            raise AssertionError(r.stderr)
        info = run_initlab("info", "--json", "--size", "64")
        cls.blas = json.loads(info.stdout)["blas"]

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.work, ignore_errors=True)

    def setUp(self):
        if os.geteuid() != 0:
            self.skipTest("mount namespaces need root")

    def argv(self, *command):
        return [tool("unshare"), "--mount", "--pid", "--fork", "--propagation", "private",
                "/bin/sh", "-c", NAMESPACE_SETUP, "sandbox", BINARY, *command]

    def env(self):
        return {"STATE": self.state, "RUN_UID": str(self.uid), "RUN_GID": str(self.gid)}

    def test_serves_and_stops_as_pid_1(self):
        d = Daemon(self.argv("serve", "--listen", "127.0.0.1:0", "--state-dir", self.state,
                             "--data-root", self.data, "--web-dir",
                             os.path.join(ROOT, "web")),
                   cwd=self.work, env=self.env(), timeout=120)
        try:
            status, body = d.get("/api/v1/info")
            self.assertEqual(status, 200, d.log())
            # The same core chosen the same way as outside: the re-execution worked.
            blas = json.loads(body)["blas"]
            self.assertEqual((blas["core"], blas["source"]),
                             (self.blas["core"], self.blas["source"]))
            self.assertEqual(d.get("/")[0], 200)
            self.assertEqual(d.stop(pid=d.child(), timeout=120), 0, d.log())
        finally:
            d.kill()
        self.assertNotIn("error", d.log())

    def test_trains(self):
        r = run_tree(self.argv("train", "--data", self.demo, "--model", "plain", "--init",
                               "glorot_uniform", "--epochs", "1", "--image-size", "32",
                               "--batch-size", "8", "--threads", "2", "--db",
                               os.path.join(self.state, "train.db")),
                     600, cwd=self.work, env=dict(CLEAN_ENV, **self.env()))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertTrue(os.path.exists(os.path.join(self.state, "jobs", "1", "latest.ckpt")))
        # Nothing could be written outside the state directory.
        self.assertEqual(sorted(os.listdir(self.work)), ["data", "state"])


# ---- the container files -----------------------------------------------------------------

def dockerfile_instructions(path):
    """[(stage index, INSTRUCTION, argument text)] with continuation lines joined."""
    out, stage, buf = [], -1, ""
    with open(path) as f:
        for raw in f:
            line = raw.rstrip("\n")
            if not buf and (not line.strip() or line.lstrip().startswith("#")):
                continue
            if line.endswith("\\"):
                buf += line[:-1] + " "
                continue
            line = buf + line
            buf = ""
            if line.lstrip().startswith("#"):
                continue
            word, _, arg = line.strip().partition(" ")
            word = word.upper()
            if word == "FROM":
                stage += 1
            out.append((stage, word, arg.strip()))
    return out


class Container(unittest.TestCase):
    """The image is not built here (no Docker engine): these check the files' form and
    run the parts that can run without Docker."""

    @classmethod
    def setUpClass(cls):
        cls.ins = dockerfile_instructions(DOCKERFILE)
        cls.last = max(stage for stage, _, _ in cls.ins)

    def final(self, word):
        return [arg for stage, w, arg in self.ins if stage == self.last and w == word]

    def test_two_stages_on_debian_12(self):
        froms = [arg for _, w, arg in self.ins if w == "FROM"]
        self.assertEqual(len(froms), 2)
        self.assertRegex(froms[0], r"^debian:12\s+AS\s+build$")
        self.assertEqual(froms[1], "debian:12-slim")

    def test_portable_code(self):
        args = [arg for _, w, arg in self.ins if w == "ARG" and arg.startswith("ARCH=")]
        self.assertEqual(len(args), 1)
        self.assertNotIn("native", args[0])
        makes = [cmd for _, w, arg in self.ins if w == "RUN" for cmd in arg.split("&&")
                 if re.match(r"\s*make\s", cmd)]
        self.assertEqual(len(makes), 2)
        for cmd in makes:
            self.assertIn('ARCH="$ARCH"', cmd)

    def runtime_packages(self):
        pkgs = set()
        for run in self.final("RUN"):
            m = re.search(r"apt-get install ([^&]*)", run)
            if m:
                pkgs |= {w for w in m.group(1).split() if not w.startswith("-")}
        return pkgs

    def test_runtime_packages_provide_the_binary_libraries(self):
        pkgs = self.runtime_packages()
        self.assertFalse({p for p in pkgs if p.endswith("-dev")})
        needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]",
                            subprocess.run([tool("readelf"), "-d", BINARY],
                                           capture_output=True, text=True).stdout)
        self.assertIn("libopenblas.so.0", needed)
        found = subprocess.run([shutil.which("ldconfig") or "/sbin/ldconfig", "-p"],
                               capture_output=True, text=True).stdout
        for soname in needed:
            m = re.search(r"\s" + re.escape(soname) + r" \(libc6,x86-64\) => (\S+)", found)
            self.assertIsNotNone(m, soname)
            real = os.path.realpath(m.group(1))
            owner = None
            for candidate in (real, re.sub(r"^/usr/lib/", "/lib/", real)):
                r = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True)
                if r.returncode == 0:
                    owner = r.stdout.split(":")[0]
                    break
            self.assertIsNotNone(owner, soname)
            self.assertTrue(owner in pkgs or owner == "libc6", f"{soname} needs {owner}")

    def test_user_volume_port_signal_entrypoint(self):
        users = self.final("USER")
        self.assertEqual(len(users), 1)
        self.assertNotIn(users[0].split(":")[0], ("root", "0"))
        self.assertEqual(self.final("VOLUME"), ["/var/lib/initlab"])
        self.assertEqual(self.final("EXPOSE"), ["8470"])
        self.assertEqual(self.final("STOPSIGNAL"), ["SIGTERM"])
        entry = json.loads(self.final("ENTRYPOINT")[0])
        self.assertEqual(entry[:2], ["/usr/local/bin/initlab", "serve"])
        conf = parse_conf(DOCKER_CONF)
        self.assertEqual(conf["listen"], "0.0.0.0:8470")
        self.assertEqual(conf["state_dir"], "/var/lib/initlab")
        self.assertEqual(entry[2:], ["--config", "/etc/initlab/initlab.conf"])

    def test_copied_files_exist(self):
        # COPY --from=build paths are where `make install DESTDIR=/out PREFIX=/usr/local`
        # puts things; the others are in the build context and not in .dockerignore.
        with open(os.path.join(ROOT, ".dockerignore")) as f:
            ignored = [line.strip() for line in f if line.strip() and line[0] != "#"]
        with tempfile.TemporaryDirectory() as dest:
            r = make_install(dest)
            self.assertEqual(r.returncode, 0, r.stderr)
            for _, w, arg in self.ins:
                if w != "COPY":
                    continue
                words = arg.split()
                if words[0].startswith("--from=build"):
                    src = words[1]
                    self.assertTrue(src.startswith("/out/"), src)
                    self.assertTrue(os.path.exists(os.path.join(dest, src[len("/out/"):])),
                                    src)
                else:
                    for src in words[:-1]:
                        if src == ".":
                            continue
                        self.assertTrue(os.path.exists(os.path.join(ROOT, src)), src)
                        self.assertNotIn(src.split("/")[0], ignored, src)
        for pattern in ("build", "initlab", "**/node_modules", "state"):
            self.assertIn(pattern, ignored)

    def test_healthcheck_command_against_a_daemon(self):
        arg = [a for _, w, a in self.ins if w == "HEALTHCHECK"][0]
        cmd = json.loads(arg[arg.index("CMD") + 3:].strip())
        self.assertIn("/api/v1/health", " ".join(cmd))
        self.assertIn("/dev/tcp/127.0.0.1/8470", cmd[-1])
        with tempfile.TemporaryDirectory() as tmp:
            token = os.path.join(tmp, "token")
            with open(os.open(token, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
                f.write("0123456789abcdef0123\n")
            d = Daemon([BINARY, "serve", "--listen", "127.0.0.1:0", "--state-dir",
                        os.path.join(tmp, "state"), "--token-file", token], cwd=tmp)
            try:
                port = str(d.port)
                live = [c.replace("8470", port) for c in cmd]
                r = subprocess.run(live, capture_output=True, text=True, timeout=30)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(d.stop(), 0)
                r = subprocess.run(live, capture_output=True, text=True, timeout=30)
                self.assertNotEqual(r.returncode, 0)
            finally:
                d.kill()
        # A server that answers something other than 200 is unhealthy too.
        with socket.socket() as srv:
            srv.bind(("127.0.0.1", 0))
            srv.listen(1)
            live = [c.replace("8470", str(srv.getsockname()[1])) for c in cmd]

            def answer():
                conn, _ = srv.accept()
                conn.recv(4096)
                conn.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
                conn.close()
            t = threading.Thread(target=answer)
            t.start()
            r = subprocess.run(live, capture_output=True, text=True, timeout=30)
            t.join()
            self.assertNotEqual(r.returncode, 0)

    def test_compose_file(self):
        import yaml
        with open(COMPOSE) as f:
            doc = yaml.safe_load(f)
        svc = doc["services"]["initlab"]
        here = os.path.dirname(COMPOSE)
        context = os.path.normpath(os.path.join(here, svc["build"]["context"]))
        self.assertEqual(context, ROOT)
        self.assertEqual(os.path.join(context, svc["build"]["dockerfile"]), DOCKERFILE)
        conf = parse_conf(DOCKER_CONF)
        mounts = {v["target"]: v for v in svc["volumes"]}
        data = mounts[conf["data_root"]]
        self.assertEqual(data["type"], "bind")
        self.assertIs(data["read_only"], True)
        state = mounts[conf["state_dir"]]
        self.assertEqual(state["type"], "volume")
        self.assertIn(state["source"], doc["volumes"])
        self.assertTrue(all(p.startswith("127.0.0.1:") for p in svc["ports"]))
        secret = svc["secrets"][0]
        self.assertIn(secret, doc["secrets"])
        self.assertEqual(svc["command"], ["--token-file", f"/run/secrets/{secret}"])
        grace = int(re.fullmatch(r"(\d+)s", svc["stop_grace_period"]).group(1))
        stop = int(re.fullmatch(r"(\d+)s", unit_directives(UNIT)["TimeoutStopSec"][0])
                   .group(1))
        self.assertGreaterEqual(grace, stop)


if __name__ == "__main__":
    unittest.main()
