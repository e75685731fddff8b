"""The CLI end to end on phantoms: train → predict → evaluate, a killed run resumed, bad inputs refused."""

import csv
import os
import signal
import subprocess
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from cli_helpers import SPOCKMIP, TINY_TRAINING, train_args

from spockmip.cli import main


def test_train_predict_evaluate_with_multi_axis_mip_and_deformation(
    phantom_dir: Path, tmp_path: Path
) -> None:
    model_dir = tmp_path / "model"
    assert main(train_args(phantom_dir, model_dir, 2, "--mip-axis", "multi", "--deform")) == 0
    assert (model_dir / "best.pt").is_file() and (model_dir / "final.pt").is_file()
    history = list(csv.DictReader((model_dir / "history.csv").open()))
    assert len(history) == 2 and all(float(row["train_mip"]) > 0 for row in history)

    predictions = tmp_path / "predictions"
    image, label = phantom_dir / "images" / "phantom003.nii.gz", phantom_dir / "labels" / "phantom003.nii.gz"
    predict = [
        "predict", "--weights", str(model_dir / "best.pt"), "--input", str(image),
        "--output", str(predictions / "phantom003.nii.gz"), "--probabilities", str(tmp_path / "prob.nii.gz"),
        "--label", str(label), "--figures", str(tmp_path / "figures"), "--patch-size", "32", "--stride", "16",
        "--threads", "1",
    ]  # fmt: skip
    assert main(predict) == 0
    segmentation = nib.load(predictions / "phantom003.nii.gz")
    np.testing.assert_array_equal(segmentation.affine, nib.load(image).affine)
    assert set(np.unique(np.asanyarray(segmentation.dataobj))) <= {0, 1}
    assert (tmp_path / "figures" / "phantom003_overlay.png").stat().st_size > 1000

    table = tmp_path / "metrics.csv"
    assert main(["evaluate", "--predictions", str(predictions), "--labels", str(phantom_dir / "labels"),
                 "--output", str(table)]) == 0  # fmt: skip
    rows = list(csv.DictReader(table.open()))
    assert [row["subject"] for row in rows] == ["phantom003"]
    assert 0.0 <= float(rows[0]["dice"]) <= 1.0 and 0.0 <= float(rows[0]["cl_dice"]) <= 1.0
    assert float(rows[0]["betti0_reference"]) >= 1


def test_a_killed_training_resumes_to_the_uninterrupted_weights(phantom_dir: Path, tmp_path: Path) -> None:
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    extra = ("--mip-axis", "z", "--deform")
    subprocess.run(
        [*SPOCKMIP, *train_args(phantom_dir, straight, 3, *extra)], check=True, capture_output=True
    )

    process = subprocess.Popen(
        [*SPOCKMIP, *train_args(phantom_dir, killed, 3, *extra)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    live_history = killed / "state" / "history.csv"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if live_history.is_file() and len(live_history.read_text().splitlines()) >= 2:
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "training finished before it could be killed"
    assert not (killed / "best.pt").exists(), "a killed run must not publish its weights"
    assert not (killed / "final.pt").exists(), "a killed run must not publish its final weights"

    rerun = subprocess.run(
        [*SPOCKMIP, *train_args(phantom_dir, killed, 3, *extra)], capture_output=True, text=True, check=True
    )
    assert "resuming after epoch" in rerun.stderr
    resumed_from = int(rerun.stderr.split("resuming after epoch ")[1].split()[0])
    assert 1 <= resumed_from < 3
    final = {name: torch.load(folder / "best.pt", weights_only=True) for name, folder in
             (("straight", straight), ("killed", killed))}  # fmt: skip
    assert final["straight"]["epoch"] == final["killed"]["epoch"]
    for key, value in final["straight"]["state_dict"].items():
        assert torch.equal(value, final["killed"]["state_dict"][key]), key
    assert (straight / "final.pt").read_bytes() == (killed / "final.pt").read_bytes()
    assert (straight / "history.csv").read_text().count("\n") == (killed / "history.csv").read_text().count(
        "\n"
    )


def _copy_dataset(phantom_dir: Path, destination: Path) -> Path:
    for folder in ("images", "labels"):
        (destination / folder).mkdir(parents=True)
        for name in ("phantom000", "phantom001"):
            source = phantom_dir / folder / f"{name}.nii.gz"
            (destination / folder / source.name).write_bytes(source.read_bytes())
    return destination


def _damage(data: Path, problem: str) -> str:
    """Spoil phantom001 in one way; return the file name the error message must mention."""
    image_path, label_path = data / "images" / "phantom001.nii.gz", data / "labels" / "phantom001.nii.gz"
    image, label = nib.load(image_path), nib.load(label_path)
    pixels, mask = image.get_fdata(dtype=np.float32), np.asanyarray(label.dataobj)
    if problem == "truncated":
        image_path.write_bytes(image_path.read_bytes()[:1000])
        return str(image_path)
    if problem == "missing label":
        label_path.unlink()
        return str(label_path)
    if problem == "shape mismatch":
        nib.save(nib.Nifti1Image(mask[:, :, :-2], label.affine), label_path)
    elif problem == "affine mismatch":
        nib.save(nib.Nifti1Image(mask, label.affine @ np.diag([1.0, 1.0, 1.5, 1.0])), label_path)
    elif problem == "non-binary label":
        nib.save(nib.Nifti1Image(mask * 255, label.affine), label_path)
    elif problem == "NaN intensities":
        pixels[5, 5, 5] = np.nan
        nib.save(nib.Nifti1Image(pixels, image.affine), image_path)
        return str(image_path)
    elif problem == "smaller than a patch":
        nib.save(nib.Nifti1Image(pixels[:20], image.affine), image_path)
        nib.save(nib.Nifti1Image(mask[:20], label.affine), label_path)
        return str(image_path)
    return str(label_path)


PROBLEMS = [
    "truncated", "missing label", "shape mismatch", "affine mismatch", "non-binary label", "NaN intensities",
    "smaller than a patch",
]  # fmt: skip


@pytest.mark.parametrize("problem", PROBLEMS)
def test_bad_inputs_fail_with_a_named_file_and_leave_no_output(
    phantom_dir: Path, tmp_path: Path, problem: str
):
    data = _copy_dataset(phantom_dir, tmp_path / "data")
    named = _damage(data, problem)
    out = tmp_path / "out"
    train = subprocess.run(
        [*SPOCKMIP, *train_args(data, out, 1)[:4], "phantom001", "--validation", "phantom000",
         "--out", str(out), *TINY_TRAINING],
        capture_output=True, text=True,
    )  # fmt: skip
    assert train.returncode == 1, train.stderr
    assert "spockmip train: error:" in train.stderr and named in train.stderr
    assert "Traceback" not in train.stderr
    assert not out.exists()

    if problem == "missing label":
        return
    predict = subprocess.run(
        [*SPOCKMIP, "predict", "--weights", "nowhere/none",
         "--input", str(data / "images" / "phantom001.nii.gz"),
         "--label", str(data / "labels" / "phantom001.nii.gz"), "--output", str(out / "seg.nii.gz"),
         "--patch-size", "32", "--stride", "16"],
        capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert predict.returncode == 1 and "spockmip predict: error:" in predict.stderr
    assert not out.exists()


def test_predict_refuses_bad_inputs_before_writing(phantom_dir: Path, tmp_path: Path) -> None:
    weights = tmp_path / "w.pt"
    from spockmip.networks.unet import build_model
    from spockmip.networks.weights import spec_of

    model = build_model("unet", init_features=2)
    torch.save({"model_spec": spec_of(model).to_dict(), "state_dict": model.state_dict()}, weights)
    for problem in ("NaN intensities", "shape mismatch"):
        data = _copy_dataset(phantom_dir, tmp_path / problem.replace(" ", "_"))
        named = _damage(data, problem)
        result = subprocess.run(
            [*SPOCKMIP, "predict", "--weights", str(weights),
             "--input", str(data / "images" / "phantom001.nii.gz"),
             "--label", str(data / "labels" / "phantom001.nii.gz"),
             "--output", str(tmp_path / "o" / "seg.nii.gz"),
             "--patch-size", "32", "--stride", "16"],
            capture_output=True, text=True,
        )  # fmt: skip
        assert result.returncode == 1 and named in result.stderr, result.stderr
        assert not (tmp_path / "o").exists()


def test_evaluate_names_a_prediction_without_label(tmp_path: Path) -> None:
    (tmp_path / "pred").mkdir()
    (tmp_path / "labels").mkdir()
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.uint8), np.eye(4)), tmp_path / "pred" / "sub9.nii.gz")
    result = subprocess.run(
        [*SPOCKMIP, "evaluate", "--predictions", str(tmp_path / "pred"), "--labels", str(tmp_path / "labels"),
         "--output", str(tmp_path / "m.csv")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 1 and "no label for" in result.stderr and "sub9.nii.gz" in result.stderr
    assert not (tmp_path / "m.csv").exists()


@pytest.mark.parametrize("command", ["train", "predict", "evaluate"])
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([command, "--help"]) == 0
    assert "usage: spockmip " + command in capsys.readouterr().out


def test_evaluate_takes_the_nsd_tolerance_in_mm(tmp_path: Path) -> None:
    for folder in ("pred", "labels"):
        (tmp_path / folder).mkdir()
    label = np.zeros((12, 12, 12), np.uint8)
    label[3:9, 3:9, 3:9] = 1
    affine = np.diag([0.5, 0.5, 1.0, 1.0])  # the label is 1 mm (two x voxels) off along x
    nib.save(nib.Nifti1Image(label, affine), tmp_path / "labels" / "s1.nii.gz")
    nib.save(nib.Nifti1Image(np.roll(label, 2, axis=0), affine), tmp_path / "pred" / "s1.nii.gz")
    nsd = {}
    for tolerance in ((), ("--nsd-tolerance-mm", "1.0")):
        args = ["evaluate", "--predictions", str(tmp_path / "pred"), "--labels", str(tmp_path / "labels")]
        assert main([*args, "--output", str(tmp_path / "m.csv"), *tolerance]) == 0
        with (tmp_path / "m.csv").open() as handle:
            row = next(csv.DictReader(handle))
        nsd[tolerance] = float(row["nsd"])
        assert float(row["hd95_mm"]) == pytest.approx(1.0)
    assert nsd[()] < 1.0 and nsd[("--nsd-tolerance-mm", "1.0")] == 1.0
