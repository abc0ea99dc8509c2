"""test_server.py — the HTTP side of `initlab serve` against a real daemon: system routes,
the OpenAPI document, errors as problem+json, static files and path traversal, the token,
CORS, Host names and cross-origin writes, body limits, malformed input and framing, event
streams, admission under held connections, slow clients, signals and the systemd
protocol."""
import json
import os
import re
import resource
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from daemon import BINARY, ROOT, SECRET_MARKER, Daemon, free_port, parse_raw_response

# Every route issue 7 asks for (method, path as written in the OpenAPI document).
ISSUE7_ROUTES = {
    ("get", "/api/v1/health"), ("get", "/api/v1/info"),
    ("get", "/api/v1/models"), ("get", "/api/v1/models/{name}"),
    ("get", "/api/v1/initializers"), ("get", "/api/v1/presets"),
    ("post", "/api/v1/datasets"), ("get", "/api/v1/datasets"), ("get", "/api/v1/datasets/{name}"),
    ("post", "/api/v1/jobs"), ("post", "/api/v1/grids"), ("get", "/api/v1/jobs"),
    ("get", "/api/v1/jobs/{id}"), ("post", "/api/v1/jobs/{id}/cancel"),
    ("post", "/api/v1/jobs/{id}/retry"), ("delete", "/api/v1/jobs/{id}"),
    ("get", "/api/v1/jobs/{id}/epochs"), ("get", "/api/v1/jobs/{id}/stats"),
    ("get", "/api/v1/jobs/{id}/histograms"), ("get", "/api/v1/jobs/{id}/results"),
    ("get", "/api/v1/grids/{id}/summary"), ("get", "/api/v1/events"), ("get", "/metrics"),
    ("get", "/api/v1/openapi.json"),
}

MAX_BODY = 65536
TOKEN = "t0k3n-Abcdefghijklmnop-0123456789"

WEB = {
    "index.html": "<!doctype html><title>initlab</title><h1>initlab test index</h1>\n",
    "app.js": "console.log('app');\n",
    "mod.mjs": "export const x = 1;\n",
    "style.css": "body { margin: 0 }\n",
    "data.json": "{\"a\": 1}\n",
    "icon.svg": "<svg xmlns='http://www.w3.org/2000/svg'/>\n",
    "img.png": b"\x89PNG\r\n\x1a\n" + bytes(16),
    "favicon.ico": bytes(8),
    "app.js.map": "{\"version\": 3}\n",
    "font.woff2": b"wOF2" + bytes(12),
    "notes.txt": "plain text\n",
    "sub/index.html": "<p>sub index</p>\n",
    "sub/page.html": "<p>sub page</p>\n",
}

EXPECTED_MIME = {
    "/index.html": "text/html", "/app.js": "text/javascript", "/mod.mjs": "text/javascript",
    "/style.css": "text/css", "/data.json": "application/json", "/icon.svg": "image/svg+xml",
    "/img.png": "image/png", "/favicon.ico": "image/vnd.microsoft.icon",
    "/app.js.map": "application/json", "/font.woff2": "font/woff2", "/notes.txt": "text/plain",
}


def assert_problem(tc, r, status, path=None):
    tc.assertEqual(r.status, status, r)
    tc.assertEqual(r.content_type, "application/problem+json", r)
    p = r.json()
    tc.assertEqual(p["status"], status)
    tc.assertEqual(p["type"], "about:blank")
    tc.assertIsInstance(p["title"], str)
    tc.assertTrue(p["title"])
    if path is not None:
        tc.assertEqual(p["instance"], path)
    return p


def openapi_operations(doc):
    methods = {"get", "post", "put", "delete", "patch", "head", "options"}
    return {(m, p) for p, item in doc["paths"].items() for m in item if m in methods}


class ServerTest(unittest.TestCase):
    """One daemon without a token, shared by the read-only checks."""

    @classmethod
    def setUpClass(cls):
        cls.d = Daemon(args=["--max-body", str(MAX_BODY)], web=WEB)
        cls.d.start()
        os.symlink(cls.d.secret_path, os.path.join(cls.d.web_dir, "link-out.txt"))

    @classmethod
    def tearDownClass(cls):
        cls.status = cls.d.stop()
        cls.d.close()

    def test_health(self):
        r = self.d.get("/api/v1/health")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.content_type, "application/json")
        self.assertEqual(r.json(), {"status": "ok"})
        self.assertEqual(r.header("Cache-Control"), "no-store")
        self.assertEqual(r.header("X-Content-Type-Options"), "nosniff")

    def test_head_has_no_body(self):
        r = self.d.request("HEAD", "/api/v1/health")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, b"")

    def test_info_fields(self):
        with open(os.path.join(ROOT, "VERSION")) as f:
            version = f.read().strip()
        # initlab names the CPU as the kernel does (/proc/cpuinfo's "model name", what
        # lscpu shows); CPUID's brand string may differ (a hypervisor rewrites it) and
        # serves only where the kernel gives no name. `initlab info` shows both.
        model = None
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and value.strip():
                    model = value.strip()
                    break
        out = subprocess.run([BINARY, "info", "--json", "--size", "64"], capture_output=True,
                             text=True, timeout=300)
        self.assertEqual(out.returncode, 0, out.stderr)
        cli_cpu = json.loads(out.stdout)["cpu"]
        info = self.d.get("/api/v1/info").json()
        self.assertEqual(info["version"], version)
        self.assertEqual(info["cpu"]["model"], model if model else cli_cpu["brand"])
        self.assertEqual(info["cpu"]["model"], cli_cpu["model"])
        self.assertTrue(info["blas"]["core"])
        self.assertIn(info["blas"]["source"], {"cpuid", "environment", "fallback", "default"})
        self.assertEqual(info["workers"], 1)
        self.assertEqual(info["threads_per_job"], os.cpu_count())
        self.assertEqual(info["max_body"], MAX_BODY)
        self.assertIs(info["auth"], False)
        self.assertIn("queue_depth", info)
        t0 = info["uptime_seconds"]
        self.assertGreaterEqual(t0, 0)
        time.sleep(0.3)
        self.assertGreater(self.d.get("/api/v1/info").json()["uptime_seconds"], t0 + 0.25)
        started = time.mktime(time.strptime(info["started_at"], "%Y-%m-%dT%H:%M:%SZ")) \
            - time.timezone
        self.assertLess(abs(started - (time.time() - t0)), 5)

    def test_openapi_parses_and_lists_issue_routes(self):
        r = self.d.get("/api/v1/openapi.json")
        self.assertEqual(r.status, 200)
        doc = r.json()
        with open(os.path.join(ROOT, "daemon/api/openapi.json"), "rb") as f:
            self.assertEqual(r.body, f.read(), "the served document is not the source file")
        self.assertTrue(doc["openapi"].startswith("3.1"))
        missing = ISSUE7_ROUTES - openapi_operations(doc)
        self.assertFalse(missing, f"routes of issue 7 missing from the OpenAPI document: {missing}")

    def test_openapi_is_consistent(self):
        doc = self.d.get("/api/v1/openapi.json").json()

        def resolve(ref):
            node = doc
            for part in ref.lstrip("#/").split("/"):
                node = node[part]
            return node

        def walk(node, where):
            if isinstance(node, dict):
                if "$ref" in node:
                    try:
                        resolve(node["$ref"])
                    except KeyError:
                        self.fail(f"{where}: unresolved $ref {node['$ref']}")
                for k, v in node.items():
                    walk(v, f"{where}/{k}")
            elif isinstance(node, list):
                for i, v in enumerate(node):
                    walk(v, f"{where}/{i}")

        walk(doc, "#")
        ids = []
        for method, path in openapi_operations(doc):
            op = doc["paths"][path][method]
            ids.append(op["operationId"])
            self.assertTrue(op["responses"], f"{method} {path} has no responses")
            declared = {(p if "$ref" not in p else resolve(p["$ref"]))["name"]
                        for p in op.get("parameters", []) + doc["paths"][path].get("parameters", [])
                        if (p if "$ref" not in p else resolve(p["$ref"]))["in"] == "path"}
            self.assertEqual(declared, set(re.findall(r"{(\w+)}", path)), f"{method} {path}")
        self.assertEqual(len(ids), len(set(ids)), "operationIds are not unique")

    def test_openapi_operations_are_routed(self):
        """Every documented operation reaches a handler: neither the router's 404 nor 405."""
        doc = self.d.get("/api/v1/openapi.json").json()
        for method, path in sorted(openapi_operations(doc)):
            url = re.sub(r"{\w+}", "1", path)
            if method == "get" and path == "/api/v1/events":
                r = self.d.raw(b"HEAD /api/v1/events HTTP/1.1\r\nHost: localhost\r\n\r\n",
                               read_all=False)
                status, _, _ = parse_raw_response(r)
                routed = status == 200
            else:
                r = self.d.request(method.upper(), url, body=b"{}" if method == "post" else None)
                unrouted_404 = r.status == 404 and r.content_type == "application/problem+json" \
                    and r.json().get("detail", "").startswith("no API route")
                routed = not unrouted_404 and r.status != 405
            self.assertTrue(routed, f"{method.upper()} {url} is documented but not routed")

    def test_unknown_api_path_is_404_problem(self):
        for path in ["/api/v1/nope", "/api/v2/health", "/api", "/api/", "/api/v1/health/extra",
                     "/api/v1//health"]:
            with self.subTest(path=path):
                p = assert_problem(self, self.d.get(path), 404, path)
                self.assertIn(path, p["detail"])

    def test_wrong_method_is_405_with_allow(self):
        for method, path in [("POST", "/api/v1/health"), ("DELETE", "/api/v1/info"),
                             ("PUT", "/api/v1/openapi.json"), ("POST", "/metrics")]:
            with self.subTest(method=method, path=path):
                r = self.d.request(method, path)
                assert_problem(self, r, 405, path)
                allow = {m.strip() for m in r.header("Allow").split(",")}
                self.assertEqual(allow, {"GET", "HEAD"})

    def test_metrics_count_requests_by_status(self):
        def count(text, code):
            m = re.search(r'^initlab_http_requests_total\{class="%dxx",code="%d"\} (\d+)$'
                          % (code // 100, code), text, re.M)
            return int(m.group(1)) if m else 0

        r = self.d.get("/metrics")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.content_type, "text/plain")
        self.assertIn("version=0.0.4", r.header("Content-Type"))
        before = r.body.decode()
        for _ in range(3):
            self.d.get("/api/v1/no-such-route")
        after = self.d.get("/metrics").body.decode()
        self.assertEqual(count(after, 404), count(before, 404) + 3)
        self.assertGreaterEqual(count(after, 200), count(before, 200) + 1)
        for line in after.splitlines():
            if line and not line.startswith("#"):
                self.assertRegex(line, r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? '
                                       r'(?:[-+]?[0-9.]+(?:[eE][-+]?[0-9]+)?|NaN|[+-]Inf)$')
        self.assertRegex(after, r'(?m)^initlab_build_info\{version="[^"]+"\} 1$')
        self.assertRegex(after, r"(?m)^# TYPE initlab_http_request_duration_seconds histogram$")

    def test_static_index_and_files(self):
        r = self.d.get("/")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body.decode(), WEB["index.html"])
        self.assertEqual(r.content_type, "text/html")
        self.assertEqual(self.d.get("/sub/").body.decode(), WEB["sub/index.html"])
        self.assertEqual(self.d.get("/sub/page.html").body.decode(), WEB["sub/page.html"])
        r = self.d.get("/sub")
        self.assertEqual(r.status, 301)
        self.assertEqual(r.header("Location"), "/sub/")
        self.assertEqual(self.d.get("/img.png").body, WEB["img.png"])

    def test_static_mime_types(self):
        for path, mime in EXPECTED_MIME.items():
            with self.subTest(path=path):
                r = self.d.get(path)
                self.assertEqual(r.status, 200)
                self.assertEqual(r.content_type, mime)
                self.assertEqual(r.header("Cache-Control"), "no-cache")

    def test_static_etag_revalidation(self):
        r = self.d.get("/app.js")
        etag = r.header("ETag")
        self.assertTrue(etag)
        r2 = self.d.get("/app.js", headers={"If-None-Match": etag})
        self.assertEqual(r2.status, 304)
        self.assertEqual(r2.body, b"")
        self.assertEqual(self.d.get("/app.js", headers={"If-None-Match": '"other"'}).status, 200)

    def test_static_missing_is_404_problem(self):
        assert_problem(self, self.d.get("/missing.js"), 404, "/missing.js")
        assert_problem(self, self.d.get("/sub/missing/"), 404)

    def test_static_other_methods_405(self):
        r = self.d.request("POST", "/index.html", body=b"x")
        assert_problem(self, r, 405)
        self.assertEqual(r.header("Allow"), "GET, HEAD")

    def test_path_traversal_never_leaves_web_dir(self):
        attempts = [
            "/../secret.txt", "/%2e%2e/secret.txt", "/%2E%2E/secret.txt", "/..%2fsecret.txt",
            "/..%2Fsecret.txt", "/%2e%2e%2fsecret.txt", "/sub/../../secret.txt",
            "/sub/%2e%2e/%2e%2e/secret.txt", "/./../secret.txt", "/..", "/sub/..",
            "/..\\secret.txt", "/%5c..%5csecret.txt", "/..%5csecret.txt",
            "/link-out.txt", "//secret.txt", "//etc/passwd", "/%2fetc%2fpasswd",
            "/index.html%00.png", "/%00", "/../../../../../../etc/passwd",
            "/%252e%252e/secret.txt", "/etc/passwd", "/proc/self/environ",
            "/%c0%ae%c0%ae/secret.txt",
        ]
        for path in attempts:
            for target in (path, "http://127.0.0.1" + path):  # origin and absolute form
                with self.subTest(target=target):
                    raw = self.d.raw(b"GET " + target.encode() + b" HTTP/1.1\r\nHost: localhost\r\n"
                                     b"Connection: close\r\n\r\n")
                    status, headers, body = parse_raw_response(raw)
                    self.assertNotIn(SECRET_MARKER.encode(), raw)
                    self.assertNotIn(b"root:", body)
                    self.assertIn(status, (400, 404), raw[:300])

    def test_oversize_content_length_is_413(self):
        for length in (MAX_BODY + 1, 10**12, 2**64 - 1):
            with self.subTest(length=length):
                raw = self.d.raw(b"POST /api/v1/jobs HTTP/1.1\r\nHost: localhost\r\n"
                                 b"Content-Type: application/json\r\n"
                                 b"Content-Length: %d\r\n\r\n{\"model\":" % length, timeout=10)
                status, headers, body = parse_raw_response(raw)
                self.assertEqual(status, 413, raw[:300])
                p = json.loads(body)
                self.assertEqual(p["status"], 413)
                self.assertEqual(p["field"], "body")
                self.assertIn(str(MAX_BODY), p["detail"])

    def test_oversize_chunked_body_is_413(self):
        chunk = b"x" * 8192
        body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk)
                        for _ in range(2 * MAX_BODY // len(chunk))) + b"0\r\n\r\n"
        raw = self.d.raw(b"POST /api/v1/jobs HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                         b"Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"
                         + body, timeout=20)
        status, _, body = parse_raw_response(raw)
        self.assertEqual(status, 413, raw[:300])
        self.assertEqual(json.loads(body)["status"], 413)

    def test_body_within_limit_is_read(self):
        r = self.d.request("POST", "/api/v1/health", body=b"x" * (MAX_BODY - 1))
        assert_problem(self, r, 405)

    def test_malformed_http_leaves_daemon_answering(self):
        garbage = [
            b"\x00\xff\xfe garbage \r\n\r\n", b"GET\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n",
            b"G\x00T / HTTP/1.1\r\nHost: localhost\r\n\r\n", b"GET / HTTP/1.1\r\nHost x\r\n\r\n",
            b"POST /api/v1/jobs HTTP/1.1\r\nHost: localhost\r\nContent-Length: -5\r\n\r\n",
            b"POST /api/v1/jobs HTTP/1.1\r\nHost: localhost\r\nContent-Length: abc\r\n\r\n",
            b"POST /api/v1/jobs HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"zz\r\nhello\r\n0\r\n\r\n",
            b"POST /api/v1/jobs HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"ffffffffffffffffff\r\nx\r\n",
            b"GET /" + b"a" * 100000 + b" HTTP/1.1\r\nHost: localhost\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"b" * 200000 + b"\r\n\r\n",
            b"GET / HTTP/1.1\r\n" + b"".join(b"H%d: v\r\n" % i for i in range(5000)) + b"\r\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", bytes(range(256)) * 20,
            b"GET /api/v1/info?%zz=%00&a=%&=&&b HTTP/1.1\r\nHost: localhost\r\n\r\n",
        ]
        for g in garbage:
            self.d.raw(g, timeout=3)
        self.assertEqual(self.d.get("/api/v1/health").status, 200)
        self.assertIsNone(self.d.proc.poll())

    def test_event_stream_headers(self):
        with socket.create_connection((self.d.host, self.d.port), timeout=10) as s:
            s.sendall(b"GET /api/v1/events HTTP/1.1\r\nHost: localhost\r\n"
                      b"Accept: text/event-stream\r\n\r\n")
            data = b""
            while b"retry:" not in data:
                b = s.recv(4096)
                self.assertTrue(b, data)
                data += b
            status, headers, _ = parse_raw_response(data)
            self.assertEqual(status, 200)
            self.assertEqual(headers["content-type"], "text/event-stream")
            self.assertEqual(headers["cache-control"], "no-store")

    def test_no_cors_headers_by_default(self):
        r = self.d.get("/api/v1/info", headers={"Origin": "http://evil.example"})
        self.assertFalse([h for h in r.headers if h.lower().startswith("access-control-")])
        r = self.d.request("OPTIONS", "/api/v1/info", headers={
            "Origin": "http://evil.example", "Access-Control-Request-Method": "GET"})
        self.assertFalse([h for h in r.headers if h.lower().startswith("access-control-")])


class TokenTest(unittest.TestCase):
    """A daemon with --token-file and --cors-origin."""

    ORIGIN = "http://dash.example:8080"

    @classmethod
    def setUpClass(cls):
        cls.d = Daemon(token=TOKEN, args=["--cors-origin", cls.ORIGIN], web=WEB)
        cls.d.start()

    @classmethod
    def tearDownClass(cls):
        cls.d.close()

    def assert_401(self, r, path):
        assert_problem(self, r, 401, path)
        self.assertTrue(r.header("WWW-Authenticate").startswith('Bearer realm="initlab"'))

    def test_missing_token_is_401(self):
        for path in ["/api/v1/info", "/api/v1/openapi.json", "/api/v1/events", "/api/v1/nope"]:
            with self.subTest(path=path):
                self.assert_401(self.d.get(path, token=None), path)

    def test_wrong_token_is_401(self):
        for tok in ["wrong", TOKEN[:-1], TOKEN + "x", TOKEN.upper(), "", " "]:
            with self.subTest(tok=tok):
                self.assert_401(self.d.get("/api/v1/info", token=tok), "/api/v1/info")
        for header in ["Basic " + TOKEN, TOKEN, "Bearer", "Bearer" + TOKEN]:
            with self.subTest(header=header):
                r = self.d.get("/api/v1/info", token=None, headers={"Authorization": header})
                self.assert_401(r, "/api/v1/info")

    def test_right_token_is_200(self):
        r = self.d.get("/api/v1/info")
        self.assertEqual(r.status, 200)
        self.assertIs(r.json()["auth"], True)
        r = self.d.get("/api/v1/info", token=None, headers={"Authorization": "bearer  " + TOKEN})
        self.assertEqual(r.status, 200)
        self.assertEqual(self.d.get("/api/v1/nope").status, 404)

    def test_health_and_static_files_stay_open(self):
        self.assertEqual(self.d.get("/api/v1/health", token=None).status, 200)
        self.assertEqual(self.d.get("/", token=None).status, 200)

    def test_metrics_need_the_token(self):
        self.assert_401(self.d.get("/metrics", token=None), "/metrics")
        self.assert_401(self.d.get("/metrics", token=TOKEN + "x"), "/metrics")
        r = self.d.get("/metrics")
        self.assertEqual(r.status, 200)
        self.assertIn("initlab_build_info", r.body.decode())

    def test_writes_from_the_configured_origin_only(self):
        job = {"dataset": "none", "model": "mobilenet", "init": "he_uniform"}
        r = self.d.request("POST", "/api/v1/jobs", job, headers={"Origin": self.ORIGIN})
        self.assertNotIn(r.status, (401, 403, 415), r)
        self.assertEqual(r.header("Access-Control-Allow-Origin"), self.ORIGIN)
        r = self.d.request("POST", "/api/v1/jobs", job,
                           headers={"Origin": "http://other.example"})
        assert_problem(self, r, 403)  # the token does not make a foreign page trusted

    def test_token_never_logged(self):
        self.d.get("/api/v1/info", token=TOKEN + "x")
        self.d.get("/api/v1/info")
        self.assertNotIn(TOKEN, self.d.log())

    def test_cors_for_the_configured_origin_only(self):
        r = self.d.get("/api/v1/info", headers={"Origin": self.ORIGIN})
        self.assertEqual(r.header("Access-Control-Allow-Origin"), self.ORIGIN)
        self.assertIn("Origin", r.header("Vary"))
        r = self.d.get("/api/v1/info", headers={"Origin": "http://other.example"})
        self.assertIsNone(r.header("Access-Control-Allow-Origin"))
        r = self.d.request("OPTIONS", "/api/v1/jobs", token=None, headers={
            "Origin": self.ORIGIN, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type"})
        self.assertEqual(r.status, 204)
        self.assertEqual(r.header("Access-Control-Allow-Origin"), self.ORIGIN)
        self.assertIn("POST", r.header("Access-Control-Allow-Methods"))
        self.assertIn("Authorization", r.header("Access-Control-Allow-Headers"))


class LifecycleTest(unittest.TestCase):
    """Start-up errors, configuration, signals, event streams across shutdown."""

    def run_serve(self, *args, timeout=30):
        with tempfile.TemporaryDirectory() as tmp:
            return subprocess.run([BINARY, "serve", "--state-dir", os.path.join(tmp, "s"),
                                   *args], capture_output=True, text=True, timeout=timeout,
                                  cwd=tmp)

    def test_help_and_usage_errors(self):
        r = self.run_serve("--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("--listen ADDR:PORT", r.stdout)
        for args, needle in [(["--bogus"], "--bogus"), (["--workers", "-1"], "--workers"),
                             (["--max-body", "12q"], "--max-body"), (["--listen"], "--listen"),
                             (["--log-level", "loud"], "--log-level")]:
            with self.subTest(args=args):
                r = self.run_serve(*args)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn(needle, r.stderr)

    def test_bad_listen_address_and_port_in_use(self):
        r = self.run_serve("--listen", "nonsense")
        self.assertEqual(r.returncode, 1)
        self.assertIn("nonsense", r.stderr)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen()
            r = self.run_serve("--listen", "127.0.0.1:%d" % s.getsockname()[1])
            self.assertEqual(r.returncode, 1)
            self.assertIn("in use", r.stderr)

    def test_bad_allowed_hosts(self):
        for value in ["lab.example:8470", "[::1]:80", "bad host", "a/b", ",", ".[::1]"]:
            with self.subTest(value=value):
                r = self.run_serve("--listen", "127.0.0.1:0", "--allowed-host", value)
                self.assertEqual(r.returncode, 1, r.stderr)
                self.assertIn("allowed host", r.stderr)

    def test_bad_token_file(self):
        with tempfile.NamedTemporaryFile("w", suffix=".tok") as f:
            f.write("short\n")
            f.flush()
            r = self.run_serve("--token-file", f.name)
            self.assertEqual(r.returncode, 1)
            self.assertIn("at least 16", r.stderr)
            self.assertNotIn("short", r.stderr.replace(f.name, ""))
        r = self.run_serve("--token-file", "/nonexistent/token")
        self.assertEqual(r.returncode, 1)

    def test_config_file_and_flag_precedence(self):
        with tempfile.TemporaryDirectory() as tmp:
            conf = os.path.join(tmp, "initlab.conf")
            with open(conf, "w") as f:
                f.write("# test\n\nmax_body = 2048   # bytes\nworkers = \"3\"\n"
                        "log_level = 'info'\n")
            with Daemon(args=["--config", conf, "--max-body", "4k"]) as d:
                info = d.get("/api/v1/info").json()
                self.assertEqual(info["max_body"], 4096)  # the flag wins
                self.assertEqual(info["workers"], 3)      # from the file
                self.assertEqual(d.request("POST", "/api/v1/health", body=b"x" * 4097).status, 413)
                self.assertEqual(d.request("POST", "/api/v1/health", body=b"x" * 4096).status, 405)
            with open(conf, "w") as f:
                f.write("workers = 1\n\nworkres = 2\n")
            r = self.run_serve("--config", conf)
            self.assertEqual(r.returncode, 2)
            self.assertIn(conf + ":3: unknown key 'workres'", r.stderr)
            with open(conf, "w") as f:
                f.write("workers = many\n")
            r = self.run_serve("--config", conf)
            self.assertEqual(r.returncode, 2)
            self.assertIn(conf + ":1: workers:", r.stderr)

    def test_sigterm_and_sigint_exit_zero_quickly(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            with self.subTest(sig=sig), Daemon() as d:
                t0 = time.monotonic()
                self.assertEqual(d.stop(sig), 0, d.log())
                self.assertLess(time.monotonic() - t0, 5)
                self.assertIn("stopped", d.log())

    def test_sigterm_with_open_event_streams(self):
        with Daemon() as d:
            socks = []
            for _ in range(20):
                s = socket.create_connection((d.host, d.port), timeout=10)
                s.sendall(b"GET /api/v1/events HTTP/1.1\r\nHost: localhost\r\n\r\n")
                data = b""
                while b"connected" not in data:
                    data += s.recv(4096)
                socks.append(s)
            t0 = time.monotonic()
            self.assertEqual(d.stop(), 0, d.log())
            self.assertLess(time.monotonic() - t0, 5)
            for s in socks:  # every stream was ended, not cut
                rest = b""
                while True:
                    b = s.recv(4096)
                    if not b:
                        break
                    rest += b
                self.assertTrue(rest.endswith(b"0\r\n\r\n"), rest)
                s.close()

    def test_event_stream_heartbeat(self):
        with Daemon(args=["--sse-heartbeat", "1"]) as d:
            with socket.create_connection((d.host, d.port), timeout=10) as s:
                s.sendall(b"GET /api/v1/events HTTP/1.1\r\nHost: localhost\r\n\r\n")
                data, t0 = b"", time.monotonic()
                while data.count(b": heartbeat") < 2:
                    b = s.recv(4096)
                    self.assertTrue(b)
                    data += b
                self.assertLess(time.monotonic() - t0, 5)
            self.assertEqual(d.get("/api/v1/health").status, 200)

    def test_ipv6_loopback(self):
        try:
            with socket.socket(socket.AF_INET6) as s:
                s.bind(("::1", 0))
        except OSError:  # no IPv6 here: the daemon must say so and fail
            r = self.run_serve("--listen", "[::1]:0")
            self.assertEqual(r.returncode, 1)
            self.assertIn("[::1]:0", r.stderr)
            return
        with Daemon(listen="[::1]:0") as d:
            self.assertEqual(d.host, "::1")
            self.assertEqual(d.get("/api/v1/health").status, 200)


class NotifyTest(unittest.TestCase):
    """The systemd protocol over a real AF_UNIX datagram socket."""

    def start_with_notify(self, abstract, env_extra):
        tmp = tempfile.mkdtemp(prefix="initlab-notify-")
        sock, addr = notify_socket(tmp, abstract)
        port = free_port()
        env = {"NOTIFY_SOCKET": addr, **env_extra}
        d = Daemon(listen="127.0.0.1:%d" % port, env=env)
        return tmp, sock, port, d

    def check_ready_then_watchdog(self, abstract):
        tmp, sock, port, d = self.start_with_notify(abstract, {"WATCHDOG_USEC": "200000"})
        try:
            starter = threading.Thread(target=d.start)
            starter.start()
            got = receive(sock, "READY=1", 60)
            self.assertTrue(got and got[-1][1] == "READY=1", got)
            # READY=1 means the socket accepts: connect right away, without retrying.
            with socket.create_connection(("127.0.0.1", port), timeout=2):
                pass
            starter.join()
            pings = [m for _, m in receive(sock, None, 1.0) if m == "WATCHDOG=1"]
            self.assertGreaterEqual(len(pings), 4, pings)  # every 100 ms for 1 s
            self.assertEqual(d.stop(), 0, d.log())
            after = [m for _, m in receive(sock, "STOPPING=1", 2)]
            self.assertIn("STOPPING=1", after)
        finally:
            d.close()
            sock.close()
            shutil.rmtree(tmp, ignore_errors=True)

    def test_ready_after_listen_then_watchdog_pings(self):
        self.check_ready_then_watchdog(abstract=False)

    def test_abstract_notify_socket(self):
        self.check_ready_then_watchdog(abstract=True)

    def test_a_deleted_database_keeps_the_watchdog_pinging(self):
        # Health answers 503 then, but the daemon is not hung: a watchdog restart would
        # lose the deleted file it still holds open.
        tmp, sock, port, d = self.start_with_notify(False, {"WATCHDOG_USEC": "200000"})
        try:
            d.start()
            self.assertEqual(d.get("/api/v1/health").status, 200)
            os.unlink(os.path.join(d.state_dir, "initlab.db"))
            deadline = time.monotonic() + 10
            while d.get("/api/v1/health").status != 503 and time.monotonic() < deadline:
                time.sleep(0.05)
            self.assertEqual(d.get("/api/v1/health").status, 503)
            receive(sock, None, 0.3)  # drain what came before
            pings = [m for _, m in receive(sock, None, 1.0) if m == "WATCHDOG=1"]
            self.assertGreaterEqual(len(pings), 4, pings)
            self.assertIn("refuses work until it is restarted", d.log())
            self.assertNotIn("withholding the watchdog ping", d.log())
        finally:
            d.close()
            sock.close()
            shutil.rmtree(tmp, ignore_errors=True)

    def test_status_and_no_watchdog_for_another_pid(self):
        tmp, sock, port, d = self.start_with_notify(False, {"WATCHDOG_USEC": "200000",
                                                            "WATCHDOG_PID": "1"})
        try:
            d.start()
            msgs = [m for _, m in receive(sock, None, 1.0)]
            self.assertIn("READY=1", msgs)
            self.assertNotIn("WATCHDOG=1", msgs)
            status = [m for m in msgs if m.startswith("STATUS=")]
            self.assertTrue(status, msgs)
            self.assertIn("127.0.0.1:%d" % port, status[0])
        finally:
            d.close()
            sock.close()
            shutil.rmtree(tmp, ignore_errors=True)


# ---- admission: held connections, slow clients, the watchdog ------------------------------

def raise_open_files(want):
    """Raises this process's open-file limit towards want; returns the limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def notify_socket(tmp, abstract=False):
    """A bound AF_UNIX datagram socket and the NOTIFY_SOCKET value naming it."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if abstract:
        name = "initlab-test-%d-%d" % (os.getpid(), time.monotonic_ns())
        s.bind("\0" + name)
        return s, "@" + name
    path = os.path.join(tmp, "notify.sock")
    s.bind(path)
    return s, path


def receive(s, until, timeout):
    """Collects (time, datagram) until one equals `until` or timeout passes."""
    got = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([s], [], [], 0.05)
        if r:
            msg = s.recv(4096).decode()
            got.append((time.monotonic(), msg))
            if msg == until:
                break
    return got


def metric(d, name, labels=""):
    """The value of one series of the daemon's /metrics (0 when absent)."""
    text = d.get("/metrics").body.decode()
    m = re.search(r"^%s%s (\S+)$" % (re.escape(name), re.escape(labels)), text, re.M)
    return float(m.group(1)) if m else 0.0


def read_head(s):
    """Reads one response head (and what came with it) from socket s."""
    data = b""
    while b"\r\n\r\n" not in data:
        b = s.recv(65536)
        if not b:
            break
        data += b
    return data


def peer_closed(s):
    """True when the daemon closed socket s (end of stream or reset); never blocks."""
    r, _, _ = select.select([s], [], [], 0)
    if not r:
        return False
    try:
        return s.recv(65536, socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


class HeldClients:
    """Connections from 127.0.0.1 that hold slots of a daemon: event streams, and slow
    clients that send part of a request head and then trickle one byte of a header every
    half second, never finishing it."""

    def __init__(self, d):
        self.d = d
        self.streams, self.refused, self.slow = [], [], []
        self._stop = threading.Event()
        self._trickler = threading.Thread(target=self._trickle, daemon=True)

    def open_streams(self, n):
        for _ in range(n):
            s = socket.create_connection((self.d.host, self.d.port), timeout=30)
            try:
                s.sendall(b"GET /api/v1/events HTTP/1.1\r\nHost: localhost\r\n\r\n")
                status, headers, body = parse_raw_response(read_head(s))
                if status == 200:
                    self.streams.append(s)
                    continue
                while True:  # a refused stream: the daemon answers and closes at once
                    b = s.recv(65536)
                    if not b:
                        break
                    body += b
            except OSError as e:  # dropped without an answer
                status, headers, body = None, {}, str(e).encode()
            s.close()
            self.refused.append((status, headers, body))

    def open_slow(self, n, head=b"GET /api/v1/info HTTP/1.1\r\nHost: localhost\r\nX-Slow: "):
        for _ in range(n):
            s = socket.create_connection((self.d.host, self.d.port), timeout=30)
            try:
                s.sendall(head)
            except OSError:
                pass  # dropped at once: counted as closed
            self.slow.append(s)
        if not self._trickler.is_alive():
            self._trickler.start()

    def _trickle(self):
        while not self._stop.wait(0.5):
            for s in list(self.slow):
                try:
                    s.send(b"a", socket.MSG_DONTWAIT)
                except OSError:
                    pass

    def open_count(self, socks):
        return sum(not peer_closed(s) for s in socks)

    def close(self):
        self._stop.set()
        if self._trickler.is_alive():
            self._trickler.join()
        for s in self.streams + self.slow:
            s.close()


def timed_get(d, path="/api/v1/health"):
    """GET path on a new connection: (status or the error, seconds)."""
    t0 = time.monotonic()
    try:
        status = d.get(path, timeout=30).status
    except OSError as e:
        status = repr(e)
    return status, time.monotonic() - t0


class AdmissionTest(unittest.TestCase):
    """One local client holding hundreds of connections starves neither /health, nor the
    watchdog, nor other requests."""

    def setUp(self):
        limit = raise_open_files(8192)
        self.assertGreaterEqual(limit, 1600, "the open-file limit is too low for this test")

    def test_streams_and_slow_clients_leave_health_and_watchdog_alive(self):
        tmp = tempfile.mkdtemp(prefix="initlab-admission-")
        sock, addr = notify_socket(tmp)
        # Slow clients must stay held for the whole test, however slow the build.
        d = Daemon(args=["--header-timeout", "600"],
                   env={"NOTIFY_SOCKET": addr, "WATCHDOG_USEC": "1000000"})
        held = HeldClients(d)
        try:
            d.start()
            held.open_streams(300)
            held.open_slow(300)
            receive(sock, None, 0.1)
            t0 = time.monotonic()
            answers = [timed_get(d) for _ in range(10)]
            info = timed_get(d, "/api/v1/info")[0]
            pings = [m for _, m in receive(sock, None, max(0.0, 3.0 - (time.monotonic() - t0)))
                     if m == "WATCHDOG=1"]
            self.assertEqual([s for s, _ in answers], [200] * 10)
            slowest = max(t for _, t in answers)
            self.assertLess(slowest, 1.0, answers)  # the issue's bound
            self.assertGreaterEqual(len(pings), 2, "the watchdog stopped pinging")
            self.assertEqual(info, 200)
            self.assertEqual(len(held.streams), 64)  # the default --sse-limit
            self.assertEqual(len(held.refused), 236)
            for status, headers, body in held.refused[:5]:
                self.assertEqual(status, 503)
                self.assertEqual(headers["content-type"], "application/problem+json")
                self.assertEqual(headers["connection"], "close")
                self.assertIn("--sse-limit", json.loads(body)["detail"])
            self.assertEqual(held.open_count(held.streams), 64)
            self.assertEqual(held.open_count(held.slow), 300)
            self.assertGreaterEqual(metric(d, "initlab_http_connections"), 364)
            print(f"\n  held {len(held.streams)} event streams and {len(held.slow)} slow "
                  f"clients from 127.0.0.1 ({len(held.refused)} streams refused with 503); "
                  f"/api/v1/health 10 of 10 answered, slowest {slowest * 1e3:.1f} ms; "
                  f"{len(pings)} watchdog pings in 3 s", end=" ")
        finally:
            held.close()
            d.close()
            sock.close()
            shutil.rmtree(tmp, ignore_errors=True)

    def test_an_address_at_its_limit_makes_room_for_a_whole_request(self):
        with Daemon(args=["--per-ip-limit", "40", "--sse-limit", "8",
                          "--header-timeout", "600"]) as d:
            held = HeldClients(d)
            try:
                held.open_streams(9)
                held.open_slow(100)
                answers = [timed_get(d) for _ in range(5)]
                self.assertEqual([s for s, _ in answers], [200] * 5)
                self.assertLess(max(t for _, t in answers), 1.0, answers)
                self.assertEqual((len(held.streams), len(held.refused)), (8, 1))
                # Streams are never evicted; the slow clients waiting longest were.
                self.assertEqual(held.open_count(held.streams), 8)
                self.assertLessEqual(held.open_count(held.slow), 40 - 8)
                self.assertGreaterEqual(metric(d, "initlab_http_connections_closed_total",
                                               '{reason="evicted"}'), 100 - 32)
                self.assertLessEqual(metric(d, "initlab_http_connections"), 40)
            finally:
                held.close()

    def wait_closed(self, s, limit=20):
        """Keeps trickling a byte every 0.2 s on s until the daemon closes it; returns
        whether it did within limit seconds."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if peer_closed(s):
                return True
            try:
                s.send(b"a")
            except OSError:
                return True
            time.sleep(0.2)
        return False

    def test_slow_heads_bodies_and_idle_connections_are_closed(self):
        with Daemon(args=["--header-timeout", "1", "--body-timeout", "1",
                          "--connection-timeout", "60"]) as d:
            head = socket.create_connection((d.host, d.port), timeout=10)
            head.sendall(b"GET /api/v1/info HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
            body = socket.create_connection((d.host, d.port), timeout=10)
            body.sendall(b"POST /api/v1/jobs HTTP/1.1\r\nHost: localhost\r\n"
                         b"Content-Type: application/json\r\nContent-Length: 500\r\n\r\n{")
            idle = socket.create_connection((d.host, d.port), timeout=10)
            idle.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: localhost\r\n\r\n")
            self.assertEqual(parse_raw_response(read_head(idle))[0], 200)
            try:
                self.assertTrue(self.wait_closed(head), "a request head trickled forever")
                self.assertTrue(self.wait_closed(body), "a request body trickled forever")
                deadline = time.monotonic() + 20
                while not peer_closed(idle) and time.monotonic() < deadline:
                    time.sleep(0.1)
                self.assertTrue(peer_closed(idle), "an idle keep-alive connection stayed")
            finally:
                head.close()
                body.close()
                idle.close()
            self.assertGreaterEqual(metric(d, "initlab_http_connections_closed_total",
                                           '{reason="header_timeout"}'), 2)
            self.assertGreaterEqual(metric(d, "initlab_http_connections_closed_total",
                                           '{reason="body_timeout"}'), 1)
            # A request sent whole is not affected.
            self.assertEqual(d.get("/api/v1/health").status, 200)


# ---- Host names, cross-origin writes, media types ----------------------------------------

class CrossSiteTest(unittest.TestCase):
    """A daemon without a token, as a web page in the user's browser could reach it."""

    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="initlab-xsite-")
        out = subprocess.run([BINARY, "demo-data", os.path.join(cls.root, "weeds"),
                              "--classes", "2", "--per-class", "4", "--size", "16"],
                             capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        cls.d = Daemon(args=["--data-root", cls.root, "--allowed-host",
                             "lab.example, .corp.example"]).start()

    @classmethod
    def tearDownClass(cls):
        cls.d.close()
        shutil.rmtree(cls.root, ignore_errors=True)

    def dataset(self, name):
        return {"name": name, "path": os.path.join(self.root, "weeds")}

    def names(self):
        return {x["name"] for x in self.d.get("/api/v1/datasets").json()["datasets"]}

    def test_cross_origin_text_plain_post_is_refused(self):
        body = json.dumps(self.dataset("csrf")).encode()
        r = self.d.request("POST", "/api/v1/datasets", body=body, headers={
            "Content-Type": "text/plain", "Origin": "http://evil.example"})
        p = assert_problem(self, r, 403)
        self.assertIn("evil.example", p["detail"])
        r = self.d.request("POST", "/api/v1/datasets", body=body, headers={
            "Content-Type": "text/plain"})
        p = assert_problem(self, r, 415)
        self.assertEqual(p["field"], "Content-Type")
        r = self.d.request("POST", "/api/v1/datasets", body=body, headers={
            "Content-Type": "application/json", "Origin": "http://evil.example"})
        assert_problem(self, r, 403)
        self.assertNotIn("csrf", self.names())
        # The daemon's own pages may write (Origin equals Host), and so may curl (no Origin).
        r = self.d.request("POST", "/api/v1/datasets", self.dataset("own"), headers={
            "Origin": "http://" + self.d.host_header})
        self.assertEqual(r.status, 202, r)
        r = self.d.request("POST", "/api/v1/datasets", self.dataset("curl"),
                           headers={"Content-Type": "application/json; charset=utf-8"})
        self.assertEqual(r.status, 202, r)
        self.assertTrue({"own", "curl"} <= self.names())

    def test_foreign_host_is_refused(self):
        r = self.d.request("POST", "/api/v1/datasets", self.dataset("rebind"), headers={
            "Host": "evil.example:%d" % self.d.port})
        p = assert_problem(self, r, 421)
        self.assertIn("evil.example", p["detail"])
        self.assertIn("--allowed-host", p["detail"])
        self.assertNotIn("rebind", self.names())
        for host in ["evil.example", "127.0.0.1.evil.example", "evilcorp.example",
                     "lab.example.evil", "10.1.2.3:%d" % self.d.port]:
            with self.subTest(host=host):
                assert_problem(self, self.d.get("/api/v1/info", headers={"Host": host}), 421)
        for host in ["localhost:%d" % self.d.port, "127.0.0.1", "[::1]:9", "LOCALHOST",
                     "localhost.", "lab.example", "lab.example:443", "corp.example",
                     "a.b.corp.example"]:
            with self.subTest(host=host):
                self.assertEqual(self.d.get("/api/v1/info", headers={"Host": host}).status,
                                 200)
        r = self.d.get("/", headers={"Host": "evil.example"})
        assert_problem(self, r, 421)

    def test_bodies_need_json_and_bodiless_writes_need_no_type(self):
        for ctype in ["text/plain", "application/x-www-form-urlencoded",
                      "multipart/form-data; boundary=x", "application/jsonx"]:
            with self.subTest(ctype=ctype):
                r = self.d.request("POST", "/api/v1/jobs", body=b"{}",
                                   headers={"Content-Type": ctype})
                assert_problem(self, r, 415)
        r = self.d.request("POST", "/api/v1/jobs", body=b"{}", headers={"Content-Type": None})
        assert_problem(self, r, 415)
        # An empty form is refused too (a cross-site form has no other way in)...
        r = self.d.request("POST", "/api/v1/jobs/999/cancel", body=b"",
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert_problem(self, r, 415)
        # ... but a POST or DELETE without a body needs no Content-Type.
        assert_problem(self, self.d.request("POST", "/api/v1/jobs/999/cancel"), 404)
        assert_problem(self, self.d.request("DELETE", "/api/v1/jobs/999"), 404)
        # A method the path does not take is a 405 whatever the body.
        r = self.d.request("POST", "/api/v1/info", body=b"x", headers={"Content-Type": None})
        assert_problem(self, r, 405)


class FramingTest(unittest.TestCase):
    """Request heads the daemon refuses itself, with problem details."""

    @classmethod
    def setUpClass(cls):
        cls.d = Daemon().start()

    @classmethod
    def tearDownClass(cls):
        cls.d.close()

    def refused(self, raw, status, needle):
        r = self.d.raw(raw, timeout=10)
        got, headers, body = parse_raw_response(r)
        self.assertEqual(got, status, r[:400])
        self.assertEqual(headers.get("content-type"), "application/problem+json", r[:400])
        p = json.loads(body)
        self.assertEqual(p["status"], status)
        self.assertIn(needle, p["detail"])
        return p

    def test_conflicting_framing_is_refused(self):
        post = b"POST /api/v1/jobs HTTP/1.1\r\nHost: localhost\r\n" \
               b"Content-Type: application/json\r\n"
        self.refused(post + b"Content-Length: 2\r\nContent-Length: 40\r\n\r\n{}",
                     400, "Content-Length")
        self.refused(post + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"0\r\n\r\n", 400, "Transfer-Encoding")
        self.refused(post + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501,
                     "gzip")
        # The same length twice is one length (RFC 9112 allows either answer).
        r = self.d.raw(post + b"Content-Length: 2\r\nContent-Length: 2\r\n"
                       b"Connection: close\r\n\r\n{}")
        status, _, body = parse_raw_response(r)
        self.assertEqual(status, 400)
        self.assertNotIn("Content-Length", json.loads(body)["detail"])

    def test_host_is_required_once(self):
        self.refused(b"GET /api/v1/health HTTP/1.1\r\n\r\n", 400, "Host")
        self.refused(b"GET /api/v1/health HTTP/1.1\r\nHost: localhost\r\n"
                     b"Host: localhost\r\n\r\n", 400, "Host")
        r = self.d.raw(b"GET /api/v1/health HTTP/1.0\r\n\r\n")
        self.assertEqual(parse_raw_response(r)[0], 200)

    def test_long_paths_and_heads_get_problems(self):
        p = self.refused(b"GET /" + b"a" * 10000 + b" HTTP/1.1\r\nHost: localhost\r\n\r\n",
                         414, "8192")
        self.assertNotIn("instance", p)
        self.refused(b"GET /api/v1/health HTTP/1.1\r\nHost: localhost\r\nX-Big: " +
                     b"b" * 40000 + b"\r\n\r\n", 431, "32768")


if __name__ == "__main__":
    unittest.main()
