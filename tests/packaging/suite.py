#!/usr/bin/env python3
"""suite.py — runs the packaging tests (tests/packaging/test_*.py) where containers can
start, and says so plainly where they cannot.

usage: /usr/bin/python3 tests/packaging/suite.py [SUBSTRING ...]

First it checks that this machine can make the base images and start a podman container
(root, podman, runc, mmdebstrap, Debian's archive); the base images the tests need are
bootstrapped then, side by side, once (podman keeps them). If containers start, each test
file runs in its own tests/run.py at the same time as the others: the image's build and the
package's build share the cores, and each test's waits (systemd's RestartSec=, the
watchdog, jobs held to a twentieth of a core) overlap the other's work. Each file's output
is kept in build/packaging/NAME.log and printed whole when it ends, then one closing line
counts every pass and failure. If containers cannot start:
  - in CI (CI=true or 1) that is a failure: the reason, then "0 passed, N failed" for the N
    tests that could not run, exit status 1;
  - elsewhere the reason, then "0 passed, 0 failed, N skipped", exit status 0: nothing is
    counted as passed, and `make test` goes on with the other suites."""
import os
import re
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
LOGS = os.path.join(ROOT, "build", "packaging")
sys.path.insert(0, HERE)

import podman  # noqa: E402


def test_files(wanted):
    return [name for name in sorted(os.listdir(HERE))
            if name.startswith("test_") and name.endswith(".py")
            and (not wanted or any(w in name for w in wanted))]


def count_tests(files):
    loader = unittest.TestLoader()
    return sum(loader.loadTestsFromName(name[:-3]).countTestCases() for name in files)


def run_side_by_side(files):
    """Runs each test file in its own tests/run.py, all at once; prints each one's output
    as it ends and a closing line with the sums. Returns the exit status: 1 when any file
    failed or counted nothing."""
    os.makedirs(LOGS, exist_ok=True)
    t0 = time.monotonic()
    running = []
    for name in files:
        log = os.path.join(LOGS, name[:-3] + ".log")
        out = open(log, "w")
        p = subprocess.Popen([sys.executable, "-u", os.path.join(ROOT, "tests", "run.py"),
                              "tests/packaging", name], stdout=out, stderr=subprocess.STDOUT,
                             cwd=ROOT)
        running.append((name, log, out, p))
    print(f"packaging: {', '.join(files)} side by side (their logs: "
          f"{os.path.relpath(LOGS, ROOT)}/)", flush=True)
    passed = failed = 0
    status = 0
    for name, log, out, p in running:
        rc = p.wait()
        out.close()
        with open(log) as f:
            text = f.read()
        print(f"---- {name} ({time.monotonic() - t0:.0f} s after the start)", flush=True)
        sys.stdout.write(text)
        m = re.findall(r"^(\d+) passed, (\d+) failed$", text, re.M)
        if m:
            passed += int(m[-1][0])
            failed += int(m[-1][1])
        else:
            failed += 1
            print(f"packaging: {name} ended (status {rc}) without its closing line")
        if rc != 0 or not m:
            status = 1
    print(f"packaging: {time.monotonic() - t0:.0f} s in all")
    print(f"{passed} passed, {failed} failed")
    return status


def main(argv):
    files = test_files(argv[1:])
    if not files:
        print("packaging: no test file matches " + " ".join(argv[1:]))
        print("0 passed, 1 failed")
        return 1
    reason = podman.why_containers_cannot_start()
    if reason is None:
        return run_side_by_side(files)
    n = count_tests(files)
    if podman.CI:
        print(f"packaging: FAILED: containers cannot start on this CI machine: {reason}")
        print(f"0 passed, {n} failed")
        return 1
    print(f"packaging: SKIPPED (not counted as passed): {reason}")
    print(f"0 passed, 0 failed, {n} skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
