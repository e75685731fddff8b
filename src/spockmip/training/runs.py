"""What makes a training run resumable, and what keeps two runs from spoiling one folder.

A saved state is resumed only when it was written for the same run: the same settings, the same training
code (:mod:`spockmip.runtime.provenance`; a finished state resumed after a fix to the library would republish
the old model) *and* the same data (the subject ids of each role, the voxel order each volume is fed in, the
hash of each whole image and label file, and the fold). Resuming a state trained on other subjects would
publish a model that has seen today's test subjects, so such a state (and an unreadable one) is never
resumed and never deleted: its files are moved into ``state/set-aside/`` and training starts afresh. An
advisory lock on the state folder keeps a second run into the same folder out (it exits at once with a
message rather than waiting for hours), and temporary files left by a run killed mid-write are removed
once the lock is held, since no other process can be writing them then.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import shutil
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from nibabel.orientations import aff2axcodes

from spockmip.data.subjects import Subject
from spockmip.errors import RunError
from spockmip.files.hashing import file_sha256
from spockmip.files.outputs import orphaned_temporaries

log = logging.getLogger(__name__)
LOCK_NAME = "run.lock"
SET_ASIDE = "set-aside"
STATE_KEYS = frozenset(
    {"fingerprint", "code", "model", "optimizer", "scaler", "history", "best", "torch_rng"}
)


def _voxel_order(subject: Subject) -> str:
    """Axis codes of the voxel order the network is fed (``LPS``, ``RAS``, ...): the file's own, or RAS+
    (``dataset.orientation``). Where a file is stored in RAS+ both settings feed the same voxels, and the
    identity stays the same."""
    return "".join(aff2axcodes(subject.affine))


def data_identity(roles: Mapping[str, Sequence[Subject]], fold: int | None = None) -> dict[str, Any]:
    """The data a run trains and selects on: per role, each subject's id, the voxel order it is fed in and
    the SHA-256 of its whole image and label files.

    Whole files, so any edit (one voxel, the header) makes another run. The price is reading every byte
    once per process (:mod:`spockmip.files.hashing`), less than decompressing and validating the same volumes
    for training takes.
    """
    return {
        "fold": fold,
        **{
            role: [
                [
                    subject.name,
                    _voxel_order(subject),
                    file_sha256(subject.image_path),
                    file_sha256(subject.label_path) if subject.label_path else None,
                ]
                for subject in subjects
            ]
            for role, subjects in roles.items()
        },
    }


def identity_files(roles: Mapping[str, Sequence[Subject]], identity: Mapping[str, Any]) -> dict[Path, str]:
    """Each image and label file of ``roles`` with the SHA-256 that ``identity`` (:func:`data_identity` of
    the same roles) holds for it: what a run's record lists, without reading a file again."""
    files = {}
    for role, subjects in roles.items():
        for subject, (_, _, image, label) in zip(subjects, identity[role], strict=True):
            files[Path(subject.image_path)] = image
            if subject.label_path:
                files[Path(subject.label_path)] = label
    return files


@contextlib.contextmanager
def claim(state_dir: str | Path, outputs: Iterable[str | Path]) -> Iterator[None]:
    """Hold the run folder's lock for the block, after removing what killed writes of ``outputs`` left."""
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    with (state_dir / LOCK_NAME).open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                raise
            raise RunError(
                f"{state_dir}: another training run is using this folder; wait for it to end or choose "
                "another output folder"
            ) from None
        for output in outputs:
            for orphan in orphaned_temporaries(output):
                log.info("removing %s, left by a run killed while writing", orphan)
                shutil.rmtree(orphan, ignore_errors=True)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def set_aside(files: Sequence[Path], state_dir: Path, reason: str) -> Path:
    """Move a run's state ``files`` into ``state_dir/set-aside/<time>/``, kept for the user to inspect."""
    folder = state_dir / SET_ASIDE / time.strftime("%Y%m%dT%H%M%S")
    while folder.exists():
        folder = folder.with_name(f"{folder.name}_")
    folder.mkdir(parents=True)
    for path in files:
        if path.exists():
            path.rename(folder / path.name)
    log.warning("%s %s; kept in %s, starting afresh", files[0], reason, folder)
    return folder


def _read(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """The state in ``path`` and None, or None and why it cannot be resumed (never an exception)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated zips, foreign pickles, not a torch file: all unusable
        return None, f"is not a readable training state ({type(error).__name__})"
    if not isinstance(state, dict) or not set(state) >= STATE_KEYS:
        return None, "is not a spockmip training state"
    return state, None


def resumable_state(
    files: Sequence[Path], fingerprint: str, code: str, identity: dict[str, Any]
) -> dict[str, Any] | None:
    """The saved state in ``files[0]`` if it belongs to this run; else its files are set aside and None.

    ``files`` is every file of the state (checkpoint first, then the best weights and learning curve so
    far), so that a stale best model never outlives the state it came with.
    """
    checkpoint = files[0]
    if not checkpoint.is_file():
        return None
    state, problem = _read(checkpoint)
    if state is not None and state["fingerprint"] != fingerprint:
        problem = "was written under other settings"
    elif state is not None and state["code"] != code:
        problem = "was written by other spockmip code"
    elif state is not None and state.get("data") != identity:
        recorded = state.get("data") if isinstance(state.get("data"), dict) else {}
        changed = [key for key in identity if recorded.get(key) != identity[key]]
        problem = f"was written for other data ({', '.join(changed)} differ)"
    if problem is None:
        return state
    set_aside(files, checkpoint.parent, problem)
    return None
