"""Provenance records: how each result was made, in a small JSON file beside it.

A code fingerprint decides when a result is recomputed (:mod:`spockmip.runtime.provenance`), but a result
found later, copied to another machine or quoted in a paper, must say by itself which code, settings and
input files made it, and where and how fast it ran. A record holds two parts:

- what identical runs share: the format, the kind of result, the code (package version, fingerprint, git
  commit), the effective settings, the SHA-256 of every input and output file, and details of the kind
  (a training's run identity, a prediction's thresholds). Two runs of the same computation that compute
  the same bits have equal values here, wherever they ran.
- what depends on the machine and the moment (:data:`MACHINE_FIELDS`): library versions, host, platform,
  device and GPU, threads, start time, wall time and peak memory.

A checkpoint carries what identical runs share without naming a path and without the git state, which
another commit of unchanged code would change (:func:`deterministic_record`; a training's input hashes
are in its run identity, by subject), and the library versions, which are fixed on one machine: so
identical reruns still write identical bytes. The JSON record adds the rest (:func:`complete_record`).
Paths are written relative to the current folder (a workflow's root) when they lie under it, so two
copies of a workflow record the same paths.

Torch-free: torch's CUDA and cuDNN versions, the GPU's name and its memory are read only where the process
has imported torch already; package versions come from the installed metadata. The host name is
``$SPOCKMIP_HOSTNAME`` where set (containers and tests give a stable or distinct name), else the system's.
"""

from __future__ import annotations

import datetime
import functools
import json
import os
import platform
import re
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from spockmip import __version__
from spockmip.errors import DataError
from spockmip.files.hashing import file_sha256
from spockmip.files.outputs import atomic_path
from spockmip.runtime.provenance import PACKAGE, PACKAGE_DIR

FORMAT = 1
RECORD_NAME = "provenance.json"
HOSTNAME_VARIABLE = "SPOCKMIP_HOSTNAME"
# The fields (dotted paths, each with everything under it) that may differ between two runs of the same
# computation on other machines, at other times or with other library builds; every other field of two
# such records is equal. docs/provenance.md lists them with their meaning.
MACHINE_FIELDS = (
    "versions.python",
    "versions.packages",
    "versions.cuda",
    "versions.cudnn",
    "machine.host",
    "machine.platform",
    "machine.device",
    "machine.gpu",
    "machine.threads",
    "run.started",
    "run.wall_seconds",
    "run.peak_memory_mib",
    "run.gpu_memory_mib",
    "run.epochs_trained",
    "run.epochs_resumed",
)
GIT_TIMEOUT_S = 10


def machine_dependent(field: str) -> bool:
    """Whether the dotted ``field`` is, or lies under, one of :data:`MACHINE_FIELDS`."""
    return any(field == name or field.startswith(f"{name}.") for name in MACHINE_FIELDS)


@dataclass(frozen=True)
class Stopwatch:
    """When a result's computation started: the UTC time a record shows, and the clock its wall time is
    measured on."""

    started: str
    clock: float

    @classmethod
    def start(cls) -> Stopwatch:
        """A stopwatch started now (the wall clock for the record, a monotonic one to measure with)."""
        now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        return cls(now, time.perf_counter())

    def seconds(self) -> float:
        """Seconds since the start, to the hundredth: finer would only be noise."""
        return round(time.perf_counter() - self.clock, 2)


def plain(value: Any) -> Any:
    """``value`` as JSON reads it back (tuples as lists, paths as text): what a checkpoint stores is then
    exactly what the JSON record says."""
    return json.loads(json.dumps(value, default=str))


def shown_path(path: str | Path, root: Path | None = None) -> str:
    """``path`` relative to ``root`` (default: the current folder) when it lies under it, else absolute:
    two copies of a workflow name their files alike."""
    absolute = Path(os.path.abspath(path))
    base = Path(os.path.abspath(root or Path.cwd()))
    return str(absolute.relative_to(base)) if absolute.is_relative_to(base) else str(absolute)


def file_hashes(paths: Iterable[str | Path]) -> dict[str, str]:
    """The SHA-256 of each file, under its shown path (:func:`shown_path`); the hashes a run identity has
    already read come from this process's cache (:func:`spockmip.files.hashing.file_sha256`)."""
    return {shown_path(path): file_sha256(path) for path in paths}


@functools.cache
def _package_versions() -> tuple[tuple[str, str], ...]:
    """Every installed package that spockmip requires or offers as an extra, with its version."""
    try:
        requirements = metadata.requires(PACKAGE) or []
    except metadata.PackageNotFoundError:  # run from a source folder that was never installed
        return ()
    versions = {}
    for requirement in requirements:
        name = re.match(r"[A-Za-z0-9_.-]+", requirement)
        if name is None:
            continue
        try:
            versions[name.group(0)] = metadata.version(name.group(0))
        except metadata.PackageNotFoundError:
            continue
    return tuple(sorted(versions.items()))


def versions() -> dict[str, Any]:
    """Python's version, the installed packages' (:func:`_package_versions`), and the CUDA and cuDNN
    versions of torch where this process has imported it (None elsewhere)."""
    torch = sys.modules.get("torch")
    cuda = cudnn = None
    if torch is not None:
        cuda = torch.version.cuda
        cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {
        "python": platform.python_version(),
        "packages": dict(_package_versions()),
        "cuda": cuda,
        "cudnn": cudnn,
    }


def host_name() -> str:
    """``$SPOCKMIP_HOSTNAME`` where set, else the system's host name."""
    return os.environ.get(HOSTNAME_VARIABLE) or socket.gethostname()


def _cuda_device(device: str | None) -> Any:
    """``device`` as a torch CUDA device when it is one and this process uses torch, else None."""
    torch = sys.modules.get("torch")
    if torch is None or device is None or not str(device).startswith("cuda") or not torch.cuda.is_available():
        return None
    return torch.device(device)


def machine(device: str | None, threads: int | None) -> dict[str, Any]:
    """Where a result was computed: host, operating system, device (None for a computation without
    torch), the GPU's name, and the CPU threads it was given."""
    cuda = _cuda_device(device)
    gpu = sys.modules["torch"].cuda.get_device_name(cuda) if cuda is not None else None
    return {
        "host": host_name(),
        "platform": platform.platform(),
        "device": None if device is None else str(device),
        "gpu": gpu,
        "threads": threads,
    }


def _rss_mib(who: int) -> float:
    """The peak resident memory of ``who`` (:data:`resource.RUSAGE_SELF` or ``RUSAGE_CHILDREN``: the
    largest of the children waited for) in MiB; Linux counts kilobytes, macOS bytes.

    Linux counts in a child's peak the memory it shared with its parent when it started (a forked loader
    worker, even a program it ran): the children's peak is at least this process's size at that moment."""
    peak = resource.getrusage(who).ru_maxrss
    return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)


def usage(watch: Stopwatch, device: str | None) -> dict[str, Any]:
    """Start, wall time and peak memory of the computation so far: this process's, its children's, and on
    a CUDA device torch's most allocated and reserved.

    Measure before :func:`git_state` first runs: git is a child process, and counts as large as this
    process was when it started (:func:`_rss_mib`)."""
    cuda = _cuda_device(device)
    gpu = None
    if cuda is not None:
        memory = sys.modules["torch"].cuda
        gpu = {
            "max_allocated": round(memory.max_memory_allocated(cuda) / 2**20, 1),
            "max_reserved": round(memory.max_memory_reserved(cuda) / 2**20, 1),
        }
    return {
        "started": watch.started,
        "wall_seconds": watch.seconds(),
        "peak_memory_mib": {
            "self": _rss_mib(resource.RUSAGE_SELF),
            "children": _rss_mib(resource.RUSAGE_CHILDREN),
        },
        "gpu_memory_mib": gpu,
    }


def _git(*args: str) -> str | None:
    """The output of a git command run in the package folder, or None where git or a repository is missing."""
    try:
        result = subprocess.run(
            ["git", "-C", str(PACKAGE_DIR), *args],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


@functools.cache
def git_state() -> dict[str, Any] | None:
    """The commit of the repository the running package's code is tracked in, and whether its tracked
    files differ from that commit; None where the code is not in a git repository (an installed package,
    a container without git). Only a repository that tracks the package's own files counts: a package
    installed into a virtual environment inside some other repository is not that repository's code."""
    if _git("ls-files", "--error-unmatch", "__init__.py") is None:
        return None
    commit = _git("rev-parse", "HEAD")
    if not commit:
        return None
    changes = _git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(changes) if changes is not None else None}


def deterministic_record(kind: str, code: str, settings: Mapping[str, Any], **details: Any) -> dict[str, Any]:
    """What identical runs of a computation share, without paths: what a checkpoint carries.

    ``kind`` names the result (``training``, ``prediction``, ``table``), ``code`` is the fingerprint of
    the code that computed it (:func:`spockmip.runtime.provenance.library_fingerprint`), ``settings`` its
    effective settings, ``details`` further sections of the kind (a training's run identity). Library
    versions are included: they are fixed for a machine, so reruns there stay identical.
    """
    return plain(
        {
            "format": FORMAT,
            "kind": kind,
            "code": {"spockmip": __version__, "fingerprint": code},
            "settings": settings,
            **details,
            "versions": versions(),
        }
    )


def complete_record(
    deterministic: Mapping[str, Any],
    inputs: Mapping[str, str | None],
    outputs: Mapping[str, str],
    run: Mapping[str, Any],
    device: str | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """A result's whole record: ``deterministic`` (:func:`deterministic_record`) with the git state, the
    hashes of its ``inputs`` and ``outputs`` (:func:`file_hashes`), the machine it ran on, and ``run``:
    its :func:`usage` (measured by the caller beforehand), with facts of this run (a training's epochs)."""
    record = dict(deterministic)
    record["code"] = {**record["code"], "git": git_state()}
    record.update(
        inputs=dict(sorted(inputs.items())),
        outputs=dict(sorted(outputs.items())),
        machine=machine(device, threads),
        run=run,
    )
    return plain(record)


def write_file_record(
    path: str | Path,
    kind: str,
    code: str,
    settings: Mapping[str, Any],
    inputs: Iterable[str | Path],
    outputs: Iterable[str | Path],
    watch: Stopwatch,
    threads: int | None = None,
) -> None:
    """Write the record of a result computed from files without torch (a summary table from metrics
    tables): :func:`complete_record` with ``inputs`` and ``outputs`` hashed and no device."""
    run = usage(watch, None)
    record = deterministic_record(kind, code, settings)
    write_record(path, complete_record(record, file_hashes(inputs), file_hashes(outputs), run, None, threads))


def write_record(path: str | Path, record: Mapping[str, Any]) -> None:
    """``record`` as indented JSON with sorted keys (records of identical runs differ only where their
    values do), written atomically."""
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")


def read_record(path: str | Path) -> dict[str, Any]:
    """The record in a JSON record file, or the one a spockmip checkpoint carries; a file that holds none
    is refused naming it. Torch is imported only for a checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: {'is a folder, not a file' if path.is_dir() else 'no such file'}")
    if path.suffix == ".json":
        try:
            record = json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise DataError(f"{path}: not a JSON file ({error})") from None
    else:
        record = _checkpoint_record(path)
    if not isinstance(record, dict) or not {"format", "kind", "code", "settings"} <= set(record):
        raise DataError(f"{path}: holds no spockmip provenance record")
    return record


def _checkpoint_record(path: Path) -> Any:
    """The ``provenance`` entry of a torch file read without executing code (None when it has none)."""
    import torch

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle refusals and corrupt zips alike: the file cannot be read
        reason = type(error).__name__
        raise DataError(f"{path}: neither a JSON record nor a readable torch checkpoint ({reason})") from None
    return checkpoint.get("provenance") if isinstance(checkpoint, dict) else None
