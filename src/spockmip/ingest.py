"""Bringing local data into the workflow: find a subject's files, validate the pair, copy it in.

The workflow reads every volume from its own ``resources/`` copy as ``.nii.gz``, whatever the release
used, so later rules need not know the layout of the data as downloaded.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib

from spockmip.data import DataError, load_subject
from spockmip.outputs import atomic_path

NIFTI_SUFFIXES = (".nii.gz", ".nii")
DOWNLOAD_HINT = (
    "download the SMILE-UHURA release from Synapse (project syn47164761; a Synapse account and challenge "
    "registration are needed) and set dataset.path to the folder that holds images/ and labels/"
)


def find_volume(folder: Path, subject: str) -> Path:
    """``folder/<subject>.nii.gz`` or ``.nii``; exactly one must exist."""
    found = [
        folder / f"{subject}{suffix}"
        for suffix in NIFTI_SUFFIXES
        if (folder / f"{subject}{suffix}").is_file()
    ]
    if not found:
        raise DataError(f"{folder / (subject + NIFTI_SUFFIXES[0])}: not found (nor .nii); {DOWNLOAD_HINT}")
    if len(found) > 1:
        raise DataError(f"{folder}: both {found[0].name} and {found[1].name} exist for {subject}; keep one")
    return found[0]


def _copy_as_gzip(source: Path, destination: Path) -> None:
    with atomic_path(destination) as temporary:
        if source.name.endswith(".nii.gz"):
            shutil.copyfile(source, temporary)
        else:
            nib.save(nib.load(source), temporary)


def import_subject(source: str | Path, subject: str, image_out: str | Path, label_out: str | Path) -> None:
    """Validate one pair from ``source/images`` and ``source/labels``; copy it in as .nii.gz."""
    source = Path(source)
    if not source.is_dir():
        raise DataError(f"{source}: data folder not found; {DOWNLOAD_HINT}")
    image, label = find_volume(source / "images", subject), find_volume(source / "labels", subject)
    load_subject(image, label, name=subject)
    _copy_as_gzip(image, Path(image_out))
    _copy_as_gzip(label, Path(label_out))
