"""test_deploy.py — the worker deployments of deploy/: the Kubernetes Job manifest (parsed by
kubectl, then its shape checked), the systemd template unit (systemd-analyze verify on an
instance), the Slurm array script (bash -n; tests/slurm/test_pull.py runs it on a real
cluster). The daemon's own unit is checked in test_ops.py."""
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.path.join(ROOT, "initlab")
DEPLOY = os.path.join(ROOT, "deploy")
CLEAN_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}


def run(*args, env=None):
    return subprocess.run(list(args), capture_output=True, text=True, timeout=120,
                          env=env or CLEAN_ENV)


class KubernetesJob(unittest.TestCase):
    def manifest(self):
        """The manifest as kubectl reads it. kubectl apply --dry-run=client needs a server
        for its API discovery in these versions; `label --local` parses offline."""
        path = os.path.join(DEPLOY, "kubernetes", "initlab-workers.yaml")
        kubectl = shutil.which("kubectl")
        self.assertIsNotNone(kubectl, "kubectl is missing (make deps)")
        r = run(kubectl, "apply", "--dry-run=client", "--validate=false", "-f", path)
        if r.returncode == 0:
            self.assertIn("job.batch/initlab-workers", r.stdout)
        else:
            self.assertRegex(r.stderr, r"connection refused|unable to recognize|server",
                             r.stderr)
        r = run(kubectl, "label", "--local", "-f", path, "checked=yes",
                "--dry-run=client", "-o", "json")
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def test_indexed_job_of_pull_workers_with_token_from_a_secret(self):
        job = self.manifest()
        self.assertEqual((job["apiVersion"], job["kind"]), ("batch/v1", "Job"))
        spec = job["spec"]
        self.assertEqual(spec["completionMode"], "Indexed")
        self.assertIsInstance(spec["parallelism"], int)
        self.assertGreater(spec["parallelism"], 1)
        self.assertEqual(spec["completions"], spec["parallelism"])
        pod = spec["template"]["spec"]
        self.assertIn(pod["restartPolicy"], ("OnFailure", "Never"))
        self.assertGreaterEqual(pod["terminationGracePeriodSeconds"], 60)
        (c,) = pod["containers"]
        self.assertEqual(c["command"][-1], "worker")
        args = c["args"]
        opt = {args[i]: args[i + 1] for i in range(0, len(args) - 1, 2)
               if args[i].startswith("--")}
        self.assertTrue(opt["--server"].startswith("https://"))
        mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        token_dir = os.path.dirname(opt["--token-file"])
        secret = [n for n, p in mounts.items() if p == token_dir]
        self.assertEqual(len(secret), 1, mounts)
        self.assertIn("secret", volumes[secret[0]])
        self.assertEqual(opt["--threads"], c["resources"]["limits"]["cpu"])
        self.assertIn(opt["--data-root"], mounts.values())
        # Every option is one `initlab worker` knows.
        usage = run(BINARY, "worker", "--help").stdout
        for o in opt:
            self.assertIn(o, usage)


class SystemdWorkerUnit(unittest.TestCase):
    def test_verify_an_instance(self):
        with tempfile.TemporaryDirectory() as tmp:
            with open(os.path.join(DEPLOY, "systemd", "initlab-worker@.service")) as f:
                text = f.read()
            self.assertIn("ExecStart=/usr/local/bin/initlab worker --server", text)
            self.assertIn("KillSignal=SIGTERM", text)
            self.assertIn("LoadCredential=token:", text)
            text = text.replace("/usr/local/bin/initlab", BINARY)
            unit = os.path.join(tmp, "initlab-worker@a.service")
            with open(unit, "w") as f:
                f.write(text)
            tool = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"
            r = run(tool, "verify", unit, env=dict(CLEAN_ENV, MANPATH=os.path.join(ROOT, "docs")))
            problems = [line for line in (r.stdout + r.stderr).splitlines()
                        if line.strip() and "man initlab(1)" not in line and
                        "/etc/initlab/worker.env" not in line]
            self.assertEqual(problems, [], r.stdout + r.stderr)
            # Every option it passes is one `initlab worker` knows.
            usage = run(BINARY, "worker", "--help").stdout
            for o in re.findall(r"(--[a-z-]+)", text.split("ExecStart=")[1].split("\n\n")[0]):
                self.assertIn(o, usage)


class SlurmArrayScript(unittest.TestCase):
    def test_syntax_and_options(self):
        path = os.path.join(DEPLOY, "slurm", "initlab-workers.sbatch")
        self.assertEqual(run("bash", "-n", path).returncode, 0)
        with open(path) as f:
            text = f.read()
        self.assertRegex(text, r"#SBATCH --array=")
        self.assertRegex(text, r"#SBATCH --signal=B:USR1@\d+")
        self.assertIn('exec "${INITLAB_BIN:-initlab}" "${args[@]}"', text)
        usage = run(BINARY, "worker", "--help").stdout
        for o in set(re.findall(r"\((worker |)?(--[a-z-]+)", text)):
            self.assertIn(o[1], usage)
        # Without INITLAB_SERVER it refuses to start, saying why.
        r = run("bash", path, env=dict(CLEAN_ENV, INITLAB_BIN="/bin/false"))
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("INITLAB_SERVER", r.stderr)


if __name__ == "__main__":
    unittest.main()
