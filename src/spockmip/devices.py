"""Where computations run: device choice, mixed precision, CPU threads.

CPU is first-class (fp32, threads taken from the job's allocation); CUDA gets fp16 autocast, as the
released code trained and predicted with mixed precision.
"""

from __future__ import annotations

import os

import torch


def select_device(requested: str | None = None) -> torch.device:
    """The requested device, else CUDA when present, else the CPU."""
    if requested:
        return torch.device(requested)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast(device: torch.device) -> torch.autocast:
    """Mixed precision on CUDA; exact fp32 on the CPU."""
    return torch.autocast(device_type=device.type, dtype=torch.float16, enabled=device.type == "cuda")


def resolve_threads(requested: int | None = None) -> int:
    """Threads for torch: the request, else the job's allocation (OMP_NUM_THREADS, SLURM), else the CPUs."""
    if requested:
        return requested
    for variable in ("OMP_NUM_THREADS", "SLURM_CPUS_PER_TASK"):
        value = os.environ.get(variable, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return len(os.sched_getaffinity(0))
