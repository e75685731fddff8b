"""Start-up shared by batch jobs (workflow scripts): logs to a file, torch held to the job's cores, a GPU
of its own.

A workflow manager hands each job a log file and a number of cores; a job that prints elsewhere loses its
diagnostics, and one that lets torch take every core of a shared node slows all its neighbours. It hands
out no GPU on a workstation: every CUDA job would compute on the first one, so a GPU job claims a free one
(:mod:`spockmip.runtime.gpuslots`).
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from pathlib import Path

from spockmip.runtime.gpuslots import claim_gpu


def start_job(log_path: str | Path, threads: int, device: str | None = "cpu") -> None:
    """Send stderr and logging to ``log_path``, limit torch to ``threads``, record where the job ran, and
    claim a free GPU for a job that computes on ``device``.

    ``device`` is the device the job asks for, as :func:`spockmip.runtime.devices.select_device` takes it:
    None (CUDA when present) or ``cuda`` claims a GPU (:func:`spockmip.runtime.gpuslots.claim_gpu`), which
    must happen before CUDA starts, hence here; the default, cpu, is for jobs that compute on no GPU.
    Jobs that do not compute with torch (evaluation, tables, figures) never import it: it takes seconds
    of each short job's start-up. Torch is limited to ``threads`` here only if the job has imported it by
    now; GPU jobs import it later and pass ``threads`` on themselves.
    """
    path = Path(log_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr = path.open("w", buffering=1)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(max(1, threads))
    batch_job = os.environ.get("SLURM_JOB_ID")
    scheduler = f"SLURM job {batch_job}" if batch_job else "no batch scheduler"
    logging.info("host %s, %d thread(s), %s", socket.gethostname(), threads, scheduler)
    claim_gpu(device)
