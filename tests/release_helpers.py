"""A fabricated SMILE-UHURA release (the real folder names and file extensions) and a config that reads it."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np

RELEASE_SUBJECTS = {"sub001": "train", "sub002": "train", "sub005": "train", "sub017": "validate"}


def make_release(phantom_dir: Path, root: Path) -> Path:
    """train/ + train_label/ + validate/ + validate_label/; images .nii.gz, labels .nii, as released."""
    phantoms = sorted((phantom_dir / "images").glob("*.nii.gz"))
    for (subject, part), phantom in zip(RELEASE_SUBJECTS.items(), phantoms, strict=True):
        (root / part).mkdir(parents=True, exist_ok=True)
        (root / f"{part}_label").mkdir(parents=True, exist_ok=True)
        shutil.copy(phantom, root / part / f"{subject}.nii.gz")
        label = nib.load(phantom_dir / "labels" / phantom.name)
        nib.save(
            nib.Nifti1Image(np.asanyarray(label.dataobj), label.affine, label.header),
            root / f"{part}_label" / f"{subject}.nii",
        )
    return root


RELEASE_CONFIG = {
    "dataset": {"name": "uhura", "source": "smile_uhura", "path": None, "subjects": list(RELEASE_SUBJECTS)},
    "split": {"folds": 2, "seed": 1, "test_subjects": ["sub017"]},
    "training": {"init_features": 2, "patch_size": [32, 32, 32], "strides": [16, 16, 16], "batch_size": 2,
                 "epochs": 1, "patches_per_epoch": 4},
    "variants": {"unet_mip": {"model": "unet", "mip_axis": "z"}},
    "inference": {"patch_size": [32, 32, 32], "strides": [16, 16, 16]},
    "resources": {"train": {"threads": 1}, "predict": {"threads": 1}},
}  # fmt: skip
