"""test_cli.py — the initlab binary as a user meets it: help, version, info, its CPU model
name and BLAS core, the machine's limits it measures (FMA peak, streaming bandwidth), and
what an OPENBLAS_CORETYPE from the environment costs."""
import json
import os
import sqlite3
import subprocess
import tempfile
import unittest

from util import BINARY, CpuInfo, run_initlab


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


class Limits(unittest.TestCase):
    """info measures the fp32 FMA peak with the widest vector instruction set the CPU has,
    per core and on the measurement's threads, and the streaming bandwidth; it gives the
    sgemm rate as a share of that peak. Only types and signs are checked: never a speed."""

    def test_json_carries_the_peak_and_bandwidth(self):
        out = run_initlab("info", "--json", "--size", "128", "--threads", "2")
        self.assertEqual(out.returncode, 0, out.stderr)
        info = json.loads(out.stdout)
        cpu, peak, sgemm = info["cpu"], info["peak"], info["blas"]["sgemm"]
        self.assertEqual(cpu["isa"], CpuInfo().isa())
        self.assertIsInstance(cpu["family"], int)
        self.assertIsInstance(cpu["model_number"], int)
        self.assertEqual(peak["isa"], cpu["isa"])
        self.assertIsInstance(peak["chains"], int)
        self.assertEqual(peak["threads"], 2)
        for key in ("fma_gflops_per_core", "fma_gflops", "bandwidth_gbs"):
            self.assertIsInstance(peak[key], float, key)
            self.assertGreater(peak[key], 0, key)
        self.assertIsInstance(peak["bandwidth_buffer_bytes"], int)
        self.assertGreater(peak["bandwidth_buffer_bytes"], 0)
        self.assertIsInstance(sgemm["peak_share"], float)
        self.assertAlmostEqual(sgemm["peak_share"], sgemm["gflops"] / peak["fma_gflops"])

    def test_no_peak_measures_the_sgemm_only(self):
        out = run_initlab("info", "--json", "--size", "64", "--no-peak")
        self.assertEqual(out.returncode, 0, out.stderr)
        info = json.loads(out.stdout)
        self.assertIsNone(info["peak"])
        self.assertIsNone(info["blas"]["sgemm"]["peak_share"])
        self.assertGreater(info["blas"]["sgemm"]["gflops"], 0)

    def test_text_names_the_isa(self):
        out = run_initlab("info", "--size", "128", "--threads", "1")
        self.assertEqual(out.returncode, 0, out.stderr)
        lines = {line.split(":")[0]: line for line in out.stdout.splitlines()}
        isa = CpuInfo().isa()
        self.assertRegex(lines["fma peak"], r"^fma peak: +[0-9.]+ GFLOP/s per core, [0-9.]+ "
                         rf"GFLOP/s on 1 thread \(fp32, {isa}, [0-9]+ chains\)$")
        self.assertRegex(lines["memory"], r"^memory: +[0-9.]+ GB/s streaming on 1 thread ")
        self.assertRegex(lines["sgemm 128³"], r"GFLOP/s, [0-9]+% of the FMA peak on 1 thread$")
        self.assertRegex(lines["cpu"], r"family [0-9]+ model [0-9]+")


class BenchShares(unittest.TestCase):
    """`initlab bench --profile --json` gives each layer type's GFLOP/s and GB/s as shares
    of the FMA peak and the streaming bandwidth it measured."""

    def test_profile_json_carries_the_shares(self):
        out = run_initlab("bench", "--model", "mobilenet", "--size", "32", "--batch", "2",
                          "--alpha", "0.25", "--classes", "10", "--steps", "1", "--threads",
                          "2", "--profile", "--json")
        self.assertEqual(out.returncode, 0, out.stderr)
        r = json.loads(out.stdout)
        self.assertEqual(r["fma_peak"]["isa"], CpuInfo().isa())
        self.assertEqual(r["fma_peak"]["threads"], 2)
        self.assertGreater(r["fma_peak"]["gflops"], 0)
        self.assertAlmostEqual(r["peak_share"], r["achieved_gflops"] / r["fma_peak"]["gflops"])
        self.assertGreater(r["bandwidth"]["gbs"], 0)
        types = {t["type"]: t for t in r["types"]}
        for t in types.values():
            for key in ("gflops", "peak_share", "gbyte", "gbs", "bandwidth_share"):
                self.assertIsInstance(t[key], float, (t["type"], key))
                self.assertGreaterEqual(t[key], 0, (t["type"], key))
            self.assertAlmostEqual(t["peak_share"], t["gflops"] / r["fma_peak"]["gflops"])
            self.assertAlmostEqual(t["bandwidth_share"], t["gbs"] / r["bandwidth"]["gbs"])
        self.assertGreater(types["batch_normalization"]["gbyte"], 0)


class CpuModel(unittest.TestCase):
    """initlab names the CPU as the kernel does (/proc/cpuinfo's "model name", what lscpu
    shows), not by CPUID's brand string, which a hypervisor may rewrite: on an AMD EPYC
    virtual machine CPUID says "Oxide Virtual Turin-like Processor", the kernel "AMD EPYC"."""

    def test_info_reports_the_kernels_model_name(self):
        out = run_initlab("info", "--json", "--size", "64")
        self.assertEqual(out.returncode, 0, out.stderr)
        cpu = json.loads(out.stdout)["cpu"]
        self.assertEqual(cpu["model"], CpuInfo().model or cpu["brand"])
        self.assertTrue(cpu["model"])

    def test_a_brand_string_unlike_the_kernels_name_does_not_replace_it(self):
        """With /proc/cpuinfo replaced (in a private mount namespace) by one naming the CPU
        "AMD EPYC", info reports that name and keeps CPUID's brand apart. Where this
        machine allows no user namespace, the same holds for the real /proc/cpuinfo."""
        with tempfile.TemporaryDirectory() as tmp:
            fake = os.path.join(tmp, "cpuinfo")
            with open(fake, "w") as f:
                f.write("processor\t: 0\nvendor_id\t: AuthenticAMD\n"
                        "model name\t: AMD EPYC\n\n")
            script = 'mount --bind "$1" /proc/cpuinfo && shift && exec "$@"'
            env = {k: v for k, v in os.environ.items()
                   if not k.startswith(("INITLAB_", "OPENBLAS_CORETYPE"))}
            out = subprocess.run(["unshare", "--mount", "--map-root-user", "sh", "-c", script,
                                  "sh", fake, BINARY, "info", "--json", "--size", "64"],
                                 capture_output=True, text=True, env=env, timeout=300)
        if out.returncode != 0 and not out.stdout:
            # No namespaces here (a container's seccomp profile, say).
            self.test_info_reports_the_kernels_model_name()
            return
        self.assertEqual(out.returncode, 0, out.stderr)
        cpu = json.loads(out.stdout)["cpu"]
        self.assertEqual(cpu["model"], "AMD EPYC")
        real = run_initlab("info", "--json", "--size", "64")
        self.assertEqual(cpu["brand"], json.loads(real.stdout)["cpu"]["brand"])


class EnvironmentCore(unittest.TestCase):
    """OPENBLAS_CORETYPE from the environment is honoured; when it selects another core
    than the one this CPU supports, info measures both and says what the setting costs,
    and every other command's log says so once at start."""

    def setUp(self):
        self.best = CpuInfo().blas_core()
        # A core every x86-64 OpenBLAS knows and no CPU of this century is best served by.
        self.other = "Prescott"

    def info(self, *args, env=None):
        out = run_initlab("info", "--size", "256", *args, env=env)
        self.assertEqual(out.returncode, 0, out.stderr)
        return out

    def test_info_measures_what_an_overriding_core_costs(self):
        info = json.loads(self.info("--json", env={"OPENBLAS_CORETYPE": self.other}).stdout)
        blas = info["blas"]
        self.assertEqual((blas["source"], blas["core"]), ("environment", self.other))
        over = blas["override"]
        if self.best is None:
            self.assertIsNone(over)
            return
        self.assertEqual(over["variable"], "OPENBLAS_CORETYPE")
        self.assertEqual(over["value"], self.other)
        self.assertEqual(over["supported_core"], self.best)
        self.assertEqual(over["gflops"], blas["sgemm"]["gflops"])
        self.assertGreater(over["supported_gflops"], 0)
        self.assertAlmostEqual(over["ratio"], over["supported_gflops"] / over["gflops"])
        self.assertTrue(over["message"].startswith(
            f"OPENBLAS_CORETYPE={self.other} is set: sgemm {over['gflops']:.0f} GFLOP/s; "
            f"{self.best}, which this CPU supports, measured "
            f"{over['supported_gflops']:.0f} GFLOP/s ("), over["message"])

    def test_info_text_says_it_on_a_line_of_its_own(self):
        out = self.info(env={"OPENBLAS_CORETYPE": self.other}).stdout
        notes = [line for line in out.splitlines() if line.startswith("blas note:")]
        if self.best is None:
            self.assertEqual(notes, [])
            return
        self.assertEqual(len(notes), 1, out)
        self.assertIn(f"OPENBLAS_CORETYPE={self.other} is set: sgemm ", notes[0])
        self.assertIn(f"{self.best}, which this CPU supports, measured ", notes[0])

    def test_no_note_when_the_environment_names_the_supported_core(self):
        core = self.best or self.other
        for value in (core, core.lower()):
            info = json.loads(self.info("--json", env={"OPENBLAS_CORETYPE": value}).stdout)
            self.assertEqual(info["blas"]["source"], "environment")
            self.assertIsNone(info["blas"]["override"], value)
            self.assertNotIn("blas note:", self.info(env={"OPENBLAS_CORETYPE": value}).stdout)
        self.assertIsNone(json.loads(self.info("--json").stdout)["blas"]["override"])

    def test_the_log_at_start_says_it_once_without_measuring(self):
        args = ("summary", "--model", "plain", "--depth", "2", "--width", "4")
        out = run_initlab(*args, env={"OPENBLAS_CORETYPE": self.other})
        self.assertEqual(out.returncode, 0, out.stderr)
        notes = [line for line in out.stderr.splitlines()
                 if f"OPENBLAS_CORETYPE={self.other} is set in the environment" in line]
        if self.best is None:
            self.assertEqual(notes, [])
            return
        self.assertEqual(len(notes), 1, out.stderr)
        self.assertIn(f"runs its {self.other} core, though this CPU supports {self.best}",
                      notes[0])
        self.assertNotIn("GFLOP/s", notes[0])
        quiet = run_initlab(*args, env={"OPENBLAS_CORETYPE": self.best or self.other})
        self.assertNotIn("is set in the environment", quiet.stderr)


class DivergingTrainJson(unittest.TestCase):
    """`initlab train --json` prints every epoch of a diverging run, with null for a loss
    that is not finite, as the API does (jobs/report.c builds both)."""

    def test_non_finite_losses_print_as_null(self):
        # Batch norm at learning rate 10 on raw 0-255 inputs: training stays finite, the
        # validation loss under moving statistics overflows (depending on the BLAS
        # kernels, for some of these seeds: each core tried diverges on at least one).
        job = ["--model", "plain", "--depth", "32", "--width", "8", "--init", "he_uniform",
               "--lr", "10", "--momentum", "0.99", "--schedule", "constant",
               "--preprocess", "caffe", "--batch-size", "4", "--image-size", "32",
               "--probe-size", "8", "--epochs", "3", "--stats-every", "100", "--threads", "1"]
        with tempfile.TemporaryDirectory() as tmp:
            data = os.path.join(tmp, "weeds")
            out = run_initlab("demo-data", data, "--classes", "4", "--per-class", "40",
                              "--size", "48")
            self.assertEqual(out.returncode, 0, out.stderr)
            db = os.path.join(tmp, "state", "initlab.db")
            diverged = []
            for seed in range(6):
                out = run_initlab("train", "--data", data, "--db", db, *job,
                                  "--seed", str(seed), "--json")
                printed = json.loads(out.stdout, parse_constant=self.refuse)
                with sqlite3.connect(db) as c:
                    stored = c.execute("SELECT epoch, val_loss FROM epochs WHERE job_id = ? "
                                       "ORDER BY epoch", (printed["id"],)).fetchall()
                self.assertEqual(printed["status"], "done" if out.returncode == 0 else
                                 "failed", out.stderr)
                self.assertEqual([e["epoch"] for e in printed["epochs"]],
                                 [e for e, _ in stored], out.stdout)
                for e, (_, val_loss) in zip(printed["epochs"], stored):
                    finite = val_loss is not None and abs(val_loss) != float("inf")
                    self.assertEqual(e["val_loss"] is not None, finite, (seed, e))
                    if not finite:
                        diverged.append((seed, e["epoch"]))
                if len(diverged) >= 2:
                    break
        self.assertTrue(diverged, "no run diverged to a non-finite validation loss on "
                        "this machine: the configuration needs a stronger push")

    @staticmethod
    def refuse(token):
        raise ValueError(f"{token} is not JSON")


if __name__ == "__main__":
    unittest.main()
