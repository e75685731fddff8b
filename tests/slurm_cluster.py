"""A throw-away single-node SLURM cluster on localhost, for tests (no systemd: daemons started by hand).

Facts this relies on (Debian's slurm 22.05): the job step reads /etc/slurm/slurm.conf whatever SLURM_CONF
says, munged must run as the munge user with /run/munge present, and without slurmdbd `sacct` has no
data, so the executor plugin must poll with `squeue`, which forgets a job MinJobAge seconds after it ends.
What a job was given (CPUs, memory, time limit) stays readable afterwards in the job completion log
(jobcomp/filetxt). Like many production clusters, the controller rejects at submission a job that asks for
more than the partition allows (EnforcePartLimits), rather than leaving it pending for ever.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

SLURM_CONF = Path("/etc/slurm/slurm.conf")
DAEMONS = ("munged", "slurmctld", "slurmd", "sinfo", "sbatch", "squeue")
MIN_JOB_AGE = 60


def missing_binaries() -> list[str]:
    return [name for name in DAEMONS if shutil.which(name) is None and not Path("/usr/sbin", name).exists()]


def _config(state: Path, cpus: int, memory_mb: int, max_time_min: int) -> str:
    return f"""\
ClusterName=spockmiptest
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation={state / "ctld"}
SlurmdSpoolDir={state / "spool"}
SlurmctldPidFile={state / "slurmctld.pid"}
SlurmdPidFile={state / "slurmd.pid"}
SlurmctldLogFile={state / "slurmctld.log"}
SlurmdLogFile={state / "slurmd.log"}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU={memory_mb // cpus}
MinJobAge={MIN_JOB_AGE}
JobCompType=jobcomp/filetxt
JobCompLoc={state / "jobcomp.txt"}
EnforcePartLimits=ALL
ReturnToService=2
NodeName=localhost NodeHostname=localhost CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime={max_time_min} State=UP
"""


class LocalSlurmCluster:
    """Start munged, slurmctld and slurmd; stop exactly those processes (by PID) afterwards."""

    def __init__(self, state: Path, cpus: int = 2, memory_mb: int = 8000, max_time_min: int = 120) -> None:
        self.state, self.cpus, self.memory_mb, self.max_time_min = state, cpus, memory_mb, max_time_min
        self._backup: Path | None = None
        self._munged: int | None = None

    def start(self, timeout: float = 60.0) -> None:
        for folder in ("ctld", "spool"):
            (self.state / folder).mkdir(parents=True, exist_ok=True)
        if SLURM_CONF.exists():
            self._backup = self.state / "slurm.conf.backup"
            shutil.copy2(SLURM_CONF, self._backup)
        SLURM_CONF.parent.mkdir(parents=True, exist_ok=True)
        SLURM_CONF.write_text(_config(self.state, self.cpus, self.memory_mb, self.max_time_min))
        self._start_munged()
        subprocess.run(["slurmctld", "-c"], check=True)
        subprocess.run(["slurmd", "-N", "localhost"], check=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            node = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
            if node.stdout.strip() == "idle":
                return
            time.sleep(0.5)
        raise RuntimeError(f"SLURM node not idle after {timeout} s; see {self.state}/slurmctld.log")

    def completed_jobs(self) -> dict[str, dict[str, str]]:
        """Job id -> the controller's record of each job that has ended (its job completion log): fields
        such as JobState, Partition, TimeLimit (minutes) and Tres (e.g. ``cpu=1,mem=6000M,node=1``)."""
        path = self.state / "jobcomp.txt"
        lines = path.read_text().splitlines() if path.exists() else []
        records = [dict(field.split("=", 1) for field in line.split() if "=" in field) for line in lines]
        return {record["JobId"]: record for record in records}

    def _start_munged(self) -> None:
        socket_dir = Path("/run/munge")
        socket_dir.mkdir(parents=True, exist_ok=True)
        shutil.chown(socket_dir, "munge", "munge")
        pid_file = socket_dir / "munged.pid"
        subprocess.run(["runuser", "-u", "munge", "--", "munged", "--force"], check=True)
        self._munged = int(pid_file.read_text().split()[0])

    def stop(self) -> None:
        pids = [self._read_pid("slurmd.pid"), self._read_pid("slurmctld.pid"), self._munged]
        for pid in filter(None, pids):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        for pid in filter(None, pids):
            self._wait_gone(pid)
        if self._backup is not None:
            shutil.copy2(self._backup, SLURM_CONF)
        else:
            SLURM_CONF.unlink(missing_ok=True)

    def _read_pid(self, name: str) -> int | None:
        path = self.state / name
        return int(path.read_text().split()[0]) if path.exists() else None

    @staticmethod
    def _alive(pid: int) -> bool:
        """Running, not merely a zombie that nobody reaped (daemons are re-parented here)."""
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, IndexError):
            return False
        return state != "Z"

    def _wait_gone(self, pid: int, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._alive(pid):
                return
            time.sleep(0.2)
        os.kill(pid, signal.SIGKILL)
