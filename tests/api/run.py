#!/usr/bin/env python3
"""run.py — runs the API tests (tests/api/test_*.py) against ./initlab and prints
"N passed, N failed".

usage: /usr/bin/python3 tests/api/run.py [SUBSTRING ...]

Each test module starts its own daemons (tests/api/daemon.py) on free ports with temporary
state and web directories. INITLAB_BIN selects another binary (e.g. ./initlab-asan). The
runner is tests/run.py: a skipped test counts as failed; exit status 1 on any failure."""
import importlib.util
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv):
    spec = importlib.util.spec_from_file_location(
        "tests_run", os.path.join(os.path.dirname(HERE), "run.py"))
    runner = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(runner)
    return runner.main([argv[0], "tests/api", *argv[1:]])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
