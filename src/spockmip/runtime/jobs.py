"""Start-up shared by batch jobs (workflow scripts): logs to a file, torch held to the job's cores.

A workflow manager hands each job a log file and a number of cores; a job that prints elsewhere loses its
diagnostics, and one that lets torch take every core of a shared node slows all its neighbours.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from pathlib import Path


def start_job(log_path: str | Path, threads: int) -> None:
    """Send stderr and logging to ``log_path``, limit torch to ``threads``, record where the job ran.

    Jobs that do not compute with torch (evaluation, tables, figures) never import it: it takes seconds
    of each short job's start-up. A job that does has imported it, through the library, before this runs.
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
