"""Writing outputs atomically, so an interrupted or failed command never leaves a partial file behind.

Snakemake, resumable training and users all treat "the file exists" as "the step finished"; every writer
therefore writes to a temporary sibling and renames it into place (atomic on one file system).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import nibabel as nib
import numpy as np

from spockmip.errors import SpockmipError


def _file_mode() -> int:
    """Permissions a plain ``open(..., "w")`` would give: 0o666 less the umask (mkstemp's 0o600 would hide
    results from colleagues on a shared cluster)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


FILE_MODE = _file_mode()


class OutputError(SpockmipError, ValueError):
    """An output location cannot be written; raised before any work, so nothing is computed in vain."""


def _temporary_prefix(destination: Path) -> str:
    return f".{destination.name}."


def orphaned_temporaries(destination: str | Path) -> list[Path]:
    """Temporary siblings that :func:`atomic_path` left for ``destination`` when its process was killed.

    Only safe to remove while no other process writes ``destination`` (the caller holds its run's lock).
    """
    destination = Path(destination)
    if not destination.parent.is_dir():
        return []
    return sorted(destination.parent.glob(f"{_temporary_prefix(destination)}*"))


def _nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_writable(path: str | Path, folder: bool = False) -> None:
    """Refuse, before any work, an output that cannot be created: wrong kind, a parent that is a file, or
    no permission. ``folder`` says whether ``path`` is to be a folder or a file."""
    path = Path(path)
    if path.exists() and path.is_dir() != folder:
        expected, found = ("a folder", "a file") if folder else ("a file", "a folder")
        raise OutputError(f"{path}: is {found}, but {expected} is to be written there")
    existing = _nearest_existing(path if folder else path.parent)
    if not existing.is_dir():
        raise OutputError(f"{path}: cannot be created, {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"{path}: no permission to write in {existing}")


@contextlib.contextmanager
def atomic_path(destination: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``destination``; rename it into place only if the block succeeds.

    The temporary name keeps the destination's suffixes, so writers that choose a format by extension
    (``.nii.gz``, ``.png``) behave as they would on the real name.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(
        prefix=_temporary_prefix(destination),
        suffix="".join(destination.suffixes) or ".tmp",
        dir=destination.parent,
    )
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        os.chmod(temporary, FILE_MODE)
        os.replace(temporary, destination)
    finally:
        temporary.unlink(missing_ok=True)


def write_nifti_like(
    array: np.ndarray, reference: nib.Nifti1Image, destination: str | Path, dtype: type
) -> None:
    """Write ``array`` (already in ``reference``'s orientation) with its exact affine and header."""
    header = reference.header.copy()
    header.set_data_dtype(dtype)
    image = nib.Nifti1Image(np.asarray(array, dtype=dtype), reference.affine, header=header)
    image.set_qform(*reference.get_qform(coded=True))
    image.set_sform(*reference.get_sform(coded=True))
    image.header["scl_slope"], image.header["scl_inter"] = 1.0, 0.0
    with atomic_path(destination) as temporary:
        nib.save(image, temporary)
