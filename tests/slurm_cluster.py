"""A real single-node SLURM cluster in a temp folder, for the `slurm` tests (tests/test_slurm_sweep.py).

Where munged, slurmctld and slurmd exist (Debian: apt-get install slurm-wlm munge) and we are root, the
fixture writes a munge key, a slurm.conf (this host as the one node, state and spool folders, logs and
the munge socket under the temp folder, cred_expire 5 s (a requeued job may start again after it, not
after the default 120 s), MaxArraySize 11 so a 30-run sweep needs several arrays) and
starts munged, slurmctld and slurmd; at the end it stops exactly the processes it started (by their pid
files). The commands (sbatch, squeue, scontrol, ...) find the cluster through SLURM_CONF in ``env``.
Anywhere else the tests skip, saying what is missing.
"""
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "scontrol", "scancel")
MAX_ARRAY_SIZE = 11
CPUS = 8  # declared (config_overrides): eight one-CPU tasks at once on any machine


def missing():
    """Why no cluster can be started here ('' when it can)."""
    absent = [name for name in DAEMONS + CLIENTS if not (shutil.which(name) or shutil.which(name, path="/usr/sbin"))]
    if absent:
        return f"SLURM not installed ({', '.join(absent)} not found; apt-get install slurm-wlm munge)"
    if os.geteuid() != 0:
        return "starting slurmd needs root"
    return ""


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _daemon(name):
    return shutil.which(name) or shutil.which(name, path="/usr/sbin")


class SlurmCluster:
    """munged + slurmctld + slurmd of one node, configured and logged under ``root``."""

    def __init__(self, root: Path, **conf):
        self.root = Path(root)
        self.host = socket.gethostname()
        for sub in ("state", "spool", "munge", "log"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        (self.root / "munge").chmod(0o700)
        self.socket = self.root / "munge" / "munge.socket"
        self.conf = self.root / "slurm.conf"
        self.pids = {}
        settings = {
            "ClusterName": "vrtest", "SlurmctldHost": self.host, "SlurmUser": "root", "SlurmdUser": "root",
            "SlurmctldPort": _free_port(), "SlurmdPort": _free_port(), "AuthType": "auth/munge",
            "AuthInfo": f"socket={self.socket},cred_expire=5", "CredType": "cred/munge",
            "StateSaveLocation": self.root / "state", "SlurmdSpoolDir": self.root / "spool",
            "SlurmctldPidFile": self.root / "slurmctld.pid", "SlurmdPidFile": self.root / "slurmd.pid",
            "SlurmctldLogFile": self.root / "log" / "slurmctld.log",
            "SlurmdLogFile": self.root / "log" / "slurmd.log",
            "ProctrackType": "proctrack/linuxproc", "TaskPlugin": "task/none",
            "SelectType": "select/cons_tres", "SelectTypeParameters": "CR_CPU",
            "SchedulerType": "sched/backfill", "MaxArraySize": MAX_ARRAY_SIZE, "JobRequeue": 1,
            "KillWait": 5, "OverTimeLimit": 0, "MinJobAge": 600, "ReturnToService": 2,
            "SlurmdParameters": "config_overrides", "MpiDefault": "none",
            "AccountingStorageType": "accounting_storage/none", "JobCompType": "jobcomp/none",
            "JobAcctGatherType": "jobacct_gather/none", "SchedulerParameters": "sched_interval=2",
            "SlurmctldTimeout": 30, "SlurmdTimeout": 30, "InactiveLimit": 0, "MessageTimeout": 10,
        }
        settings.update(conf)
        lines = [f"{k}={v}" for k, v in settings.items()]
        lines.append(f"NodeName={self.host} CPUs={CPUS} RealMemory=1000 State=UNKNOWN")
        lines.append("PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP")
        self.conf.write_text("\n".join(lines) + "\n")
        self.env = dict(os.environ, SLURM_CONF=str(self.conf))

    def start(self):
        key = self.root / "munge" / "munge.key"
        subprocess.run([_daemon("mungekey"), "--create", "--keyfile", str(key)], check=True,
                       capture_output=True)
        key.chmod(0o600)
        munge_pid = self.root / "munge" / "munged.pid"
        subprocess.run([_daemon("munged"), "--force", "--key-file", str(key), "--socket", str(self.socket),
                        "--pid-file", str(munge_pid), "--log-file", str(self.root / "log" / "munged.log"),
                        "--seed-file", str(self.root / "munge" / "munged.seed")], check=True, capture_output=True)
        self._remember("munged", munge_pid)
        subprocess.run([_daemon("slurmctld"), "-c", "-i"], env=self.env, check=True, capture_output=True)
        self._remember("slurmctld", self.root / "slurmctld.pid")
        subprocess.run([_daemon("slurmd"), "-c"], env=self.env, check=True, capture_output=True)
        self._remember("slurmd", self.root / "slurmd.pid")
        deadline = time.time() + 60
        while time.time() < deadline:
            info = subprocess.run(["sinfo", "-h", "-o", "%T"], env=self.env, capture_output=True, text=True)
            if info.returncode == 0 and info.stdout.strip() in ("idle", "mixed", "allocated"):
                return self
            time.sleep(0.5)
        raise RuntimeError(f"the test SLURM node did not come up: {self.log_tail()}")

    def _remember(self, name, pid_file):
        deadline = time.time() + 20
        while time.time() < deadline:
            if pid_file.exists() and pid_file.read_text().strip():
                self.pids[name] = int(pid_file.read_text().split()[0])
                return
            time.sleep(0.1)
        raise RuntimeError(f"{name} wrote no pid file {pid_file}: {self.log_tail()}")

    def log_tail(self, lines=15):
        text = []
        for log in sorted((self.root / "log").glob("*.log")):
            text.append(f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(text)

    def stop(self):
        """Cancel what is left, then stop the daemons this fixture started (and only those)."""
        if "slurmctld" in self.pids:
            subprocess.run(["scancel", "--full", "-u", "root"], env=self.env, capture_output=True)
        for name in reversed(DAEMONS):
            pid = self.pids.pop(name, None)
            if pid is None:
                continue
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            deadline = time.time() + 15
            while time.time() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
            else:
                os.kill(pid, signal.SIGKILL)

    def wait_idle(self, timeout=120):
        """Wait until no job of the cluster is pending or running."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            queue = subprocess.run(["squeue", "-h", "-o", "%i %T"], env=self.env, capture_output=True, text=True)
            if queue.returncode == 0 and not queue.stdout.strip():
                return
            time.sleep(1)
        raise TimeoutError(f"jobs still queued after {timeout} s:\n{queue.stdout}")
