"""Running the ``spockmip`` command line from tests: as a subprocess, with tiny training settings."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

SPOCKMIP = [sys.executable, "-m", "spockmip.cli"]
TINY_TRAINING = [
    "--model", "unetmss", "--init-features", "2", "--patch-size", "32", "--strides", "16",
    "--batch-size", "4", "--patches-per-epoch", "8", "--threads", "1", "--no-progress",
]  # fmt: skip


def train_args(
    data: Path,
    out: Path,
    epochs: int,
    *extra: str,
    train: Sequence[str] = ("phantom000", "phantom001"),
    validation: Sequence[str] = ("phantom002",),
) -> list[str]:
    return [
        "train", "--data", str(data), "--train", *train, "--validation", *validation,
        "--out", str(out), "--epochs", str(epochs), *TINY_TRAINING, *extra,
    ]  # fmt: skip


def spockmip(*args: str) -> subprocess.CompletedProcess:
    """The command as a user runs it: its own process, exit status and stderr as they would see them."""
    return subprocess.run([*SPOCKMIP, *args], capture_output=True, text=True)
