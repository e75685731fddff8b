"""Nothing silently wrong in the library: a training state resumes only for the run's own data.

The command-line cases (a state of other subjects set aside, locks, orphans, unusable checkpoints) are in
tests/cli/test_safety.py.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from spockmip.data.subjects import load_subject
from spockmip.training.runs import data_identity
from spockmip.training.trainer import TrainingConfig, TrainingPaths, train


def test_a_state_of_another_fold_is_not_resumed(phantom_dir: Path, tmp_path: Path) -> None:
    subjects = [
        load_subject(phantom_dir / "images" / f"{n}.nii.gz", phantom_dir / "labels" / f"{n}.nii.gz")
        for n in ("phantom000", "phantom001")
    ]
    config = TrainingConfig(
        model="unet", init_features=2, patch_size=(32,) * 3, strides=(16,) * 3, batch_size=4, epochs=1,
        patches_per_epoch=4,
    )  # fmt: skip
    paths = TrainingPaths(tmp_path / "best.pt", tmp_path / "history.csv", tmp_path / "state")
    train(subjects[:1], subjects[1:], config, paths, threads=1, progress=False, fold=0)
    train(subjects[:1], subjects[1:], config, paths, threads=1, progress=False, fold=1)
    (aside,) = (tmp_path / "state" / "set-aside").iterdir()
    assert torch.load(aside / "checkpoint.pt", weights_only=True)["data"]["fold"] == 0
    assert torch.load(paths.checkpoint, weights_only=True)["data"]["fold"] == 1


def test_the_voxel_order_the_network_sees_is_part_of_the_data_identity(tmp_path: Path) -> None:
    """``dataset.orientation`` decides the voxel order the network is fed; a state trained in one order
    must not go on in another, even where the label's voxels alone cannot tell them apart (here an empty
    label, whose bytes are the same in every order). Where both settings feed the same order (a file
    stored in RAS+), the run is the same and its state resumes."""
    image = np.random.default_rng(0).random((8, 8, 8), dtype=np.float32)
    label = np.zeros((8, 8, 8), dtype=np.uint8)

    def identities(affine: np.ndarray, folder: Path) -> list[dict]:
        folder.mkdir()
        nib.save(nib.Nifti1Image(image, affine), folder / "image.nii.gz")
        nib.save(nib.Nifti1Image(label, affine), folder / "label.nii.gz")
        return [
            data_identity(
                {"train": [load_subject(folder / "image.nii.gz", folder / "label.nii.gz", orientation=order)]}
            )
            for order in ("stored", "canonical")
        ]

    stored, canonical = identities(np.diag([-1.0, -1.0, 1.0, 1.0]), tmp_path / "lps")
    assert stored != canonical
    assert [stored["train"][0][1], canonical["train"][0][1]] == ["LPS", "RAS"]
    stored, canonical = identities(np.eye(4), tmp_path / "ras")
    assert stored == canonical
