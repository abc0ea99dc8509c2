"""daemon.py — runs a real `initlab serve` for the API tests and talks HTTP to it.

Daemon starts the binary (./initlab, or $INITLAB_BIN, e.g. ./initlab-asan) with
`--listen 127.0.0.1:0`, a temporary state directory and a temporary web directory, reads the
bound port from the "listening on http://HOST:PORT/" log line, waits for /api/v1/health,
and on stop() sends SIGTERM and returns the exit status. A daemon whose log holds a report of
AddressSanitizer, LeakSanitizer or UndefinedBehaviorSanitizer (the sanitizer build) fails the
test that closes it. The harness does not build anything: `make` first."""
import atexit
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.path.abspath(os.environ.get("INITLAB_BIN", os.path.join(ROOT, "initlab")))
LISTENING = re.compile(r"listening on https?://(\[[0-9a-fA-F:.]+\]|[0-9.]+):(\d+)/")
SECRET_MARKER = "initlab-secret-outside-web-dir"
# Lines that begin a sanitizer's report in the daemon's log.
SANITIZER_REPORT = re.compile(r"ERROR: (?:Address|Leak)Sanitizer|runtime error: |"
                              r"SUMMARY: UndefinedBehaviorSanitizer")

DEFAULT_WEB = {
    "index.html": "<!doctype html><title>initlab</title><h1>initlab test index</h1>\n",
}


# A JSON token: a string (skipped whole) or a number literal.
JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)')
# Real literals checked by every JSON response so far: the number check must have work.
numbers_checked = 0


def noisy_numbers(text):
    """The real literals of JSON text that are not written as the shortest decimal of
    their double, as Python's repr() writes it ("0.59999999999999998", "1e-5", "2")."""
    global numbers_checked
    bad = []
    for m in JSON_TOKEN.finditer(text):
        literal = m.group(1)
        if literal and any(c in literal for c in ".eE"):
            numbers_checked += 1
            if repr(float(literal)) != literal:
                bad.append(literal)
    return bad


class Response:
    """One HTTP response: status, headers (case-insensitive), body bytes. A JSON body whose
    numbers are not in their shortest form fails the request at once (AssertionError)."""

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body
        if self.content_type.endswith("json"):
            bad = noisy_numbers(body.decode("utf-8", "replace"))
            if bad:
                raise AssertionError(f"numbers not in shortest form {bad[:5]} in {body[:300]!r}")

    def header(self, name):
        return self.headers.get(name)

    @property
    def content_type(self):
        return (self.headers.get("Content-Type") or "").split(";")[0].strip()

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return f"<Response {self.status} {self.content_type} {self.body[:200]!r}>"


_running = set()


@atexit.register
def _stop_leftovers():
    """Stops daemons a failed setUp never got to close (no orphans after the run)."""
    for d in list(_running):
        try:
            d.close()
        except AssertionError as e:
            print(e, file=sys.stderr)


def free_port(host="127.0.0.1"):
    """A port that was free a moment ago (the kernel may hand it out again; good enough)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class Daemon:
    """A running `initlab serve`; use as a context manager or call start()/close()."""

    def __init__(self, args=(), env=None, web=None, token=None, listen="127.0.0.1:0",
                 log_level="info", startup_timeout=60, state_dir=None):
        """state_dir: a state directory to use (and keep) instead of a temporary one, so
        that a second daemon can start on the first one's database."""
        self.args = list(args)
        self.given_state_dir = state_dir
        self.extra_env = dict(env or {})
        self.web_files = dict(DEFAULT_WEB if web is None else web)
        self.token = token
        self.listen = listen
        self.log_level = log_level
        self.startup_timeout = startup_timeout
        self.proc = None
        self.host = None
        self.port = None
        self.lines = []
        self._lines_lock = threading.Lock()
        self._listening = threading.Event()
        self._reader = None
        self._reported = False
        self.tmp = None

    # ---- lifecycle -------------------------------------------------------------------

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.close()

    def _write_web(self):
        self.web_dir = os.path.join(self.tmp, "web")
        os.makedirs(self.web_dir)
        for rel, content in self.web_files.items():
            path = os.path.join(self.web_dir, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            mode = "wb" if isinstance(content, bytes) else "w"
            with open(path, mode) as f:
                f.write(content)
        # A file outside the web directory that no request may ever reach.
        self.secret_path = os.path.join(self.tmp, "secret.txt")
        with open(self.secret_path, "w") as f:
            f.write(SECRET_MARKER + "\n")

    def command(self):
        cmd = [BINARY, "serve", "--listen", self.listen, "--state-dir", self.state_dir,
               "--web-dir", self.web_dir, "--log-level", self.log_level]
        if self.token is not None:
            cmd += ["--token-file", self.token_file]
        return cmd + self.args

    def start(self):
        self.tmp = tempfile.mkdtemp(prefix="initlab-api-")
        self.state_dir = self.given_state_dir or os.path.join(self.tmp, "state")
        self._write_web()
        if self.token is not None:
            self.token_file = os.path.join(self.tmp, "token")
            with open(os.open(self.token_file, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
                f.write("\n  " + self.token + "  \n")
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("NOTIFY_SOCKET", "WATCHDOG_", "JOURNAL_STREAM"))}
        env.update(self.extra_env)
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     env=env, cwd=self.tmp)
        _running.add(self)
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + self.startup_timeout
        while not self._listening.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError("initlab serve did not start:\n" + self.log())
        while True:
            try:
                if self.request("GET", "/api/v1/health", token=None).status == 200:
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.close()
                raise RuntimeError("/api/v1/health never answered:\n" + self.log())
            time.sleep(0.05)

    def _read_stderr(self):
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self._lines_lock:
                self.lines.append(line)
            m = LISTENING.search(line)
            if m and not self._listening.is_set():
                self.host = m.group(1).strip("[]")
                self.port = int(m.group(2))
                self._listening.set()

    def log(self):
        """Everything the daemon wrote on stderr so far."""
        time.sleep(0.05)
        with self._lines_lock:
            return "\n".join(self.lines)

    def stop(self, sig=signal.SIGTERM, timeout=20):
        """Sends sig and waits; returns the exit status (negative: killed by a signal)."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def sanitizer_report(self):
        """The log from the first sanitizer report on, or "" when there is none."""
        with self._lines_lock:
            for i, line in enumerate(self.lines):
                if SANITIZER_REPORT.search(line):
                    return "\n".join(self.lines[i:i + 60])
        return ""

    def close(self):
        """Stops the daemon and removes its files; raises AssertionError when its log holds
        a sanitizer report."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.stop()
            except subprocess.TimeoutExpired:
                pass
        if self.proc is not None and self.proc.stderr is not None:
            self._reader.join(10)
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None
        _running.discard(self)
        report = self.sanitizer_report()
        if report and not self._reported:
            self._reported = True
            raise AssertionError("the daemon's sanitizer found a defect:\n" + report)

    # ---- HTTP ------------------------------------------------------------------------

    @property
    def host_header(self):
        """The Host the daemon answers to: its bound address."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def connection(self, timeout=30):
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, token="default", timeout=30):
        """Sends one request on a new connection. token "default" sends the daemon's token
        (if it has one), None sends no Authorization header, a string sends that token. A
        body (a dict or list is sent as JSON, bytes as they are) goes out as
        application/json, as the API wants it, unless headers name another Content-Type or
        None for none."""
        hdrs = dict(headers or {})
        if token == "default":
            token = self.token
        if token is not None:
            hdrs["Authorization"] = "Bearer " + token
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        if body is not None:
            hdrs.setdefault("Content-Type", "application/json")
        hdrs = {k: v for k, v in hdrs.items() if v is not None}
        conn = self.connection(timeout)
        try:
            conn.request(method, path, body=body, headers=hdrs)
            r = conn.getresponse()
            data = r.read()
            return Response(r.status, r.headers, data)
        finally:
            conn.close()

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def raw(self, data, timeout=10, read_all=True):
        """Sends raw bytes on a new connection and returns what came back (until the peer
        closes, the timeout passes, or — with read_all False — the first response head)."""
        with socket.create_connection((self.host, self.port), timeout=timeout) as s:
            try:
                s.sendall(data)
            except OSError:
                pass
            chunks = []
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    b = s.recv(65536)
                except socket.timeout:
                    break
                except OSError:
                    break
                if not b:
                    break
                chunks.append(b)
                if not read_all and b"\r\n\r\n" in b"".join(chunks):
                    break
            return b"".join(chunks)


def parse_raw_response(data):
    """Splits raw response bytes into (status, headers dict lower-case, body)."""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    if not lines or not lines[0].startswith("HTTP/"):
        return None, {}, data
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, body
