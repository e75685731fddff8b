"""What every benchmark prints about the machine, so a ratio is never read off another machine's numbers."""

from __future__ import annotations

import os
import platform


def cpu_model() -> str:
    """The CPU's marketing name, so numbers from different machines are not compared by accident."""
    try:
        with open("/proc/cpuinfo") as info:
            return next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def print_machine(threads: int | None, versions: dict[str, str]) -> None:
    """Platform, CPU, cores (and torch threads), library versions and the load just before timing."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"machine: {platform.platform()}; cpu: {cpu_model()}")
    torch_threads = f"; torch threads: {threads}" if threads is not None else ""
    print(f"cores: {os.cpu_count()} (usable by this process: {usable}){torch_threads}")
    print(", ".join([f"python {platform.python_version()}", *(f"{k} {v}" for k, v in versions.items())]))
    print(f"load average before timing (other processes share these cores): {os.getloadavg()[0]:.2f}")
