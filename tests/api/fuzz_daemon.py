#!/usr/bin/env python3
"""fuzz_daemon.py — throws the HTTP fuzzer (build/tools/fuzzhttp) at a real daemon and checks
that it survived: still answering, held to its limits, a clean exit on SIGTERM and, for the
sanitizer build, no report of AddressSanitizer, LeakSanitizer or UBSan in its log.

usage: /usr/bin/python3 tests/api/fuzz_daemon.py [-n REQUESTS] [-d SECONDS] [-j THREADS]
                                                 [-s SEED]

The daemon is ./initlab, or $INITLAB_BIN (`make fuzz-asan` runs ./initlab-asan), with a
scratch state directory and data root. The seed defaults to one drawn from the clock and is
printed first, so that a failing run can be replayed with -s. Prints the fuzzer's summary
and a closing line "N passed, N failed"; exit status 1 on failure."""
import argparse
import os
import subprocess
import sys
import tempfile
import time

from daemon import ROOT, Daemon

FUZZER = os.path.join(ROOT, "build", "tools", "fuzzhttp")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=1000000, help="requests at most")
    ap.add_argument("-d", type=float, default=30, help="seconds at most")
    ap.add_argument("-j", type=int, default=12, help="sending threads")
    ap.add_argument("-s", type=int, default=None, help="seed (default: from the clock)")
    args = ap.parse_args()
    seed = args.s if args.s is not None else time.time_ns() % 1000000007
    print(f"fuzz_daemon: seed {seed} (replay with -s {seed})", flush=True)
    failures = []
    with tempfile.TemporaryDirectory(prefix="initlab-fuzz-") as data:
        d = Daemon(args=["--data-root", data, "--workers", "1", "--threads-per-job", "1"])
        try:
            d.start()
            run = subprocess.run([FUZZER, "-p", str(d.port), "-H", d.host, "-n", str(args.n),
                                  "-d", str(args.d), "-j", str(args.j), "-s", str(seed)],
                                 capture_output=True, text=True, timeout=args.d + 300)
            sys.stdout.write(run.stdout)
            sys.stderr.write(run.stderr)
            if run.returncode != 0:
                failures.append(f"fuzzhttp exited {run.returncode}")
            if d.proc.poll() is not None:
                failures.append(f"the daemon died (status {d.proc.returncode})")
            elif d.get("/api/v1/health").status != 200:
                failures.append("/api/v1/health no longer answers 200")
            rc = d.stop(timeout=60)
            if rc != 0:
                failures.append(f"the daemon exited {rc} on SIGTERM")
        except Exception as e:  # a failure to start or stop is reported like the others
            failures.append(f"{type(e).__name__}: {e}")
        finally:
            try:
                d.close()
            except AssertionError as e:  # a sanitizer report
                failures.append(str(e))
            if failures:
                print(d.log()[-6000:], file=sys.stderr)
    for f in failures:
        print("fuzz_daemon: FAILED: " + f, file=sys.stderr)
    print(f"{0 if failures else 1} passed, {1 if failures else 0} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
