#!/usr/bin/env python3
"""run.py — runs the Python test modules of one folder and prints "N passed, N failed".

usage: /usr/bin/python3 tests/run.py DIR [SUBSTRING ...]

Loads every DIR/test_*.py (only those whose name contains a SUBSTRING, when given) as a
unittest module, from the repository root, and runs them verbosely. A skipped test counts
as a failure: a check that did not run must not look like a pass. Exit status 1 on any
failure or error."""
import os
import sys
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    folder = os.path.join(ROOT, argv[1])
    wanted = argv[2:]
    os.chdir(ROOT)
    sys.path.insert(0, folder)
    loader = unittest.TestLoader()
    suite = unittest.TestSuite()
    for name in sorted(os.listdir(folder)):
        if not (name.startswith("test_") and name.endswith(".py")):
            continue
        if wanted and not any(w in name for w in wanted):
            continue
        suite.addTests(loader.loadTestsFromName(name[:-3]))
    result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
    failed = len(result.failures) + len(result.errors) + len(result.skipped) \
        + len(result.unexpectedSuccesses)
    passed = result.testsRun - failed
    for test, reason in result.skipped:
        print(f"skipped counts as failed: {test}: {reason}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed or result.testsRun == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
