"""What a user can do wrong, through ``spockmip.cli.main`` as the console script runs it.

Every case ends in one line on stderr naming the file, key or option, exit status 1 and no traceback (a
constant image: a warning and exit 0), and leaves every input folder byte-identical.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from hf_helpers import write_published_folder

from spockmip.cli import main
from spockmip.networks.unet import build_model
from spockmip.networks.weights import spec_of

TINY = ["--init-features", "2", "--patch-size", "32", "--strides", "16", "--batch-size", "2",
        "--patches-per-epoch", "2", "--epochs", "1", "--threads", "1", "--no-progress"]  # fmt: skip


def checksums(*folders: Path) -> dict[str, str]:
    """A hash of every file below ``folders``: the inputs' state before and after a command."""
    return {
        str(path): hashlib.sha256(path.read_bytes()).hexdigest()
        for folder in folders
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def tree(folder: Path) -> dict[str, str]:
    """Every entry below ``folder``, hidden ones included, with a hash of each file's bytes: a command that
    is refused leaves it as it was, no new file, folder or temporary anywhere."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        if path.is_file()
        else "/"
        for path in sorted(folder.rglob("*"))
    }


@pytest.fixture
def data(phantom_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the session's phantoms (images/, labels/), so a test may break it."""
    copy = tmp_path / "data"
    shutil.copytree(phantom_dir, copy)
    return copy


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = build_model("unet", init_features=2)
    path = tmp_path_factory.mktemp("weights") / "model.pt"
    torch.save({"model_spec": spec_of(model).to_dict(), "state_dict": model.state_dict()}, path)
    return path


def fails_with_one_line(argv: list[str], capsys: pytest.CaptureFixture[str], *named: str) -> str:
    """Run the command; it must exit 1 with one stderr line naming each of ``named``."""
    status = main(argv)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert status == 1, err
    assert len(lines) == 1 and "Traceback" not in err, err
    for name in named:
        assert name in lines[0], (name, lines[0])
    return lines[0]


def predict(weights: Path, image: Path, output: Path, *extra: str) -> list[str]:
    return ["predict", "-w", str(weights), "-i", str(image), "-o", str(output), "--patch-size", "32",
            "--strides", "16", "--threads", "1", "--no-progress", *extra]  # fmt: skip


@pytest.mark.parametrize("option", ["--label", "--probabilities"])
def test_predict_never_writes_over_the_label(
    data: Path, weights: Path, option: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = checksums(data)
    label = data / "labels" / "phantom000.nii.gz"
    image = data / "images" / "phantom000.nii.gz"
    extra = ["--label", str(label)] if option == "--probabilities" else []
    fails_with_one_line(predict(weights, image, label, option, str(label), *extra), capsys, str(label))
    assert checksums(data) == before


def test_predict_refuses_an_output_folder_that_is_the_label_folder(
    data: Path, weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = checksums(data)
    labels = data / "labels"
    fails_with_one_line(
        predict(weights, data / "images", labels, "--label", str(labels)), capsys, str(labels)
    )
    assert checksums(data) == before


def test_predict_follows_symlinks_to_the_inputs(
    data: Path, weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    link = tmp_path / "link.nii.gz"
    link.symlink_to(data / "images" / "phantom000.nii.gz")
    before = checksums(data)
    fails_with_one_line(predict(weights, data / "images" / "phantom000.nii.gz", link), capsys, str(link))
    assert checksums(data) == before


def test_a_folder_with_one_bad_volume_leaves_no_output(
    data: Path, weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = tmp_path / "images"
    images.mkdir()
    for subject in ("phantom000", "phantom001"):
        shutil.copy(data / "images" / f"{subject}.nii.gz", images)
    (images / "phantom002.nii.gz").write_bytes(b"not a volume")
    out = tmp_path / "out"
    out.mkdir()
    before = checksums(images)
    fails_with_one_line(predict(weights, images, out), capsys, "phantom002.nii.gz")
    assert list(out.iterdir()) == []
    assert checksums(images) == before


def _nifti_like(reference: Path, array: np.ndarray, destination: Path) -> Path:
    image = nib.load(reference)
    nib.save(nib.Nifti1Image(array.astype(np.float32), image.affine), destination)
    return destination


@pytest.mark.parametrize("value", [0.0, 3.5])
def test_a_constant_image_gives_an_empty_mask_with_a_warning(
    data: Path, weights: Path, tmp_path: Path, value: float, caplog: pytest.LogCaptureFixture
) -> None:
    reference = data / "images" / "phantom000.nii.gz"
    shape = nib.load(reference).shape
    image = _nifti_like(reference, np.full(shape, value), tmp_path / "constant.nii.gz")
    out = tmp_path / "mask.nii.gz"
    assert main(predict(weights, image, out)) == 0
    assert not np.asanyarray(nib.load(out).dataobj).any()
    assert any(
        str(image) in record.getMessage() and "constant" in record.getMessage() for record in caplog.records
    )


@pytest.mark.parametrize("damage", ["nan", "huge", "int32"])
def test_weights_that_give_no_probabilities_are_named(
    data: Path, tmp_path: Path, damage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.manual_seed(0)
    model = build_model("unet", init_features=2)
    state = model.state_dict()
    for key, tensor in state.items():
        if tensor.is_floating_point():
            if damage == "int32":
                state[key] = tensor.to(torch.int32)
            else:
                state[key] = tensor * (float("nan") if damage == "nan" else 1e20)
    broken = tmp_path / "broken.pt"
    torch.save({"model_spec": spec_of(model).to_dict(), "state_dict": state}, broken)
    out = tmp_path / "mask.nii.gz"
    fails_with_one_line(predict(broken, data / "images" / "phantom000.nii.gz", out), capsys, str(broken))
    assert not out.exists()


def test_a_collapsed_network_segments_by_the_threshold_with_a_warning(
    data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A training can end in a network that outputs one value (soft-clDice has such a minimum): its
    segmentation is a result, written with a warning, so one collapsed replicate does not stop a study."""
    torch.manual_seed(0)
    model = build_model("unet", init_features=2)
    state = model.state_dict()
    state["Conv.weight"] = torch.zeros_like(state["Conv.weight"])
    state["Conv.bias"] = torch.full_like(state["Conv.bias"], 1.5)  # sigmoid 0.82 everywhere
    collapsed = tmp_path / "collapsed.pt"
    torch.save({"model_spec": spec_of(model).to_dict(), "state_dict": state}, collapsed)
    out = tmp_path / "mask.nii.gz"
    assert main(predict(collapsed, data / "images" / "phantom000.nii.gz", out)) == 0
    assert np.asanyarray(nib.load(out).dataobj).all()  # above Otsu's fallback 0.5: vessel everywhere
    assert any(
        str(collapsed) in record.getMessage() and "same probability (0.818)" in record.getMessage()
        for record in caplog.records
    )


def test_a_checkpoint_of_lists_is_named(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = build_model("unet", init_features=2)
    state = {key: tensor.tolist() for key, tensor in model.state_dict().items()}
    path = tmp_path / "lists.pt"
    torch.save({"model_spec": spec_of(model).to_dict(), "state_dict": state}, path)
    fails_with_one_line(
        predict(path, data / "images" / "phantom000.nii.gz", tmp_path / "m.nii.gz"), capsys, str(path)
    )


@pytest.mark.parametrize("device", ["banana", "cuda", "mps"])
def test_an_unavailable_device_is_named(
    data: Path, weights: Path, tmp_path: Path, device: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    image = data / "images" / "phantom000.nii.gz"
    fails_with_one_line(predict(weights, image, tmp_path / "m.nii.gz", "--device", device), capsys, device)


def test_evaluate_never_writes_over_a_label(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = checksums(data)
    label = data / "labels" / "phantom000.nii.gz"
    argv = ["evaluate", "--predictions", str(data / "labels"), "--labels", str(data / "labels"),
            "--output", str(label)]  # fmt: skip
    fails_with_one_line(argv, capsys, str(label))
    assert checksums(data) == before


@pytest.mark.parametrize("where", ["folder", "under_a_file", "read_only"])
def test_evaluate_names_an_output_it_cannot_write(
    data: Path, tmp_path: Path, where: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if where == "folder":
        output = tmp_path / "metrics"
        output.mkdir()
    elif where == "under_a_file":
        (tmp_path / "file").write_text("x")
        output = tmp_path / "file" / "metrics.csv"
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        output = locked / "metrics.csv"
        if (locked / "probe").parent.stat().st_mode and _can_write(locked):
            pytest.skip("root writes into read-only folders")
    argv = ["evaluate", "--predictions", str(data / "labels"), "--labels", str(data / "labels"),
            "--output", str(output)]  # fmt: skip
    fails_with_one_line(argv, capsys, str(output))


def _can_write(folder: Path) -> bool:
    probe = folder / ".probe"
    try:
        probe.write_text("")
    except OSError:
        return False
    probe.unlink()
    return True


def test_evaluate_never_reads_a_hidden_temporary_as_a_prediction(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    predictions = tmp_path / "predictions"
    predictions.mkdir()
    shutil.copy(data / "labels" / "phantom000.nii.gz", predictions)
    shutil.copy(data / "labels" / "phantom001.nii.gz", predictions / ".phantom001.nii.gz.x7q.nii.gz")
    output = tmp_path / "metrics.csv"
    argv = ["evaluate", "--predictions", str(predictions), "--labels", str(data / "labels"),
            "--output", str(output)]  # fmt: skip
    assert main(argv) == 0
    assert output.read_text().count("phantom") == 1


@pytest.mark.parametrize(
    ("roles", "named"),
    [
        (["--train", "phantom000", "phantom001", "--validation", "phantom001"], "phantom001"),
        (["--train", "phantom000", "phantom000", "--validation", "phantom001"], "phantom000"),
    ],
)
def test_training_refuses_overlapping_roles(
    data: Path, tmp_path: Path, roles: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = checksums(data)
    argv = ["train", "--data", str(data), *roles, "--out", str(tmp_path / "run"), *TINY]
    fails_with_one_line(argv, capsys, named)
    assert checksums(data) == before and not (tmp_path / "run").exists()


def test_training_refuses_a_split_that_trains_on_its_test_subject(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    split = tmp_path / "splits.json"
    split.write_text(json.dumps({"seed": 1, "test": ["phantom003"], "folds": [
        {"train": ["phantom000", "phantom003"], "validation": ["phantom001"]},
        {"train": ["phantom001", "phantom003"], "validation": ["phantom000"]},
    ]}))  # fmt: skip
    argv = [
        "train",
        "--data",
        str(data),
        "--split",
        str(split),
        "--fold",
        "0",
        "--out",
        str(tmp_path / "r"),
        *TINY,
    ]
    fails_with_one_line(argv, capsys, str(split), "phantom003")


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("training: {epochs: ten}\nvariants: {a: {model: unet}}\n", "epochs"),
        ("training: {learning_rate: .nan}\nvariants: {a: {model: unet}}\n", "learning_rate"),
        ("training: {strides: [80, 16, 16]}\nvariants: {a: {model: unet}}\n", "strides"),
        ("variants:\n  a: {model: unet}\n  a: {model: unetmss}\n", "'a'"),
    ],
)
def test_a_bad_settings_file_is_named_with_its_key(
    data: Path, tmp_path: Path, text: str, named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "settings.yaml"
    config.write_text(text)
    argv = ["train", "--data", str(data), "--train", "phantom000", "--validation", "phantom001",
            "--config", str(config), "--variant", "a", "--out", str(tmp_path / "run"),
            "--threads", "1", "--no-progress"]  # fmt: skip
    fails_with_one_line(argv, capsys, str(config), named)
    assert not (tmp_path / "run").exists()


def test_synth_refuses_a_spacing_without_an_affine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["synth", "--out", str(tmp_path / "d"), "--n-subjects", "1", "--spacing", "1e-300"]
    fails_with_one_line(argv, capsys, "--spacing", "1e-300 is less than the minimum")
    assert not (tmp_path / "d").exists()


def test_canonical_order_trains_with_the_torchio_queue(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Stored in LPS, the canonical view is a flipped copy of the stored voxels: the queue must take it."""
    for folder in ("images", "labels"):
        for subject in ("phantom000", "phantom001"):
            path = data / folder / f"{subject}.nii.gz"
            image = nib.load(path)
            flip = np.diag([-1.0, -1.0, 1.0, 1.0])
            flipped = np.asanyarray(image.dataobj)[::-1, ::-1]
            nib.save(nib.Nifti1Image(np.ascontiguousarray(flipped), image.affine @ flip, image.header), path)
    assert nib.aff2axcodes(nib.load(data / "images" / "phantom000.nii.gz").affine) != ("R", "A", "S")
    argv = ["train", "--data", str(data), "--train", "phantom000", "--validation", "phantom001",
            "--out", str(tmp_path / "run"), "--sampling", "queue", "--orientation", "canonical",
            *TINY]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    assert (tmp_path / "run" / "best.pt").is_file()


# ---- weights of another network ----


def _stitched(first: dict[str, torch.Tensor], rest: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A converted state dict gone wrong: the first layer of one width, the rest of another."""
    return {**rest, **{key: first[key] for key in ("Conv1.conv.0.weight", "Conv1.conv.0.bias")}}


def _another_networks_weights(folder: Path, source: str) -> str:
    """Weights under ``folder`` that do not fit the network they declare, or any UNet at all; returns the
    path as the user types it (relative, as ``Path`` would not print it)."""
    torch.manual_seed(0)
    mss2, unet2, unet4 = (
        build_model(a, init_features=w) for a, w in (("unetmss", 2), ("unet", 2), ("unet", 4))
    )
    if source in ("published width", "published architecture"):
        # config.json names UNetMSS3D(4) (or UNet3D(2)), the safetensors hold UNetMSS3D(2).
        published = write_published_folder(folder / "published", mss2, "UNetMSS3D")
        config = json.loads((published / "config.json").read_text())
        if source == "published width":
            config["init_features"] = 4
        else:
            config["architectures"] = ["UNet3D"]
        (published / "config.json").write_text(json.dumps(config))
        return "./published/"
    path = folder / ("model.pt" if source == "checkpoint" else "released.pth")
    if source == "checkpoint":  # our checkpoint: its model_spec says UNetMSS3D(2), its tensors are UNet3D(4)
        torch.save({"model_spec": spec_of(mss2).to_dict(), "state_dict": unet4.state_dict()}, path)
    elif source == "released width":
        torch.save({"state_dict": _stitched(unet4.state_dict(), unet2.state_dict())}, path)
    else:  # the released code's layout around another network's parameter names
        torch.save({"state_dict": {f"net.{k}": v for k, v in unet2.state_dict().items()}}, path)
    return f"./{path.name}"


# What each source's refusal says does not fit: the first key of each kind, and how many more.
MISFITS = {
    "checkpoint": [
        "weights do not fit UNetMSS3D(2): Conv_d3.conv.0.weight missing (and ",
        "more missing); Conv1.conv.0.weight is [4, 1, 3, 3, 3], expected [2, 1, 3, 3, 3] (and ",
        "more of another shape)",
    ],
    "released width": [
        "weights do not fit UNet3D(4): Conv1.conv.1.weight is [2], expected [4] (and ",
        "more of another shape)",
    ],
    "released network": [
        "not a UNet3D/UNetMSS3D state dict: no Conv1.conv.0.weight (its first of ",
        "keys is net.Conv1.conv.0.weight)",
    ],
    "published width": [
        "weights do not fit UNetMSS3D(4): ",
        "Conv1.conv.0.weight is [2, 1, 3, 3, 3], expected [4, 1, 3, 3, 3] (and ",
        "more of another shape)",
    ],
    "published architecture": ["weights do not fit UNet3D(2): unexpected Conv_d3.", "more unexpected)"],
}


@pytest.mark.parametrize("source", list(MISFITS))
def test_weights_of_another_network_are_refused_naming_the_file(
    data: Path,
    tmp_path: Path,
    source: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Our checkpoint, a released-code state dict and a published folder, each holding another network's
    weights: one line that starts with the weights as the user wrote them and says what does not fit, in
    a first key and a count, and nothing written."""
    monkeypatch.chdir(tmp_path)
    written = _another_networks_weights(tmp_path, source)
    before = tree(tmp_path)
    argv = predict(Path("."), data / "images" / "phantom000.nii.gz", tmp_path / "seg.nii.gz")
    argv[argv.index("-w") + 1] = written
    line = fails_with_one_line(argv, capsys, *MISFITS[source])
    assert line.startswith(f"spockmip predict: error: {written}: "), line
    assert tree(tmp_path) == before


# ---- outputs in input folders ----


@pytest.fixture
def places(data: Path, weights: Path, tmp_path: Path) -> dict[str, str]:
    """The inputs a command may be pointed at, by name: the data set's folders, a folder of ``.nii`` images
    (whose outputs, ``.nii.gz``, are new names beside them), predictions to evaluate (the labels, copied), a
    published weights folder, a split file."""
    scans, predictions = tmp_path / "scans", tmp_path / "predictions"
    scans.mkdir()
    nib.save(nib.load(data / "images" / "phantom000.nii.gz"), scans / "phantom000.nii")
    shutil.copytree(data / "labels", predictions)
    published = write_published_folder(tmp_path / "published", build_model("unet", init_features=2), "UNet3D")
    split = tmp_path / "splits.json"
    split.write_text(json.dumps({"seed": 1, "test": ["phantom003"], "folds": [
        {"train": ["phantom000"], "validation": ["phantom001"]},
        {"train": ["phantom001"], "validation": ["phantom000"]},
    ]}))  # fmt: skip
    named = {"data": data, "images": data / "images", "labels": data / "labels", "scans": scans,
             "predictions": predictions, "published": published, "split": split, "weights": weights,
             "tmp": tmp_path}  # fmt: skip
    return {name: str(path) for name, path in named.items()}


PREDICT = "predict -w {weights} -i {images} --label {labels} -o"
EVALUATE = "evaluate --predictions {predictions} --labels {labels} --output"
TRAIN = "train --data {data} --train phantom000 --validation phantom001 --out"
TAILS = {
    "predict": ["--patch-size", "32", "--strides", "16", "--threads", "1", "--no-progress"],
    "train": TINY,
    "evaluate": [],
    "synth": [],
}

# Each case: the command line, the output it names and the input (a file or folder) it would reach.
OUTPUTS_IN_INPUTS = {
    "predict -o is the input folder": (PREDICT + " {images}", "{images}", "{images}"),
    "predict -o holds the input folder": (PREDICT + " {data}", "{data}", "{images}"),
    "predict -o in the input folder": (PREDICT + " {images}/seg", "{images}/seg", "{images}"),
    "predict -o in the weights folder": (
        "predict -w {published} -i {images}/phantom000.nii.gz -o {published}/seg.nii.gz",
        "{published}/seg.nii.gz",
        "{published}",
    ),
    "predict --probabilities is the input folder": (
        PREDICT + " {tmp}/out --probabilities {images}",
        "{images}",
        "{images}",
    ),
    "predict --probabilities is the input folder of .nii images": (
        "predict -w {weights} -i {scans} -o {tmp}/out --probabilities {scans}",
        "{scans}",
        "{scans}",
    ),
    "predict --probabilities is the label folder": (
        PREDICT + " {tmp}/out --probabilities {labels}",
        "{labels}",
        "{labels}",
    ),
    "predict --probabilities in the input folder": (
        PREDICT + " {tmp}/out --probabilities {images}/p",
        "{images}/p",
        "{images}",
    ),
    "predict --figures is the label folder": (
        PREDICT + " {tmp}/out --figures {labels}",
        "{labels}",
        "{labels}",
    ),
    "predict --figures in the input folder": (
        PREDICT + " {tmp}/out --figures {images}/f",
        "{images}/f",
        "{images}",
    ),
    "evaluate --output is the label folder": (EVALUATE + " {labels}", "{labels}", "{labels}"),
    "evaluate --output in the label folder": (EVALUATE + " {labels}/m.csv", "{labels}/m.csv", "{labels}"),
    "evaluate --output in the prediction folder": (
        EVALUATE + " {predictions}/m.csv",
        "{predictions}/m.csv",
        "{predictions}",
    ),
    "train --out is the image folder": (TRAIN + " {images}", "{images}", "{images}"),
    "train --out holds the inputs": (TRAIN + " {data}", "{data}", "{images}"),
    "train --out in the label folder": (TRAIN + " {labels}/run", "{labels}/run", "{labels}"),
    "train --out is the split file": (
        "train --data {data} --split {split} --fold 0 --out {split}",
        "{split}",
        "{split}",
    ),
    "train --state-dir in the image folder": (
        TRAIN + " {tmp}/run --state-dir {images}/state",
        "{images}/state",
        "{images}",
    ),
    "synth --out is an input folder": ("synth --n-subjects 1 --out {images}", "{images}", "{images}"),
}


@pytest.mark.parametrize("case", list(OUTPUTS_IN_INPUTS))
def test_no_output_option_writes_into_an_input_folder(
    places: dict[str, str], data: Path, tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every output option of every command is refused when it is an input folder, holds an input, or lies
    in an input folder: one line naming the output and the input, before anything is written."""
    command, output, reached = (text.format(**places) for text in OUTPUTS_IN_INPUTS[case])
    argv = command.split() + TAILS[command.split()[0]]
    inputs, everything = checksums(data), tree(tmp_path)
    fails_with_one_line(argv, capsys, output, reached)
    assert checksums(data) == inputs
    assert tree(tmp_path) == everything


# Settings files and options a careless user writes: each ends in one line naming the key or option as
# written, exit 1, no traceback, the inputs unchanged and no new file (a lock file included).
SETTINGS_FILES = {
    "seeds as a scalar": ("training: {seeds: 2021}\n", ["training.seeds", "2021 is not of type 'array'"]),
    "a negative seed among seeds": ("training: {seeds: [-3]}\n", ["training.seeds.0", "-3"]),
    "seed and seeds": ("training: {seed: 7, seeds: [2021]}\n", ["training.seeds", "not both"]),
    "a seed beyond every generator": (
        "training: {seeds: [2020, 18446744073709551616]}\n",
        ["training.seeds.1", "greater than the maximum of 4294967295"],
    ),
    "a continuity setting without its term": (
        "variants:\n  u: {model: unet, cldice_weight: 0.3}\n",
        ["variants.u.cldice_weight", "unless variants.u.skeleton_loss is cldice"],
    ),
    "a continuity setting under training": (
        "training: {cldice_weight: 0.3}\n",
        ["training", "'cldice_weight' was unexpected"],
    ),
}


@pytest.mark.parametrize("case", list(SETTINGS_FILES))
def test_a_settings_file_takes_the_workflows_checks_naming_its_keys(
    data: Path, tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    text, named = SETTINGS_FILES[case]
    config = tmp_path / "c.yaml"
    config.write_text(text if "variants" in text else f"{text}variants: {{u: {{model: unet}}}}\n")
    before = checksums(data, tmp_path)
    argv = ["train", "--data", str(data), "--train", "phantom000", "--validation", "phantom001",
            "--config", str(config), "--out", str(tmp_path / "run"), "--threads", "1",
            "--no-progress"]  # fmt: skip
    line = fails_with_one_line(argv, capsys, f"{config}: ", *named)
    assert "--" not in line, "a key the file wrote is named as the file writes it, not as an option"
    assert checksums(data, tmp_path) == before


OPTIONS = {
    "a seed beyond every generator": (
        ["--seed", "18446744073709551616"],
        ["--seed", "greater than the maximum of 4294967295"],
    ),
    "soft-skeleton iterations without end": (
        ["--cldice-iterations", "1000000000"],
        ["--cldice-iterations", "greater than the maximum of 1000"],
    ),
    "a batch that leaves batch normalisation one value": (
        [
            "--batch-size",
            "1",
            "--patch-size",
            "16",
            "16",
            "16",
            "--strides",
            "16",
            "--patches-per-epoch",
            "2",
        ],
        ["--batch-size", "--patch-size", "batch normalisation"],
    ),
    "a last batch of one patch": (
        ["--batch-size", "2", "--patch-size", "16", "--strides", "16", "--patches-per-epoch", "3"],
        ["--batch-size", "--patches-per-epoch 3", "batch normalisation"],
    ),
}


@pytest.mark.parametrize("case", list(OPTIONS))
def test_a_training_that_cannot_run_is_refused_before_it_starts(
    data: Path, tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    extra, named = OPTIONS[case]
    before = checksums(data)
    argv = ["train", "--data", str(data), "--train", "phantom000", "--validation", "phantom001",
            "--out", str(tmp_path / "run"), "--init-features", "2", "--epochs", "1", "--threads", "1",
            "--no-progress", *extra]  # fmt: skip
    fails_with_one_line(argv, capsys, *named)
    assert checksums(data) == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["data"], "no run folder, no lock file"


def test_synth_refuses_a_phantom_beyond_the_voxel_budget_before_computing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["synth", "--out", str(tmp_path / "d"), "--shape", "2048", "2048", "1024"]
    fails_with_one_line(argv, capsys, "--shape", "4,294,967,296 voxels", "2**28")
    assert not (tmp_path / "d").exists()
