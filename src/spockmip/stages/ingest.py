"""Ingest: bring local data into the workflow (find a subject's files, validate the pair, copy it in), or the
whole SMILE-UHURA release with a checksum manifest.

The workflow reads every volume from its own ``resources/`` copy as ``.nii.gz``, whatever the release
used, so later rules need not know the layout of the data as downloaded.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import nibabel as nib

from spockmip.data.subjects import load_subject
from spockmip.datasets.smile_uhura import data_root, scan_release
from spockmip.errors import DataError
from spockmip.files.hashing import file_sha256
from spockmip.files.outputs import atomic_path
from spockmip.files.volumes import find_volume, load_mask

LOCAL_HINT = (
    "a local data set holds images/<id>.nii[.gz] and labels/<id>.nii[.gz] for every id in dataset.subjects; "
    "point dataset.path (or SPOCKMIP_DATA) at the folder holding images/ and labels/"
)


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


def import_region_mask(source: str | Path, subject: str, mask_out: str | Path) -> None:
    """Validate ``source/masks``'s region mask of ``subject`` (binary, on its image's grid) and copy it in
    as .nii.gz; post-processing can then set the prediction to background outside it."""
    source = data_root(source, LOCAL_HINT)
    image = find_volume(source / "images", subject, LOCAL_HINT)
    mask = find_volume(source / "masks", subject, f"{LOCAL_HINT}; region masks go in masks/<id>.nii[.gz]")
    load_mask(mask, reference=image)
    _copy_as_gzip(mask, Path(mask_out))


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
