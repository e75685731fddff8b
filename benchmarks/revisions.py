"""Other revisions of this repository for the benchmarks that compare against one: resolved to a commit
and extracted with ``git archive`` (a clean tree: no results, no caches, no uncommitted changes)."""

from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def commit(revision: str) -> str:
    """``revision`` as a short commit hash; a name that is none stops the script with one line, before any
    measurement."""
    found = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "--verify", "--quiet", f"{revision}^{{commit}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if found.returncode != 0:
        raise SystemExit(f"--baseline {revision}: not a commit of {ROOT}")
    return found.stdout.strip()


def extract(revision: str, folder: Path, *paths: str) -> Path:
    """The tree of ``revision`` (only ``paths`` of it, when given) written into ``folder``, returned."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", revision, *paths],
        capture_output=True,
        check=False,
    )
    if archive.returncode != 0:
        raise SystemExit(f"git archive {revision}: {archive.stderr.decode().strip()}")
    folder.mkdir(parents=True, exist_ok=True)
    tar = folder / ".archive.tar"
    tar.write_bytes(archive.stdout)
    with tarfile.open(tar) as handle:
        handle.extractall(folder, filter="data")
    tar.unlink()
    return folder


def uncommitted_changes(*paths: str) -> bool:
    """Whether files (under ``paths``, when given) differ from HEAD or are not in it (ignored ones aside):
    then this checkout is not the commit a report would name."""
    status = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--", *paths],
        capture_output=True,
        text=True,
        check=False,
    )
    return bool(status.stdout.strip())
