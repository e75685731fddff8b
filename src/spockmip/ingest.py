"""Bringing local data into the workflow: find a subject's files, validate the pair, copy it in.

The workflow reads every volume from its own ``resources/`` copy as ``.nii.gz``, whatever the release
used, so later rules need not know the layout of the data as downloaded.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib

from spockmip.data import load_subject
from spockmip.hashing import file_sha256
from spockmip.outputs import atomic_path
from spockmip.volumes import DataError, find_volume, nifti_files

# Where the SMILE-UHURA release lives, and the variable that holds the Synapse token to fetch it with.
SYNAPSE_PROJECT = "syn47164761"
TOKEN_VARIABLE = "SYNAPSE_AUTH_TOKEN"
MANUAL_DOWNLOAD_HINT = (
    f"download the SMILE-UHURA release from Synapse (project {SYNAPSE_PROJECT}; a Synapse account and "
    "challenge registration are needed), unpack it and point dataset.path (or SPOCKMIP_DATA) at the folder "
    "holding train/, train_label/, validate/ and validate_label/"
)
DOWNLOAD_HINT = (
    f"{MANUAL_DOWNLOAD_HINT}; or let the workflow fetch it: set dataset.download: true and export "
    f"{TOKEN_VARIABLE}=<your Synapse personal access token>"
)


LOCAL_HINT = (
    "a local data set holds images/<id>.nii[.gz] and labels/<id>.nii[.gz] for every id in dataset.subjects; "
    "point dataset.path (or SPOCKMIP_DATA) at the folder holding images/ and labels/"
)


def data_root(source: str | Path, hint: str = DOWNLOAD_HINT) -> Path:
    """The data folder, refusing an unset one (an empty path would silently mean the working directory).

    ``hint`` tells the user how to get the data: the Synapse download only for SMILE-UHURA, never for
    their own local data.
    """
    if not str(source):
        raise DataError(f"no data folder given: set dataset.path or SPOCKMIP_DATA; {hint}")
    return Path(source)


def _copy_as_gzip(source: Path, destination: Path) -> None:
    with atomic_path(destination) as temporary:
        if source.name.endswith(".nii.gz"):
            shutil.copyfile(source, temporary)
        else:
            nib.save(nib.load(source), temporary)


def import_subject(source: str | Path, subject: str, image_out: str | Path, label_out: str | Path) -> None:
    """Validate one pair from ``source/images`` and ``source/labels``; copy it in as .nii.gz."""
    source = data_root(source, LOCAL_HINT)
    if not source.is_dir():
        raise DataError(f"{source}: data folder not found; {LOCAL_HINT}")
    image, label = (find_volume(source / folder, subject, LOCAL_HINT) for folder in ("images", "labels"))
    load_subject(image, label, name=subject)
    _copy_as_gzip(image, Path(image_out))
    _copy_as_gzip(label, Path(label_out))


# The SMILE-UHURA release: image folder -> label folder, images .nii.gz, labels .nii.
RELEASE_FOLDERS = {"train": "train_label", "validate": "validate_label"}


@dataclass(frozen=True)
class ReleasePair:
    """One labelled subject of the release and where its files are."""

    subject: str
    part: str
    image: Path
    label: Path


def scan_release(root: str | Path) -> list[ReleasePair]:
    """Check the release layout and pair images with labels by subject id; every problem is named."""
    root = data_root(root)
    if not root.is_dir():
        raise DataError(f"{root}: SMILE-UHURA release not found; {DOWNLOAD_HINT}")
    missing = [str(root / f) for pair in RELEASE_FOLDERS.items() for f in pair if not (root / f).is_dir()]
    if missing:
        raise DataError(f"release folder(s) missing: {', '.join(missing)}; {DOWNLOAD_HINT}")
    pairs, seen = [], {}
    for image_folder, label_folder in RELEASE_FOLDERS.items():
        images, labels = nifti_files(root / image_folder), nifti_files(root / label_folder)
        for subject in sorted(set(images) ^ set(labels)):
            present = images.get(subject) or labels[subject]
            absent = label_folder if subject in images else image_folder
            raise DataError(f"{present}: no matching file for {subject} in {root / absent}")
        for subject in sorted(images):
            if subject in seen:
                raise DataError(f"duplicate subject {subject}: in {seen[subject]} and {root / image_folder}")
            seen[subject] = root / image_folder
            pairs.append(ReleasePair(subject, image_folder, images[subject], labels[subject]))
    return pairs


def ingest_release(
    root: str | Path,
    subjects: Sequence[str],
    outputs: Mapping[str, tuple[str | Path, str | Path]],
    manifest: Path,
) -> None:
    """Validate the whole release, then copy every pair in and write a checksum manifest.

    ``outputs`` maps subject -> (image destination, label destination). Nothing is written unless every
    check passes, so a bad release leaves no partial copy behind.
    """
    pairs = {pair.subject: pair for pair in scan_release(root)}
    absent, unexpected = sorted(set(subjects) - set(pairs)), sorted(set(pairs) - set(subjects))
    if absent or unexpected:
        raise DataError(
            f"{root}: subjects in the config but not in the release: {', '.join(absent) or 'none'}; "
            f"in the release but not in the config: {', '.join(unexpected) or 'none'}"
        )
    rows = []
    for subject in subjects:
        pair = pairs[subject]
        volume = load_subject(pair.image, pair.label, name=subject)
        image, label = (str(pair.image), file_sha256(pair.image)), (str(pair.label), file_sha256(pair.label))
        rows.append([subject, pair.part, *image, *label, "x".join(map(str, volume.image.shape))])
    for subject in subjects:
        image_out, label_out = outputs[subject]
        _copy_as_gzip(pairs[subject].image, Path(image_out))
        _copy_as_gzip(pairs[subject].label, Path(label_out))
    header = ["subject", "part", "image", "image_sha256", "label", "label_sha256", "shape"]
    with atomic_path(manifest) as temporary:
        temporary.write_text("\n".join("\t".join(row) for row in [header, *rows]) + "\n")
