"""test_cli.py — the initlab binary as a user meets it: help, version, info and its BLAS core."""
import json
import os
import subprocess
import unittest

from util import CpuInfo, run_initlab


class HelpAndVersion(unittest.TestCase):
    def test_help_lists_commands(self):
        out = run_initlab("--help")
        self.assertEqual(out.returncode, 0)
        self.assertIn("usage: initlab COMMAND", out.stdout)
        self.assertIn("info", out.stdout)

    def test_version(self):
        out = run_initlab("--version")
        self.assertEqual(out.returncode, 0)
        with open("VERSION") as f:
            self.assertEqual(out.stdout.strip(), "initlab " + f.read().strip())

    def test_unknown_command_is_a_usage_error(self):
        out = run_initlab("frobnicate")
        self.assertEqual(out.returncode, 2)
        self.assertIn("unknown command 'frobnicate'", out.stderr)

    def test_every_command_answers_help(self):
        listing = run_initlab("--help").stdout.split("commands:")[1]
        names = [line.split()[0] for line in listing.splitlines() if line.strip()]
        self.assertIn("info", names)
        for name in names:
            out = run_initlab(name, "--help")
            self.assertEqual(out.returncode, 0, name)
            self.assertIn("usage: initlab " + name, out.stdout, name)


class Info(unittest.TestCase):
    def info(self, *args, env=None):
        out = run_initlab("info", "--json", "--size", "256", *args, env=env)
        self.assertEqual(out.returncode, 0, out.stderr)
        return json.loads(out.stdout)

    def test_core_follows_cpu_features(self):
        info = self.info()
        want = CpuInfo().blas_core()
        if want is None:
            self.assertEqual(info["blas"]["source"], "default")
        else:
            self.assertEqual(info["blas"]["source"], "cpuid")
            self.assertEqual(info["blas"]["core"], want)
        self.assertLess(info["blas"]["verify_max_rel_error"], 1e-4)
        self.assertGreater(info["blas"]["sgemm"]["gflops"], 0)

    def test_openmp_threads_spin_briefly_and_sleep_when_oversubscribed(self):
        info = self.info()
        self.assertIsNone(info["openmp"].get("wait_policy"))
        self.assertEqual(info["openmp"]["spin_count"], "10000")
        info = self.info("--threads", str(os.cpu_count() + 1))
        self.assertEqual(info["openmp"]["wait_policy"], "passive")
        self.assertIsNone(info["openmp"].get("spin_count"))
        self.assertEqual(self.info(env={"OMP_WAIT_POLICY": "active"})["openmp"]["wait_policy"],
                         "active")
        info = self.info("--threads", str(os.cpu_count() + 1), env={"GOMP_SPINCOUNT": "500"})
        self.assertIsNone(info["openmp"].get("wait_policy"))
        self.assertEqual(info["openmp"]["spin_count"], "500")

    def test_user_choice_is_kept(self):
        info = self.info(env={"OPENBLAS_CORETYPE": "Prescott"})
        self.assertEqual(info["blas"]["source"], "environment")
        self.assertEqual(info["blas"]["core"], "Prescott")

    def test_failed_verification_falls_back_with_a_warning(self):
        if CpuInfo().blas_core() is None:
            self.skipTest("this CPU has no better core than the shipped one")
        shipped = self.info(env={"INITLAB_BLAS_SOURCE": "default"})["blas"]["core"]
        out = run_initlab("info", "--json", "--size", "256",
                          env={"INITLAB_BLAS_TOLERANCE": "0"})
        self.assertEqual(out.returncode, 0, out.stderr)
        info = json.loads(out.stdout)
        self.assertEqual(info["blas"]["source"], "fallback")
        self.assertEqual(info["blas"]["core"], shipped)
        self.assertIn("falling back to the shipped core", out.stderr)


if __name__ == "__main__":
    unittest.main()
