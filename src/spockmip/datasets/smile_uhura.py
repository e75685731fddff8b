"""The SMILE-UHURA release: where it lives on Synapse, its folder layout, and its subjects paired by id.

The ingest door (:mod:`spockmip.stages.ingest`) validates and copies what :func:`scan_release` finds; the
download (:mod:`spockmip.datasets.download`) fetches the release into the folder it reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from spockmip.errors import DataError
from spockmip.files.volumes import nifti_files

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


def data_root(source: str | Path, hint: str = DOWNLOAD_HINT) -> Path:
    """The data folder, refusing an unset one (an empty path would silently mean the working directory).

    ``hint`` tells the user how to get the data: the Synapse download only for SMILE-UHURA, never for
    their own local data.
    """
    if not str(source):
        raise DataError(f"no data folder given: set dataset.path or SPOCKMIP_DATA; {hint}")
    return Path(source)


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
