"""One GPU per job on a machine with several: a free GPU is claimed through a lock file before CUDA starts.

Without a scheduler that assigns devices, every CUDA job computes on device 0, so jobs started side by side
(Snakemake's ``--resources gpu=N`` only counts them) share one card while the others idle. A job that will
compute on CUDA therefore takes the first GPU whose lock it can hold and makes it the only one CUDA sees
(``CUDA_VISIBLE_DEVICES``). The lock is ``flock`` on a file per GPU, held on a descriptor that stays open for
the life of the process: the kernel releases it when the process ends, however it ends (SIGKILL included),
so a crashed job never leaves a GPU claimed.

GPUs are counted with ``nvidia-smi``, which asks the driver (NVML) and not CUDA: CUDA reads
``CUDA_VISIBLE_DEVICES`` once, when it initialises, so counting through CUDA would make the claim too late.
Nothing here imports torch.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

LOCK_DIR_VARIABLE = "SPOCKMIP_GPU_LOCK_DIR"
# Fixed, not the temporary folder of the user or job (TMPDIR): every job of every user on the machine must
# see the same lock files, or two of them could claim the same GPU.
DEFAULT_LOCK_DIR = Path("/tmp/spockmip-gpu-locks")
# Seconds between two looks for a free GPU while all are claimed: short next to any GPU job.
POLL_SECONDS = 5.0
# nvidia-smi normally answers in well under a second; a driver in trouble can keep it hanging.
NVIDIA_SMI_TIMEOUT_SECONDS = 30.0
NVIDIA_SMI_QUERY = ("nvidia-smi", "--query-gpu=index,uuid", "--format=csv,noheader")
# A GPU UUID as nvidia-smi prints it (GPU-8-4-4-4-12 hex digits); it names a lock file, so nothing else.
_UUID = re.compile(r"GPU-[0-9A-Fa-f-]+")


@dataclass(frozen=True)
class Gpu:
    """A GPU as the driver lists it: its NVML index (the order nvidia-smi shows) and its UUID."""

    index: int
    uuid: str


@dataclass(frozen=True)
class GpuClaim:
    """A GPU this process holds: the lock file and the open descriptor whose ``flock`` holds it."""

    gpu: Gpu
    lock_path: Path
    fd: int


# The claim of this process; its descriptor is never closed, so the lock lasts as long as the process.
_held: list[GpuClaim] = []


def claims_gpu(device: str | None) -> bool:
    """Whether a job asking for ``device`` takes a free GPU: when it leaves the choice to spockmip (None,
    which means CUDA when present) or asks for ``cuda`` without an index. ``cuda:N`` names its card, which
    a claim would renumber, and cpu or mps compute on no CUDA device."""
    return device is None or device.strip() == "cuda"


def lock_dir() -> Path:
    """The folder of the lock files: ``$SPOCKMIP_GPU_LOCK_DIR``, else :data:`DEFAULT_LOCK_DIR`."""
    return Path(os.environ.get(LOCK_DIR_VARIABLE) or DEFAULT_LOCK_DIR)


def parse_gpus(text: str) -> list[Gpu]:
    """The GPUs in ``nvidia-smi --query-gpu=index,uuid --format=csv,noheader`` output (``0, GPU-…`` per
    line); ValueError on any other line, since a UUID is used as a file name."""
    gpus = []
    for line in text.splitlines():
        if not line.strip():
            continue
        index, _, uuid = (part.strip() for part in line.partition(","))
        if not index.isdigit() or not _UUID.fullmatch(uuid):
            raise ValueError(f"not an index and a GPU UUID: {line!r}")
        gpus.append(Gpu(int(index), uuid))
    return gpus


def list_gpus() -> list[Gpu]:
    """The machine's GPUs, from ``nvidia-smi`` (the driver's view, which starts no CUDA context); none
    where nvidia-smi is missing, fails or answers something unexpected (CUDA could not use them either)."""
    try:
        done = subprocess.run(
            NVIDIA_SMI_QUERY, capture_output=True, text=True, timeout=NVIDIA_SMI_TIMEOUT_SECONDS, check=False
        )
    except FileNotFoundError:
        return []
    except (OSError, subprocess.TimeoutExpired) as error:
        log.warning("nvidia-smi could not list the GPUs (%s); no GPU claimed", error)
        return []
    if done.returncode != 0:
        reason = (done.stderr or done.stdout).strip().splitlines()
        log.warning(
            "nvidia-smi failed (%s); no GPU claimed", reason[0] if reason else f"exit {done.returncode}"
        )
        return []
    try:
        return parse_gpus(done.stdout)
    except ValueError as error:
        log.warning("nvidia-smi gave unexpected output (%s); no GPU claimed", error)
        return []


def claim_gpu(device: str | None, poll_seconds: float = POLL_SECONDS) -> GpuClaim | None:
    """Make one free GPU the only one CUDA sees, for a job that will compute on ``device``; waits while
    every GPU is claimed. Must run before anything initialises CUDA in this process.

    Claims nothing (returns None) when the job does not compute on the default CUDA device
    (:func:`claims_gpu`), when a scheduler or the user already chose the GPUs (``CUDA_VISIBLE_DEVICES``
    set, or a SLURM job: its allocation holds), when the machine has no GPU, or when no lock can be made
    in the lock folder (a warning: the job then runs, possibly on a shared GPU, rather than fail).
    """
    if not claims_gpu(device) or _devices_assigned():
        return None
    gpus = list_gpus()
    if not gpus:
        return None
    folder = lock_dir()
    try:
        claim = _wait_for_free_gpu(gpus, folder, poll_seconds)
    except OSError as error:
        reason = f"{error.strerror}: {error.filename}" if error.filename else str(error)
        log.warning(
            "%s: no GPU lock can be made there (%s); no GPU claimed, so this job may share one with others",
            folder,
            reason,
        )
        return None
    _held.append(claim)
    os.environ["CUDA_VISIBLE_DEVICES"] = claim.gpu.uuid
    log.info(
        "claimed GPU %d (%s): CUDA_VISIBLE_DEVICES set to it; lock %s held until this process ends",
        claim.gpu.index,
        claim.gpu.uuid,
        claim.lock_path,
    )
    return claim


def _devices_assigned() -> bool:
    """Whether the GPUs are someone else's choice: ``CUDA_VISIBLE_DEVICES`` is set, or this is a SLURM job,
    whose allocation stands even where it holds no GPU (logged, as the job then computes where CUDA
    defaults)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    slurm_job = os.environ.get("SLURM_JOB_ID")
    if visible is not None:
        source = f"SLURM job {slurm_job}" if slurm_job else "the environment"
        log.info("CUDA_VISIBLE_DEVICES=%s, from %s: no GPU claimed", visible, source)
        return True
    if slurm_job:
        log.warning(
            "SLURM job %s set no CUDA_VISIBLE_DEVICES (no GPU allocated, e.g. no --gpus): no GPU claimed",
            slurm_job,
        )
        return True
    return False


def _wait_for_free_gpu(gpus: list[Gpu], folder: Path, poll_seconds: float) -> GpuClaim:
    """The first GPU whose lock this process can take, looking again every ``poll_seconds`` while all are
    held; says once that it waits. OSError where the folder or a lock file cannot be made."""
    _make_shared_folder(folder)
    waiting = False
    while True:
        for gpu in gpus:
            claim = _try_lock(gpu, folder / f"{gpu.uuid}.lock")
            if claim is not None:
                return claim
        if not waiting:
            log.info(
                "all %d GPU(s) are claimed by other jobs (locks in %s); waiting for one", len(gpus), folder
            )
            waiting = True
        time.sleep(poll_seconds)


def _make_shared_folder(folder: Path) -> None:
    """Create ``folder`` writable by every user and sticky (mode 1777, like /tmp), so the jobs of all users
    share the locks and none can delete another's lock file; an existing folder is left as it is."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        folder.mkdir()
    except FileExistsError:
        return
    folder.chmod(0o1777)  # mkdir applies the umask


def _try_lock(gpu: Gpu, path: Path) -> GpuClaim | None:
    """``gpu``'s claim if its lock at ``path`` is free, else None (another process holds it)."""
    fd = _open_lock_file(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return GpuClaim(gpu, path, fd)


def _open_lock_file(path: Path) -> int:
    """A descriptor on the lock file at ``path``, which is created readable and writable by every user
    (0666) if missing. Lock files are never deleted: a process holding a lock on a deleted file would not
    keep the next one, which opens a new file of that name, from taking the same GPU.

    Read-only suffices for ``flock``, so another user's lock file can be opened whatever its mode."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
        return os.open(path, os.O_RDONLY)
    os.fchmod(fd, 0o666)  # os.open applies the umask
    return fd
