"""The prediction stage as the workflow's prediction job calls it: several groups (weights, images,
outputs) in one call, every output checked against every input before anything is computed."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from predict_helpers import SUBJECTS, snapshot

from spockmip.errors import OutputError
from spockmip.inference.planning import PredictionGroup, PredictionJob
from spockmip.stages.predict import run_prediction, run_predictions


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

    before = snapshot(tmp_path)
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
    assert snapshot(tmp_path) == before


def test_a_groups_record_is_written_with_its_segmentations_and_is_never_an_input(
    images: Path, fold_weights: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The record names, relative to the folder the call runs in, the weights and image it read with their
    hashes, each segmentation's hash and threshold, and the window it slid; it is checked with the
    outputs, before anything is computed."""
    monkeypatch.chdir(tmp_path)
    inference = {"patch_size": (32, 32, 32), "strides": (16, 16, 16)}
    image = images / f"{SUBJECTS[0]}.nii.gz"
    output, record = Path("out") / "seg.nii.gz", Path("out") / "provenance.json"
    (threshold,) = run_predictions(
        [PredictionGroup.of([fold_weights[0]], [image], [output], record)], inference
    )
    written = json.loads(record.read_text())
    assert written["kind"] == "prediction" and written["thresholds"] == {"out/seg.nii.gz": threshold}
    assert written["outputs"] == {"out/seg.nii.gz": hashlib.sha256(output.read_bytes()).hexdigest()}
    # The image lies under the folder the call runs in, the weights elsewhere.
    assert set(written["inputs"]) == {str(fold_weights[0]), f"images/{image.name}"}
    assert (
        written["settings"]["patch_size"] == [32, 32, 32] and written["settings"]["orientation"] == "stored"
    )
    assert written["machine"]["device"] == "cpu" and written["run"]["wall_seconds"] > 0

    before = snapshot(tmp_path)
    fresh = Path("fresh") / "seg.nii.gz"
    for target, message in ((image, "would overwrite the input image"), (fresh, "would overwrite the segm")):
        group = PredictionGroup.of([fold_weights[0]], [image], [fresh], target)
        with pytest.raises(OutputError, match=message):
            run_predictions([group], inference)
    assert snapshot(tmp_path) == before
