"""podman.py — runs podman for the packaging tests: the base images, containers that are
always removed, commands inside them, and whether containers can start here at all.

Every podman call goes through PODMAN: Debian's podman 4.3 with runc (its default crun
fails on cgroup v1/hybrid hosts, "cgroups in hybrid mode not supported") and explicit
ulimits (podman's default open-files limit is refused on some hosts). Containers are named
initlab-test-PID-N and removed by the test that made them, or at exit."""
import atexit
import json
import os
import shlex
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUNTIME = os.environ.get("INITLAB_PODMAN_RUNTIME", "runc")
PODMAN = ["podman", "--runtime", RUNTIME]
ULIMITS = ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768"]
SYSTEMD_IMAGE = "localhost/initlab-test-systemd:12"
IMAGE = "localhost/initlab-test:latest"
CI = os.environ.get("CI", "") in ("true", "1")

_containers = []
_count = 0


def podman(*args, check=True, timeout=600, input=None):
    """Runs `podman ARGS`; returns the CompletedProcess (text). check: raise AssertionError
    with podman's output when it fails."""
    r = subprocess.run(PODMAN + list(args), capture_output=True, text=True, timeout=timeout,
                       input=input)
    if check and r.returncode != 0:
        raise AssertionError(f"podman {shlex.join(args)} failed ({r.returncode}):\n"
                             f"{r.stdout[-3000:]}{r.stderr[-3000:]}")
    return r


def name(kind):
    """A container or volume name of this test run."""
    global _count
    _count += 1
    return f"initlab-test-{kind}-{os.getpid()}-{_count}"


def bootstrap(*images):
    """Makes the named base images (scripts/bootstrap-images.sh) unless present; prints
    what it did."""
    r = subprocess.run([os.path.join(ROOT, "scripts", "bootstrap-images.sh"), *images],
                       capture_output=True, text=True, timeout=900,
                       env=dict(os.environ, PODMAN=" ".join(PODMAN)))
    for line in r.stdout.splitlines():
        print("    " + line, flush=True)
    if r.returncode != 0:
        raise AssertionError("bootstrap-images.sh failed:\n" + r.stdout + r.stderr)


def run(image, *args, options=(), keep=False):
    """Starts a detached container of image with options and args; returns its name. It
    is removed at exit unless removed before."""
    n = name("c")
    podman("run", "-d", "--name", n, *ULIMITS, *options, image, *args)
    if not keep:
        _containers.append(n)
    return n


def remove(container):
    podman("rm", "-f", "-t", "0", container, check=False, timeout=120)
    if container in _containers:
        _containers.remove(container)


@atexit.register
def _remove_leftovers():
    for c in list(_containers):
        remove(c)


def sh(container, script, check=True, timeout=300, user=None):
    """Runs a shell script inside the container (`podman exec`); returns the
    CompletedProcess. check: fail with the script's output when it exits non-zero."""
    args = ["exec"] + (["--user", user] if user else []) + [container, "sh", "-c", script]
    r = podman(*args, check=False, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"in {container}: {script}\nexit {r.returncode}\n"
                             f"{r.stdout[-4000:]}{r.stderr[-4000:]}")
    return r


def inspect(obj, kind="container"):
    return json.loads(podman(kind, "inspect", obj).stdout)[0]


def wait_until(predicate, timeout, what, interval=0.1):
    """Polls predicate until it returns something true; returns it. AssertionError naming
    what after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def why_containers_cannot_start():
    """None when this machine can bootstrap the base images and start a container with
    podman; otherwise the reason, in words. Every image the tests start from is made here,
    side by side, so that the tests find them present."""
    if os.geteuid() != 0:
        return "the container tests need root (podman as root with runc)"
    for tool in ("podman", RUNTIME, "mmdebstrap"):
        if not shutil.which(tool):
            return f"{tool} is not installed (make deps installs it)"
    try:
        bootstrap("debian:12", "debian:12-slim", "systemd")
        r = podman("run", "--rm", *ULIMITS, "--network", "none", "debian:12-slim", "true",
                   check=False, timeout=120)
    except (AssertionError, subprocess.TimeoutExpired, OSError) as e:
        return f"no base image could be made: {e}"
    if r.returncode != 0:
        return "podman cannot start a container here: " + (r.stderr or r.stdout).strip()
    return None


def cgroup_v2():
    """True when the host's /sys/fs/cgroup is the unified cgroup v2 hierarchy."""
    return os.path.exists("/sys/fs/cgroup/cgroup.controllers")


def note(text):
    print("    " + text, flush=True)


if __name__ == "__main__":
    print(why_containers_cannot_start() or "containers start here", file=sys.stderr)
