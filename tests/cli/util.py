"""util.py — helpers for the CLI tests: run ./initlab, read the CPU's flags independently."""
import os
import subprocess

BINARY = os.path.abspath(os.environ.get("INITLAB_BIN", "initlab"))


def run_initlab(*args, env=None, timeout=600, cwd=None):
    """Runs ./initlab with args; env adds to ours, whose variables that steer initlab's
    start-up (INITLAB_*, OPENBLAS_CORETYPE, OMP_WAIT_POLICY, GOMP_SPINCOUNT) are dropped."""
    full = {k: v for k, v in os.environ.items()
            if not k.startswith(("INITLAB_", "OPENBLAS_CORETYPE", "OMP_WAIT_POLICY",
                                 "GOMP_SPINCOUNT"))}
    full.update(env or {})
    return subprocess.run([BINARY, *args], capture_output=True, text=True, env=full,
                          timeout=timeout, cwd=cwd)


class CpuInfo:
    """The CPU's flags and model name as the kernel reports them in /proc/cpuinfo
    (independent of CPUID code). model is None where the kernel gives no model name."""

    def __init__(self):
        self.flags = set()
        self.model = None
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "flags" and not self.flags:
                    self.flags = set(value.split())
                elif key.strip() == "model name" and self.model is None and value.strip():
                    self.model = value.strip()

    def isa(self):
        """The widest vector instruction set initlab's kernels can use here (util/isa.c)."""
        f = self.flags
        if {"avx512f", "avx512vl", "avx512bw", "avx512dq", "fma"} <= f:
            return "avx512"
        if {"avx2", "fma"} <= f:
            return "avx2"
        return "generic"

    def blas_core(self):
        f = self.flags
        if {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"} <= f:
            return "SkylakeX"
        if {"avx2", "fma"} <= f:
            return "Haswell"
        if "avx" in f:
            return "Sandybridge"
        return None
