"""Prediction as researchers run it: folders, fold ensembles, flip TTA, consistent flags, safety per file.

The command runs on phantom files, and what it wrote is compared with the library functions the workflow
uses; the library cases are in tests/unit/inference/test_tta.py and tests/unit/stages/test_predict.py.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from cli_helpers import spockmip
from predict_helpers import SUBJECTS, snapshot

from spockmip.cli import main
from spockmip.data.subjects import load_subject
from spockmip.inference.windows import (
    InferenceConfig,
    ensemble_probabilities,
)
from spockmip.networks.weights import load_weights

CONFIG = InferenceConfig(patch_size=(32, 32, 32), strides=(16, 16, 16))


def test_a_folder_is_segmented_by_the_flip_averaged_fold_ensemble(
    images: Path, fold_weights: list[Path], tmp_path: Path
) -> None:
    out, probabilities = tmp_path / "segmentations", tmp_path / "probabilities"
    argv = ["predict", "-i", str(images), "-o", str(out), "--weights", *map(str, fold_weights), "--tta",
            "--probabilities", str(probabilities), "--patch-size", "32", "--strides", "16", "--threads", "1",
            "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    names = sorted(f"{s}.nii.gz" for s in SUBJECTS)
    assert sorted(p.name for p in out.iterdir()) == names
    assert sorted(p.name for p in probabilities.iterdir()) == names
    models = [load_weights(path) for path in fold_weights]
    for subject in SUBJECTS:
        image = images / f"{subject}.nii.gz"
        volume = load_subject(image, patch_size=CONFIG.patch_size).image
        expected = ensemble_probabilities(models, volume, CONFIG, tta=True)
        written = nib.load(probabilities / f"{subject}.nii.gz")
        np.testing.assert_allclose(np.asanyarray(written.dataobj), expected, rtol=1e-6, atol=1e-7)
        segmentation = nib.load(out / f"{subject}.nii.gz")
        np.testing.assert_array_equal(segmentation.affine, nib.load(image).affine)


def test_short_and_old_flag_spellings_still_work(
    phantom_dir: Path, fold_weights: list[Path], tmp_path: Path
) -> None:
    image = phantom_dir / "images" / "phantom002.nii.gz"
    output = tmp_path / "seg.nii.gz"
    argv = ["predict", "-w", str(fold_weights[0]), "-i", str(image), "-o", str(output),
            "--patch-size", "32", "--stride", "16", "--threads", "1", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    assert nib.load(output).shape == nib.load(image).shape


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (lambda images, tmp: ["-o", str(images)], "would overwrite the input folder"),
        (lambda images, tmp: ["-o", str(tmp / "seg.nii.gz")], "must be a folder"),
        (
            lambda images, tmp: ["-o", str(tmp / "out"), "--probabilities", str(tmp / "out")],
            "would overwrite the segmentation",
        ),
        (lambda images, tmp: ["-o", str(tmp / "out"), "--label", str(tmp / "labels")], "folder not found"),
    ],
)
def test_folder_mode_refuses_bad_outputs_before_computing(
    images: Path, fold_weights: list[Path], tmp_path: Path, arguments, message: str
) -> None:
    before = snapshot(tmp_path)
    result = spockmip("predict", "-i", str(images), "--weights", str(fold_weights[0]), "--patch-size", "32",
                      "--threads", "1", *arguments(images, tmp_path))  # fmt: skip
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    assert lines[0].startswith("spockmip predict: error: ") and message in lines[0]
    assert snapshot(tmp_path) == before


def test_two_files_of_one_subject_are_refused(images: Path, fold_weights: list[Path], tmp_path: Path) -> None:
    shutil.copy(images / "phantom000.nii.gz", images / "phantom000.nii")
    before = snapshot(tmp_path)
    result = spockmip("predict", "-i", str(images), "-o", str(tmp_path / "out"), "--weights",
                      str(fold_weights[0]), "--patch-size", "32", "--threads", "1")  # fmt: skip
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    assert "phantom000.nii and phantom000.nii.gz name the same subject" in lines[0]
    assert snapshot(tmp_path) == before


def test_compile_flag_compiles_each_model_and_changes_no_probability(
    phantom_dir: Path,
    fold_weights: list[Path],
    tmp_path: Path,
    compile_without_codegen: list[torch.nn.Module],
) -> None:
    image = phantom_dir / "images" / "phantom002.nii.gz"
    argv = ["predict", "-w", *map(str, fold_weights), "-i", str(image), "--patch-size", "32",
            "--strides", "16", "--threads", "1", "--no-progress"]  # fmt: skip
    for name, extra in (("plain", []), ("compiled", ["--compile"])):
        outputs = [
            "-o",
            str(tmp_path / f"{name}.nii.gz"),
            "--probabilities",
            str(tmp_path / f"{name}_p.nii.gz"),
        ]
        assert main([*argv, *outputs, *extra]) == 0
    assert len(compile_without_codegen) == len(fold_weights)
    compiled, plain = (nib.load(tmp_path / f"{name}_p.nii.gz").get_fdata() for name in ("compiled", "plain"))
    np.testing.assert_array_equal(compiled, plain)
