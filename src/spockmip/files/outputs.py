"""Writing outputs atomically, so an interrupted or failed command never leaves a partial file behind.

Snakemake, resumable training and users all treat "the file exists" as "the step finished"; every writer
therefore writes into a hidden temporary folder beside its destination and renames the file into place
(atomic on one file system). The file keeps the destination's own name inside that folder, so writers that
choose a format by extension behave as on the real name, while NIfTI discovery, which reads the files of a
folder and skips hidden names, never takes a half-written file for a volume. A command with several
results stages them all (:func:`staged_outputs`) and moves them into place only when every one is written.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import nibabel as nib
import numpy as np

from spockmip.errors import OutputError


def _file_mode() -> int:
    """Permissions a plain ``open(..., "w")`` would give: 0o666 less the umask (mkstemp's 0o600 would hide
    results from colleagues on a shared cluster)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


FILE_MODE = _file_mode()


def _temporary_prefix(destination: Path) -> str:
    return f".{destination.name}."


def orphaned_temporaries(destination: str | Path) -> list[Path]:
    """Temporary folders that :func:`atomic_path` left beside ``destination`` when its process was killed.

    Only safe to remove while no other process writes ``destination`` (the caller holds its run's lock).
    """
    destination = Path(destination)
    if not destination.parent.is_dir():
        return []
    return sorted(p for p in destination.parent.glob(f"{_temporary_prefix(destination)}*") if p.is_dir())


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


def _shown(path: Path, resolved: Path) -> str:
    """``path`` as the user gave it, with where it leads when symlinks or ``..`` make that differ."""
    return str(path) if path.absolute() == resolved else f"{path} (that is {resolved})"


def refuse_overwriting_inputs(outputs: Mapping[Path, str], inputs: Mapping[Path, str]) -> None:
    """Refuse, before any work, outputs that would overwrite the command's own inputs.

    ``outputs`` and ``inputs`` map each file or folder to its role as the user knows it (``"--output
    folder"``, ``"--label folder"``). An output is refused when it is an input, is a folder holding one (a
    prediction folder that is the label folder would replace every label by a prediction), or lies in an
    input folder (a probability map among the images would be read as an image by the next command that
    takes the folder). Paths are compared with symlinks followed, so a link to the inputs is caught as well.
    """
    resolved_inputs = {path: path.resolve() for path in inputs}
    for output, role in outputs.items():
        target = output.resolve()
        overwritten = [
            p for p, found in resolved_inputs.items() if found == target or target in found.parents
        ]
        written_into = [p for p, found in resolved_inputs.items() if found in target.parents]
        # An input overwritten is named before an input folder written into: it is the graver of the two.
        for verb, sources in (("would overwrite", overwritten), ("would be written into", written_into)):
            if sources:
                source = sources[0]
                raise OutputError(
                    f"{output}: the {role} {verb} {inputs[source]} {_shown(source, resolved_inputs[source])}"
                )


STAGING_PREFIX = ".spockmip-staging-"


class StagedOutputs:
    """Staging paths for the results of one command, handed out by :func:`staged_outputs`.

    Each destination is staged under a hidden folder in its nearest existing ancestor folder, at the same
    path relative to that ancestor: same file names, same file system (so the final move is a rename), no
    new visible folder until everything is written.
    """

    def __init__(self) -> None:
        self._staging: dict[Path, Path] = {}
        self._staged: dict[Path, Path] = {}

    def path(self, destination: str | Path) -> Path:
        """Where to write ``destination`` for now; its folder exists, the file does not."""
        destination = Path(destination).absolute()
        if destination in self._staged:
            raise ValueError(f"{destination}: staged twice")
        anchor = _nearest_existing(destination.parent)
        if anchor not in self._staging:
            self._staging[anchor] = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=anchor))
        staged = self._staging[anchor] / destination.relative_to(anchor)
        staged.parent.mkdir(parents=True, exist_ok=True)
        self._staged[destination] = staged
        return staged

    def staged(self, destination: str | Path) -> Path:
        """Where ``destination``, handed out by :meth:`path` before, is staged (to read what was written)."""
        return self._staged[Path(destination).absolute()]

    def _commit(self) -> None:
        """Move every staged file into place, after checking that each was written."""
        unwritten = [str(d) for d, staged in self._staged.items() if not staged.is_file()]
        if unwritten:
            raise RuntimeError(f"staged outputs never written: {', '.join(unwritten)}")
        for destination, staged in self._staged.items():
            destination.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged, destination)

    def _remove(self) -> None:
        for folder in self._staging.values():
            shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def staged_outputs() -> Iterator[StagedOutputs]:
    """Stage a command's results and move them all into place only if the whole block succeeds.

    ``with staged_outputs() as staging:`` then write each result to ``staging.path(destination)`` (with
    :func:`atomic_path`-style writers or plainly). On any exception everything staged is removed and no
    new file or folder is left behind, so a failed command never leaves a mix of new and old results.
    Once the block has succeeded the files are renamed into place one after another, each atomic.
    """
    staging = StagedOutputs()
    try:
        yield staging
        staging._commit()
    finally:
        staging._remove()


@contextlib.contextmanager
def atomic_path(destination: str | Path) -> Iterator[Path]:
    """Yield a temporary path for ``destination``; rename it into place only if the block succeeds.

    The path is ``.<name>.<random>/<name>`` beside the destination: the same file name (writers choose a
    format by its extension), in a hidden folder (discovery never sees it). The path exists as an empty
    file, so a block may also replace it (a hard link). The folder is removed whatever happens.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=_temporary_prefix(destination), dir=destination.parent))
    temporary = folder / destination.name
    try:
        temporary.touch()
        yield temporary
        os.chmod(temporary, FILE_MODE)
        os.replace(temporary, destination)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


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
