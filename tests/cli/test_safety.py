"""Nothing silently wrong: resume only the run's own data, never overwrite inputs, one line per bad input.

Every case runs the real command (training in its own process, so that locks and logs are those a user
meets; prediction through ``main``, which skips a torch import per case) and checks the exit status, the
one line that names the file (or argument), and that nothing was written or overwritten.
"""

from __future__ import annotations

import fcntl
import json
import os
import struct
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from cli_helpers import spockmip, train_args
from hf_helpers import write_published_folder

from spockmip.cli import main
from spockmip.networks.unet import build_model
from spockmip.networks.weights import spec_of
from spockmip.runtime.provenance import library_fingerprint
from spockmip.training import trainer as training

PATCH = ["--patch-size", "32", "--stride", "16", "--threads", "1"]


def _predict(capsys: pytest.CaptureFixture[str], *args: str) -> subprocess.CompletedProcess:
    code = main(["predict", *args])
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(["spockmip", "predict", *args], code, captured.out, captured.err)


def _error_line(result: subprocess.CompletedProcess, command: str) -> str:
    """The failure's message: exactly one line on stderr, prefixed with the command, no traceback."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1, result.stderr
    assert len(lines) == 1 and lines[0].startswith(f"spockmip {command}: error: "), result.stderr
    return lines[0]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A width-2 UNet3D checkpoint in our format."""
    path = tmp_path_factory.mktemp("weights") / "w.pt"
    torch.manual_seed(0)
    model = build_model("unet", init_features=2)
    torch.save({"model_spec": spec_of(model).to_dict(), "state_dict": model.state_dict()}, path)
    return path


# ---- resume identity, lock, orphans, quarantine ----


def test_state_of_other_subjects_is_set_aside_and_same_data_resumes(
    phantom_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    assert spockmip(*train_args(phantom_dir, out, 1)).returncode == 0
    state = out / "state"
    trained_on_first = (state / "checkpoint.pt").read_bytes()
    recorded = torch.load(out / "best.pt", weights_only=True)["inference"]
    assert recorded == {"patch_size": [32, 32, 32], "strides": [16, 16, 16]}, "predict's defaults"

    same = spockmip(*train_args(phantom_dir, out, 1))
    assert same.returncode == 0 and "resuming after epoch 1 of 1" in same.stderr
    assert not (state / "set-aside").exists()

    other = spockmip(*train_args(phantom_dir, out, 1, train=("phantom000", "phantom003")))
    assert other.returncode == 0, other.stderr
    assert "resuming" not in other.stderr
    assert "was written for other data (train differ)" in other.stderr
    (aside,) = (state / "set-aside").iterdir()
    assert sorted(p.name for p in aside.iterdir()) == ["best.pt", "checkpoint.pt", "history.csv"]
    assert (aside / "checkpoint.pt").read_bytes() == trained_on_first
    data = torch.load(state / "checkpoint.pt", weights_only=True)["data"]
    assert [row[0] for row in data["train"]] == ["phantom000", "phantom003"]


def test_a_finished_state_written_by_other_code_is_not_resumed(phantom_dir: Path, tmp_path: Path) -> None:
    """After a fix to the library the workflow reruns training; resuming the finished state would only
    republish the old model."""
    out = tmp_path / "run"
    assert spockmip(*train_args(phantom_dir, out, 1)).returncode == 0
    checkpoint = out / "state" / "checkpoint.pt"
    state = torch.load(checkpoint, weights_only=True)
    assert state["code"] == library_fingerprint(Path(training.__file__))
    torch.save({**state, "code": "0.0.1+0123456789abcdef"}, checkpoint)
    result = spockmip(*train_args(phantom_dir, out, 1))
    assert result.returncode == 0, result.stderr
    assert f"{checkpoint} was written by other spockmip code" in result.stderr
    assert "resuming" not in result.stderr
    assert torch.load(checkpoint, weights_only=True)["code"] == state["code"]


def test_a_second_run_into_a_locked_folder_exits_and_writes_nothing(
    phantom_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    state = out / "state"
    state.mkdir(parents=True)
    with (state / "run.lock").open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = spockmip(*train_args(phantom_dir, out, 1))
    line = _error_line(result, "train")
    assert str(state) in line and "another training run is using this folder" in line
    assert sorted(p.name for p in out.rglob("*")) == ["run.lock", "state"]


def test_temporaries_of_a_killed_write_are_removed_when_a_run_starts(
    phantom_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    orphans = [out / "state" / ".checkpoint.pt.k1ll3d", out / ".best.pt.k1ll3d"]
    for orphan in orphans:
        orphan.mkdir(parents=True)
        (orphan / "half-written").write_bytes(b"\0" * 4096)
    result = spockmip(*train_args(phantom_dir, out, 1))
    assert result.returncode == 0, result.stderr
    assert not any(orphan.exists() for orphan in orphans)
    assert "left by a run killed while writing" in result.stderr


@pytest.mark.parametrize("kind", ["truncated", "foreign"])
def test_an_unusable_checkpoint_is_set_aside_with_a_warning(
    phantom_dir: Path, tmp_path: Path, kind: str
) -> None:
    checkpoint = tmp_path / "run" / "state" / "checkpoint.pt"
    checkpoint.parent.mkdir(parents=True)
    torch.save({"weights": torch.zeros(1000)}, checkpoint)
    if kind == "truncated":
        checkpoint.write_bytes(checkpoint.read_bytes()[:700])
    spoiled = checkpoint.read_bytes()
    result = spockmip(*train_args(phantom_dir, tmp_path / "run", 1))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    expected = (
        "is not a readable training state" if kind == "truncated" else "is not a spockmip training state"
    )
    assert f"{checkpoint} {expected}" in result.stderr
    (aside,) = (checkpoint.parent / "set-aside").iterdir()
    assert (aside / "checkpoint.pt").read_bytes() == spoiled
    assert (tmp_path / "run" / "best.pt").is_file()


def test_train_patch_size_not_divisible_by_16_is_refused_by_the_parser(
    phantom_dir: Path, tmp_path: Path
) -> None:
    args = train_args(phantom_dir, tmp_path / "run", 1)
    args[args.index("--patch-size") + 1] = "40"
    result = spockmip(*args)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1 and "Traceback" not in result.stderr
    assert "argument --patch-size: 40 is not divisible by 16" in lines[0]
    assert not (tmp_path / "run").exists()


def test_train_refuses_an_output_under_a_file_before_training(phantom_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("mine")
    line = _error_line(spockmip(*train_args(phantom_dir, tmp_path / "taken" / "run", 1)), "train")
    assert "is a file, not a folder" in line and str(tmp_path / "taken") in line
    assert _snapshot(tmp_path) == {"taken": b"mine"}


# ---- predict: outputs ----


def _image(phantom_dir: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    image = folder / "scan.nii.gz"
    image.write_bytes((phantom_dir / "images" / "phantom003.nii.gz").read_bytes())
    return image


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("output is input", "the segmentation would overwrite the input image"),
        ("probabilities is output", "the probability map would overwrite the segmentation"),
        ("not nifti", "the segmentation must be named .nii or .nii.gz"),
        ("parent is a file", "is a file, not a folder"),
        ("output is a folder", "is a folder, but a file is to be written there"),
        ("figures is a file", "is a file, but a folder is to be written there"),
    ],
)
def test_predict_refuses_bad_outputs_before_computing(
    phantom_dir: Path,
    weights: Path,
    tmp_path: Path,
    case: str,
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    image = _image(phantom_dir, tmp_path)
    output, extra = tmp_path / "seg.nii.gz", []
    named = output
    if case == "output is input":
        output = named = image
    elif case == "probabilities is output":
        extra = ["--probabilities", str(output)]
    elif case == "not nifti":
        output = named = tmp_path / "seg.png"
    elif case == "parent is a file":
        (tmp_path / "file").write_text("x")
        output, named = tmp_path / "file" / "seg.nii.gz", tmp_path / "file" / "seg.nii.gz"
    elif case == "output is a folder":
        output.mkdir()
    else:
        named = tmp_path / "figures"
        named.write_text("x")
        extra = ["--figures", str(named)]
    before = _snapshot(tmp_path)
    result = _predict(capsys, "--weights", str(weights), "--input", str(image), "--output", str(output),
                      *extra, *PATCH)  # fmt: skip
    line = _error_line(result, "predict")
    assert str(named) in line and message in line
    assert _snapshot(tmp_path) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_predict_refuses_a_folder_without_write_permission(
    phantom_dir: Path, weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = _image(phantom_dir, tmp_path / "in")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    result = _predict(capsys, "--weights", str(weights), "--input", str(image),
                      "--output", str(locked / "seg.nii.gz"), *PATCH)  # fmt: skip
    assert "no permission to write" in _error_line(result, "predict")
    assert list(locked.iterdir()) == []


def test_predict_takes_patch_and_strides_from_the_checkpoint(
    phantom_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = build_model("unet", init_features=2)
    checkpoint = tmp_path / "trained.pt"
    payload = {"model_spec": spec_of(model).to_dict(), "state_dict": model.state_dict(),
               "inference": {"patch_size": [32, 32, 32], "strides": [16, 16, 16]}}  # fmt: skip
    torch.save(payload, checkpoint)
    image = _image(phantom_dir, tmp_path)
    result = _predict(capsys, "--weights", str(checkpoint), "--input", str(image),
                      "--output", str(tmp_path / "seg.nii.gz"), "--threads", "1")  # fmt: skip
    # The released default (64³) does not fit the 48×48×32 phantom; the recorded 32³ does.
    assert result.returncode == 0, result.stderr
    assert nib.load(tmp_path / "seg.nii.gz").shape == nib.load(image).shape


# ---- predict: weights ----


def _spoil_checkpoint(path: Path, problem: str) -> None:
    model = build_model("unet", init_features=2)
    spec, state = spec_of(model).to_dict(), model.state_dict()
    if problem == "NaN weights":
        state["Conv1.conv.0.weight"][0, 0, 0, 0, 0] = float("nan")
    elif problem == "absurd width":
        spec["init_features"] = 100000
    elif problem == "unknown key":
        spec["depth"] = 7
    elif problem == "wrong type":
        spec["init_features"] = "2"
    elif problem == "negative width":
        spec["init_features"] = -2
    elif problem == "unknown architecture":
        spec["architecture"] = "VNet3D"
    torch.save({"model_spec": spec, "state_dict": state}, path)


@pytest.mark.parametrize(
    ("problem", "message"),
    [
        ("NaN weights", "weights contain NaN or Inf values in Conv1.conv.0.weight"),
        ("absurd width", "weights do not fit UNet3D(100000): Conv1.conv.0.weight is [2, 1, 3, 3, 3]"),
        ("unknown key", "model_spec has unknown key(s) depth"),
        ("wrong type", "init_features must be a positive integer, got '2'"),
        ("negative width", "init_features must be a positive integer, got -2"),
        ("unknown architecture", "unknown architecture 'VNet3D'"),
    ],
)
def test_predict_refuses_unusable_weights(
    phantom_dir: Path, tmp_path: Path, problem: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    weights = tmp_path / "bad.pt"
    _spoil_checkpoint(weights, problem)
    image = _image(phantom_dir, tmp_path)
    before = _snapshot(tmp_path)
    result = _predict(capsys, "--weights", str(weights), "--input", str(image),
                      "--output", str(tmp_path / "seg.nii.gz"), *PATCH)  # fmt: skip
    line = _error_line(result, "predict")
    assert f"{weights}: " in line and message in line
    assert _snapshot(tmp_path) == before


def test_a_published_config_with_an_absurd_width_is_refused_before_building(
    phantom_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = write_published_folder(tmp_path / "repo", build_model("unetmss", init_features=2), "UNetMSS3D")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "init_features": 100000}))
    image = _image(phantom_dir, tmp_path / "in")
    result = _predict(capsys, "--weights", str(folder), "--input", str(image),
                      "--output", str(tmp_path / "seg.nii.gz"), *PATCH)  # fmt: skip
    line = _error_line(result, "predict")
    assert f"{folder}: weights do not fit UNetMSS3D(100000)" in line
    assert not (tmp_path / "seg.nii.gz").exists()


# ---- predict: image headers ----


def _write_bad_image(folder: Path, problem: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    data = np.ones((32, 32, 32), np.float32)
    header = nib.Nifti1Image(data, np.eye(4)).header.copy()
    header["qform_code"], header["sform_code"] = 0, 1
    if problem == "singular affine":
        header["srow_z"] = [0, 0, 0, 0]
    elif problem == "NaN affine":
        header["srow_x"] = [1, 0, 0, np.nan]
    path = folder / ("scan.nii" if problem == "absurd size" else "scan.nii.gz")
    nib.save(nib.Nifti1Image(data, None, header=header), path)
    if problem == "absurd size":
        raw = bytearray(path.read_bytes())
        struct.pack_into("<8h", raw, 40, 3, 30000, 30000, 30000, 1, 1, 1, 1)
        path.write_bytes(bytes(raw))
    return path


@pytest.mark.parametrize(
    ("problem", "message"),
    [
        ("singular affine", "affine is singular (determinant 0)"),
        ("NaN affine", "affine has NaN or infinite entries"),
        ("absurd size", "header declares 30000 x 30000 x 30000 = 2.7e+13 voxels, more than the"),
    ],
)
def test_predict_refuses_broken_headers(
    weights: Path, tmp_path: Path, problem: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    image = _write_bad_image(tmp_path / "in", problem)
    result = _predict(capsys, "--weights", str(weights), "--input", str(image),
                      "--output", str(tmp_path / "out" / "seg.nii.gz"), *PATCH)  # fmt: skip
    line = _error_line(result, "predict")
    assert f"{image}: {message}" in line
    assert not (tmp_path / "out").exists()


def test_a_4d_image_with_one_volume_is_segmented(
    phantom_dir: Path, weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = nib.load(phantom_dir / "images" / "phantom003.nii.gz")
    image = tmp_path / "scan4d.nii.gz"
    nib.save(nib.Nifti1Image(source.get_fdata(dtype=np.float32)[..., None], source.affine), image)
    result = _predict(capsys, "--weights", str(weights), "--input", str(image),
                      "--output", str(tmp_path / "seg.nii.gz"), *PATCH)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert nib.load(tmp_path / "seg.nii.gz").shape == source.shape
