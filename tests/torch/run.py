"""run.py — runs the Python tests (tests/torch/test_*.py) and prints "N passed, N failed".

Usage: /usr/bin/python3 tests/torch/run.py [--allow-skips] [SUBSTRING...]

Each module whose file name contains any SUBSTRING (all modules without one) runs as a
unittest suite from the repository root, with tests/torch on sys.path (so `import st`
works). A skipped test counts as a failure: a test that cannot run must say so loudly.
A module may list tests that are allowed to skip in ALLOWED_SKIPS (a set of test method
names), and --allow-skips allows every skip; allowed skips count as passed and are listed.
Exit status 0 when nothing failed, 1 otherwise (also when no test was selected).
"""
import importlib
import os
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def discover(filters):
    names = sorted(f[:-3] for f in os.listdir(HERE) if f.startswith("test_") and f.endswith(".py"))
    if filters:
        names = [n for n in names if any(s in n for s in filters)]
    return names


def main(argv):
    allow_all = "--allow-skips" in argv
    filters = [a for a in argv if a != "--allow-skips"]
    os.chdir(ROOT)
    sys.path.insert(0, HERE)
    passed = failed = 0
    allowed_skips = []
    for name in discover(filters):
        print(f"== {name}", flush=True)
        t0 = time.monotonic()
        try:
            module = importlib.import_module(name)
        except Exception as e:  # an unimportable module is one failure, not a crash
            print(f"FAIL {name}: import error: {e!r}", flush=True)
            failed += 1
            continue
        allowed = set(getattr(module, "ALLOWED_SKIPS", ()))
        suite = unittest.defaultTestLoader.loadTestsFromModule(module)
        result = unittest.TextTestRunner(stream=sys.stdout, verbosity=2).run(suite)
        bad = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
        skipped_bad = 0
        for test, reason in result.skipped:
            method = test.id().rsplit(".", 1)[-1]
            if allow_all or method in allowed:
                allowed_skips.append(f"{test.id()}: {reason}")
            else:
                print(f"FAIL {test.id()}: skipped ({reason}); skips are failures", flush=True)
                skipped_bad += 1
        failed += bad + skipped_bad
        passed += result.testsRun - bad - skipped_bad
        print(f"-- {name}: {time.monotonic() - t0:.1f} s", flush=True)
    for s in allowed_skips:
        print(f"allowed skip: {s}")
    if passed + failed == 0:
        print("no test selected")
        failed = 1
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
