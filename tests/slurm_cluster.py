"""A private one-node Slurm cluster for the tests: munged, slurmctld and slurmd from Debian's ``slurm-wlm`` and
``munge``, each with its own key, sockets, ports, state and logs under one folder, so it neither needs nor touches
a system Slurm. Clients find it through ``SLURM_CONF``.

    python tests/slurm_cluster.py up DIR     # prints the export line for SLURM_CONF
    python tests/slurm_cluster.py down DIR

Needs root (slurmd runs jobs as their users) and the packages: ``apt-get install slurm-wlm munge``.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
INSTALL_HINT = ("a one-node Slurm cluster could not be started: the cluster tests need root and Debian's Slurm "
                "('apt-get update && apt-get install -y slurm-wlm munge', which the README's test command runs)")
PARTITION = "cpu"


class ClusterUnavailable(RuntimeError):
    pass


@dataclass(frozen=True)
class Cluster:
    root: Path

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    @property
    def env(self) -> dict:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def log(self, daemon: str) -> str:
        path = self.root / f"{daemon}.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024 - 1024
    return 4096


def _config(root: Path, host: str) -> str:
    cpus = os.cpu_count() or 1
    return "\n".join([
        "ClusterName=cotproof-test",
        f"SlurmctldHost={host}",
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        f"AuthInfo=socket={root / 'munge.socket'},cred_expire=10",  # also the wait before a requeued job starts again
        f"SlurmctldPort={_free_port()}",
        f"SlurmdPort={_free_port()}",
        f"StateSaveLocation={root / 'state'}",
        f"SlurmdSpoolDir={root / 'spool'}",
        f"SlurmctldPidFile={root / 'slurmctld.pid'}",
        f"SlurmdPidFile={root / 'slurmd.pid'}",
        f"SlurmctldLogFile={root / 'slurmctld.log'}",
        f"SlurmdLogFile={root / 'slurmd.log'}",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "MpiDefault=none",
        "SchedulerType=sched/backfill",
        "SchedulerParameters=bf_interval=2,sched_interval=2",  # a requeued task starts soon after it may
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core",
        "ReturnToService=2",
        "JobRequeue=1",
        "KillWait=2",  # seconds from SIGTERM to SIGKILL when a job is cancelled or runs out of time
        "MinJobAge=60",
        "InactiveLimit=0",
        "SlurmctldTimeout=30",
        "SlurmdTimeout=30",
        f"NodeName={host} CPUs={cpus} RealMemory={_memory_mb()} State=UNKNOWN",
        f"PartitionName={PARTITION} Nodes={host} Default=YES MaxTime=INFINITE State=UP",
        "",
    ])


def _responding(env: dict) -> bool:
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    states = out.stdout.split()
    return out.returncode == 0 and bool(states) and all(s.rstrip("*") in ("idle", "mix", "alloc") for s in states)


def up(root: str | os.PathLike, wait: float = 60.0) -> Cluster:
    """Start the three daemons under ``root`` and wait until the node takes jobs."""
    root = Path(root).resolve()
    missing = [d for d in DAEMONS if not (shutil.which(d) or Path("/usr/sbin", d).exists())]
    if missing or os.geteuid() != 0:
        raise ClusterUnavailable(INSTALL_HINT + (f"; missing: {', '.join(missing)}" if missing else "; not root"))
    for sub in ("state", "spool"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    root.chmod(0o700)
    key = root / "munge.key"
    if not key.exists():
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
    host = socket.gethostname().split(".")[0]
    cluster = Cluster(root)
    cluster.conf.write_text(_config(root, host))
    sbin = "/usr/sbin"
    env = cluster.env
    runs = [
        [shutil.which("munged") or f"{sbin}/munged", "--force", f"--socket={root / 'munge.socket'}",
         f"--key-file={key}", f"--pid-file={root / 'munged.pid'}", f"--log-file={root / 'munged.log'}",
         f"--seed-file={root / 'munged.seed'}"],
        [shutil.which("slurmctld") or f"{sbin}/slurmctld", "-c", "-f", str(cluster.conf)],
        [shutil.which("slurmd") or f"{sbin}/slurmd", "-f", str(cluster.conf)],
    ]
    for argv in runs:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            down(root)
            raise ClusterUnavailable(f"{INSTALL_HINT}; {Path(argv[0]).name} failed: "
                                     f"{(done.stderr or done.stdout).strip()[-500:]}")
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if _responding(env):
            return cluster
        time.sleep(0.5)
    logs = cluster.log("slurmctld")[-800:] + cluster.log("slurmd")[-800:]
    down(root)
    raise ClusterUnavailable(f"{INSTALL_HINT}; the node did not come up in {wait:.0f} s:\n{logs}")


def down(root: str | os.PathLike) -> None:
    """Stop what ``up`` started (its pid files), the daemons in reverse order."""
    root = Path(root)
    for daemon in reversed(DAEMONS):
        pid_file = root / f"{daemon}.pid"
        try:
            pid = int(pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("up", "down"):
        sys.exit(__doc__)
    if sys.argv[1] == "up":
        try:
            c = up(sys.argv[2])
        except ClusterUnavailable as err:
            sys.exit(str(err))
        print(f"export SLURM_CONF={c.conf}")
    else:
        down(sys.argv[2])
