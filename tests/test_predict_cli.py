"""Prediction as researchers run it: folders, fold ensembles, flip TTA, consistent flags, safety per file.

The library cases use 'networks' whose output can be written down by hand; the command-line cases run the
real command on phantom files and compare what it wrote with the library functions the workflow uses.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from cli_helpers import spockmip

from spockmip.cli import main
from spockmip.data.subjects import load_subject
from spockmip.files.outputs import OutputError
from spockmip.inference.planning import PredictionGroup, PredictionJob
from spockmip.inference.windows import (
    FLIPS,
    InferenceConfig,
    ensemble_probabilities,
    flip_averaged_probabilities,
    predict_probabilities,
)
from spockmip.networks.unet import build_model
from spockmip.networks.weights import load_weights, spec_of
from spockmip.stages.predict import run_prediction, run_predictions

SUBJECTS = ("phantom000", "phantom001")
CONFIG = InferenceConfig(patch_size=(32, 32, 32), strides=(16, 16, 16))


class Ramp(torch.nn.Module):
    """Logits that rise along the network's first spatial axis (the volume's Z), whatever the input."""

    def __init__(self, low: float, high: float) -> None:
        super().__init__()
        self.low, self.high = low, high

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        ramp = torch.linspace(self.low, self.high, x.shape[2]).view(1, 1, -1, 1, 1)
        return [ramp.expand_as(x).clone()]


class Scaled(torch.nn.Module):
    """Logits from the input itself, so flipped volumes give different windows."""

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [(x - 0.4) * 6.0]


def _sigmoid(values: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-values))


def test_flip_tta_of_a_ramp_is_the_mean_of_the_ramp_and_its_reverse() -> None:
    volume = np.random.default_rng(0).random((16, 16, 16), dtype=np.float32)
    config = InferenceConfig(patch_size=(16, 16, 16), strides=(16, 16, 16))
    ramp = np.linspace(0.0, 3.0, 16)
    plain = predict_probabilities(Ramp(0.0, 3.0), volume, config)
    np.testing.assert_allclose(plain, np.broadcast_to(_sigmoid(ramp), volume.shape), atol=1e-6)
    # Half of the 8 flips reverse Z: each voxel sees its own ramp value and its mirror's, equally often.
    expected = (_sigmoid(ramp) + _sigmoid(ramp[::-1])) / 2
    tta = flip_averaged_probabilities(Ramp(0.0, 3.0), volume, config)
    np.testing.assert_allclose(tta, np.broadcast_to(expected, volume.shape), atol=1e-6)


def test_flip_tta_is_the_mean_over_the_eight_flipped_back_predictions() -> None:
    assert len(FLIPS) == len(set(FLIPS)) == 8
    volume = np.random.default_rng(1).random((20, 18, 16), dtype=np.float32)
    config = InferenceConfig(patch_size=(16, 16, 16), strides=(8, 8, 8))
    flipped_back = [
        np.flip(predict_probabilities(Scaled(), np.ascontiguousarray(np.flip(volume, axes)), config), axes)
        for axes in FLIPS
    ]
    tta = flip_averaged_probabilities(Scaled(), volume, config)
    np.testing.assert_allclose(tta, np.mean(flipped_back, axis=0), rtol=1e-6, atol=1e-7)
    members = [Scaled(), Ramp(-1.0, 2.0)]
    np.testing.assert_allclose(
        ensemble_probabilities(members, volume, config, tta=True),
        np.mean([flip_averaged_probabilities(m, volume, config) for m in members], axis=0),
        rtol=1e-6,
        atol=1e-7,
    )


@pytest.fixture(scope="module")
def fold_weights(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two width-2 UNet3D checkpoints that record no window geometry."""
    folder = tmp_path_factory.mktemp("folds")
    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = build_model("unet", init_features=2)
        paths.append(folder / f"fold{seed}.pt")
        torch.save({"model_spec": spec_of(model).to_dict(), "state_dict": model.state_dict()}, paths[-1])
    return paths


@pytest.fixture
def images(phantom_dir: Path, tmp_path: Path) -> Path:
    """A folder of two phantom images and a file that is not a volume."""
    folder = tmp_path / "images"
    folder.mkdir()
    for subject in SUBJECTS:
        shutil.copy(phantom_dir / "images" / f"{subject}.nii.gz", folder)
    (folder / "notes.txt").write_text("not a volume")
    return folder


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


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


def test_one_call_segments_each_group_with_its_own_weights_and_checks_them_all_first(
    images: Path, fold_weights: list[Path], tmp_path: Path
) -> None:
    """The workflow's prediction job in small: one subject by one checkpoint, the other by another, in one
    call, writes the bytes of two separate calls. The outputs of every group are checked against the inputs
    of every group, and against each other, before anything is computed."""
    inference = {"patch_size": (32, 32, 32), "strides": (16, 16, 16)}
    first, second = (images / f"{subject}.nii.gz" for subject in SUBJECTS)
    together = tmp_path / "together"
    groups = [
        PredictionGroup.of([fold_weights[0]], [first], [together / "first.nii.gz"]),
        PredictionGroup.of([fold_weights[1]], [second], [together / "second.nii.gz"]),
    ]
    run_predictions(groups, inference, threads=1)
    for weights, image, name in ((fold_weights[0], first, "first"), (fold_weights[1], second, "second")):
        alone = tmp_path / "alone" / f"{name}.nii.gz"
        run_prediction([weights], [PredictionJob(image, alone)], inference, threads=1)
        assert alone.read_bytes() == (together / f"{name}.nii.gz").read_bytes()
    assert (together / "first.nii.gz").read_bytes() != (together / "second.nii.gz").read_bytes()

    before = _snapshot(tmp_path)
    fresh = tmp_path / "fresh"
    overwrites_an_input = [
        PredictionGroup.of([fold_weights[0]], [first], [fresh / "first.nii.gz"]),
        PredictionGroup.of([fold_weights[1]], [second], [first]),
    ]
    with pytest.raises(OutputError, match="would overwrite the input image"):
        run_predictions(overwrites_an_input, inference, threads=1)
    written_twice = [
        PredictionGroup.of([fold_weights[0]], [first], [fresh / "same.nii.gz"]),
        PredictionGroup.of([fold_weights[1]], [second], [fresh / "same.nii.gz"]),
    ]
    with pytest.raises(OutputError, match="would overwrite the segmentation"):
        run_predictions(written_twice, inference, threads=1)
    with pytest.raises(OutputError, match="2 images but 1 outputs"):
        PredictionGroup.of([fold_weights[0]], [first, second], [fresh / "first.nii.gz"])
    assert _snapshot(tmp_path) == before


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
        (lambda images, tmp: ["-o", str(images)], "the output folder is the input folder"),
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
    before = _snapshot(tmp_path)
    result = spockmip("predict", "-i", str(images), "--weights", str(fold_weights[0]), "--patch-size", "32",
                      "--threads", "1", *arguments(images, tmp_path))  # fmt: skip
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    assert lines[0].startswith("spockmip predict: error: ") and message in lines[0]
    assert _snapshot(tmp_path) == before


def test_two_files_of_one_subject_are_refused(images: Path, fold_weights: list[Path], tmp_path: Path) -> None:
    shutil.copy(images / "phantom000.nii.gz", images / "phantom000.nii")
    before = _snapshot(tmp_path)
    result = spockmip("predict", "-i", str(images), "-o", str(tmp_path / "out"), "--weights",
                      str(fold_weights[0]), "--patch-size", "32", "--threads", "1")  # fmt: skip
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    assert "phantom000.nii and phantom000.nii.gz name the same subject" in lines[0]
    assert _snapshot(tmp_path) == before


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
