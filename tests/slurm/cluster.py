"""cluster.py — a real Slurm cluster on this machine for the tests: munged, slurmctld and
two slurmd "nodes" (n1, n2, one CPU each), all Debian's daemons, started from a scratch
folder without systemd and stopped by their process ids.

Facts it is built on are in ../shared/notes/cluster.md: Slurm 22.05 runs several slurmd on
one host (NodeName=n[1-2] ... Port=...), munge needs its socket folder 0755 and its key
0400, every client needs SLURM_CONF, and cred_expire=5 keeps a requeued job from waiting
two minutes. Ports are picked free at start. As root (CI) it runs munge as the munge user;
otherwise it falls back to auth/none, which Slurm allows for a single user.

    c = Cluster().start()
    c.env            # the environment for sbatch, squeue, scontrol and initlab serve
    c.run("squeue")  # a client command, output as text
    c.kill_slurmd("n1", signal.SIGKILL); c.start_slurmd("n1")
    c.stop()
"""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

NODES = ("n1", "n2")


def free_ports(n):
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def missing_commands():
    return [c for c in ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "squeue",
                        "scancel", "sacct") if not shutil.which(c) and
            not os.path.exists("/usr/sbin/" + c)]


def _which(c):
    return shutil.which(c) or "/usr/sbin/" + c


class Cluster:
    def __init__(self, base=None):
        self.base = base or tempfile.mkdtemp(prefix="initlab-slurm-")
        self.conf = os.path.join(self.base, "slurm.conf")
        self.env = dict(os.environ, SLURM_CONF=self.conf)
        self.root = os.geteuid() == 0
        self.pids = {}

    def path(self, *parts):
        return os.path.join(self.base, *parts)

    def _write_conf(self):
        ctld, slurmd, n1, n2 = free_ports(4)
        b = self.base
        if self.root:
            auth = (f"AuthType=auth/munge\nCredType=cred/munge\n"
                    f"AuthInfo=socket={b}/munge/munge.socket,cred_expire=5\n")
        else:
            auth = "AuthType=auth/none\nCredType=cred/none\n"
        text = f"""ClusterName=initlabtest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={ctld}
SlurmdPort={slurmd}
SlurmUser={"root" if self.root else os.environ.get("USER", "nobody")}
{auth}StateSaveLocation={b}/state
SlurmdSpoolDir={b}/spool/%n
SlurmctldPidFile={b}/run/slurmctld.pid
SlurmdPidFile={b}/run/slurmd-%n.pid
SlurmctldLogFile={b}/log/slurmctld.log
SlurmdLogFile={b}/log/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc={b}/log/jobcomp.log
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=1,sched_interval=1
SlurmdTimeout=6
SlurmctldTimeout=30
ReturnToService=2
KillWait=3
MinJobAge=300
JobRequeue=1
MessageTimeout=5
InactiveLimit=0
NodeName=n1 NodeHostname=localhost NodeAddr=127.0.0.1 Port={n1} CPUs=1 Boards=1 SocketsPerBoard=1 CoresPerSocket=1 ThreadsPerCore=1 RealMemory=2000
NodeName=n2 NodeHostname=localhost NodeAddr=127.0.0.1 Port={n2} CPUs=1 Boards=1 SocketsPerBoard=1 CoresPerSocket=1 ThreadsPerCore=1 RealMemory=2000
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""
        with open(self.conf, "w") as f:
            f.write(text)

    def _start_munge(self):
        m = self.path("munge")
        os.makedirs(m, exist_ok=True)
        key = os.path.join(m, "munge.key")
        subprocess.run([_which("mungekey"), "--create", "--keyfile", key], check=True,
                       capture_output=True)
        shutil.chown(m, "munge", "munge")
        shutil.chown(key, "munge", "munge")
        os.chmod(m, 0o755)
        os.chmod(key, 0o400)
        # The scratch folder's parents must let the munge user reach its socket.
        os.chmod(self.base, 0o755)
        subprocess.run(["runuser", "-u", "munge", "--", _which("munged"), "--key-file", key,
                        "--socket", os.path.join(m, "munge.socket"),
                        "--pid-file", os.path.join(m, "munged.pid"),
                        "--log-file", os.path.join(m, "munged.log"),
                        "--seed-file", os.path.join(m, "munged.seed"), "--force"],
                       check=True, capture_output=True)
        self.pids["munged"] = self._read_pid(os.path.join(m, "munged.pid"))

    def _read_pid(self, path, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with open(path) as f:
                    pid = int(f.read().strip() or 0)
                if pid > 0:
                    return pid
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"no pid in {path}:\n" + self.logs())

    def start(self):
        for d in ("state", "run", "log", "spool/n1", "spool/n2"):
            os.makedirs(self.path(d), exist_ok=True)
        self._write_conf()
        if self.root:
            self._start_munge()
        subprocess.run([_which("slurmctld"), "-f", self.conf, "-i"], check=True,
                       env=self.env, capture_output=True)
        self.pids["slurmctld"] = self._read_pid(self.path("run", "slurmctld.pid"))
        for n in NODES:
            self.start_slurmd(n)
        self.wait_nodes_idle()
        return self

    def start_slurmd(self, node):
        pidfile = self.path("run", f"slurmd-{node}.pid")
        if os.path.exists(pidfile):
            os.unlink(pidfile)
        subprocess.run([_which("slurmd"), "-f", self.conf, "-N", node], check=True,
                       env=self.env, capture_output=True)
        self.pids["slurmd-" + node] = self._read_pid(pidfile)

    def kill_slurmd(self, node, sig=signal.SIGTERM):
        pid = self.pids.pop("slurmd-" + node, None)
        if pid:
            self._signal(pid, sig)

    def run(self, *args, check=True):
        out = subprocess.run(list(args), env=self.env, capture_output=True, text=True,
                             timeout=60)
        if check and out.returncode != 0:
            raise RuntimeError(f"{' '.join(args)}: {out.stderr.strip()}")
        return out.stdout

    def node_states(self):
        text = self.run("sinfo", "-h", "-N", "-o", "%N %T", check=False)
        return dict(line.split()[:2] for line in text.splitlines() if line.strip())

    def wait_nodes_idle(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = self.node_states()
            if all(states.get(n, "").startswith(("idle", "mixed", "allocated"))
                   for n in NODES):
                return
            time.sleep(0.2)
        raise RuntimeError(f"nodes not up: {self.node_states()}\n" + self.logs())

    def job_state(self, slurm_id):
        """(state, node) of a job squeue still knows, else (None, None)."""
        text = self.run("squeue", "-h", "-a", "-t", "all", "-j", str(slurm_id), "-o", "%T %N",
                        check=False).split()
        return (text[0], text[1] if len(text) > 1 else "") if text else (None, None)

    def jobcomp(self):
        """The job-completion log's records (one line per ended attempt)."""
        try:
            with open(self.path("log", "jobcomp.log")) as f:
                return f.read().splitlines()
        except OSError:
            return []

    def logs(self):
        out = []
        for name in sorted(os.listdir(self.path("log"))) if os.path.isdir(self.path("log")) \
                else []:
            with open(self.path("log", name), errors="replace") as f:
                out.append(f"--- {name}\n" + "".join(f.readlines()[-30:]))
        return "\n".join(out)

    @staticmethod
    def _signal(pid, sig):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass

    @staticmethod
    def _alive(pid):
        try:
            os.kill(pid, 0)
            return True
        except ProcessLookupError:
            return False

    def stop(self):
        """Cancels every job, stops the daemons (TERM, then KILL), removes the folder."""
        self.run("scancel", "-u", str(os.getuid()), check=False) if self.pids else None
        for name in ["slurmd-" + n for n in NODES] + ["slurmctld", "munged"]:
            pid = self.pids.pop(name, None)
            if not pid:
                continue
            self._signal(pid, signal.SIGTERM)
            deadline = time.monotonic() + 1
            while self._alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if self._alive(pid):
                self._signal(pid, signal.SIGKILL)
        shutil.rmtree(self.base, ignore_errors=True)
