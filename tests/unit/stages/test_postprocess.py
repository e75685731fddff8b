"""Post-processing chosen on cross-validation, applied and scored (spockmip.stages.postprocess), on real
NIfTI files."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from spockmip.errors import DataError, OutputError
from spockmip.evaluation.postprocessing import (
    PostprocessingSettings,
    PredictionSet,
    choose_min_size,
    postprocess,
    remove_small_components,
)
from spockmip.evaluation.scoring import evaluate, write_metrics
from spockmip.stages.ingest import import_region_mask
from spockmip.stages.postprocess import run_postprocessing

SHAPE = (24, 24, 24)
AFFINE = np.diag([0.3, 0.3, 0.6, 1.0])


def vessel() -> np.ndarray:
    mask = np.zeros(SHAPE, dtype=bool)
    mask[10:13, 10:13, 2:22] = True
    return mask


def with_specks(mask: np.ndarray, sizes: tuple[int, ...]) -> np.ndarray:
    """``mask`` plus separate line segments of the given lengths (components of that many voxels)."""
    speckled = mask.copy()
    for row, size in enumerate(sizes):
        speckled[2 + 3 * row, 2, 2 : 2 + size] = True
    return speckled


def save(mask: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(mask.astype(np.uint8), AFFINE), path)
    return path


def test_components_below_k_go_and_the_rest_stay() -> None:
    mask = with_specks(vessel(), (1, 4, 9))
    assert np.array_equal(remove_small_components(mask, 0), mask)
    assert np.array_equal(remove_small_components(mask, 5), with_specks(vessel(), (0, 0, 9)))
    assert np.array_equal(remove_small_components(mask, 10), vessel())
    region = np.zeros(SHAPE, dtype=bool)
    region[:, :, :16] = True  # cuts the vessel to 14 voxels long: 126 voxels stay, more than k
    assert np.array_equal(postprocess(mask, 10, region), vessel() & region)


def test_k_is_the_best_mean_and_a_tie_goes_to_the_smaller_k() -> None:
    label = vessel()
    pairs = [(with_specks(label, (2, 3)), label, None), (with_specks(label, (7,)), label, None)]
    choice = choose_min_size(pairs, (500, 0, 4, 8, 10), "dice")
    assert choice.candidates == (0, 4, 8, 10, 500)
    assert choice.min_size == 8  # 8 and 10 both remove every speck; 500 removes the vessel
    assert choice.mean_scores[2] == choice.mean_scores[3] == 1.0
    by_error = choose_min_size(pairs, (0, 4, 8), "betti0_error")
    assert by_error.min_size == 8 and by_error.mean_scores == (1.5, 0.5, 0.0)


def _sets(tmp_path: Path, predictions: dict[str, np.ndarray]) -> list[PredictionSet]:
    """One cross-validation set (subjects a, b) and one test set (subject c), raw tables scored."""
    sets = []
    for name, subjects, selects in (("validation", ["a", "b"], True), ("test", ["c"], False)):
        raw = [save(predictions[s], tmp_path / "raw" / name / f"{s}.nii.gz") for s in subjects]
        labels = [save(vessel(), tmp_path / "labels" / f"{s}.nii.gz") for s in subjects]
        table = evaluate(subjects, raw, labels)
        table.insert(0, "variant", "unet")
        write_metrics(table, tmp_path / "raw" / f"{name}.csv")
        sets.append(
            PredictionSet.of(
                {
                    "subjects": subjects,
                    "predictions": raw,
                    "labels": labels,
                    "outputs": [tmp_path / "pp" / name / f"{s}.nii.gz" for s in subjects],
                    "raw_metrics": tmp_path / "raw" / f"{name}.csv",
                    "metrics": tmp_path / "pp" / f"{name}.csv",
                    "columns": {"variant": "unet"},
                    "selects": selects,
                }
            )
        )
    return sets


def test_specks_chosen_away_on_cross_validation_are_removed_from_the_test_predictions(tmp_path: Path) -> None:
    predictions = {s: with_specks(vessel(), (3,)) for s in "abc"}
    sets = _sets(tmp_path, predictions)
    choice = run_postprocessing(sets, tmp_path / "pp" / "choice.json", PostprocessingSettings((0, 10)))
    assert choice.min_size == 10
    assert json.loads((tmp_path / "pp" / "choice.json").read_text())["min_size"] == 10
    cleaned = np.asanyarray(nib.load(tmp_path / "pp" / "test" / "c.nii.gz").dataobj)
    assert np.array_equal(cleaned.astype(bool), vessel())
    scores = pd.read_csv(tmp_path / "pp" / "test.csv")
    raw = pd.read_csv(tmp_path / "raw" / "test.csv")
    assert list(scores.columns) == list(raw.columns)
    assert raw.loc[0, "dice"] < scores.loc[0, "dice"] == 1.0
    assert raw.loc[0, "betti0_error"] > scores.loc[0, "betti0_error"] == 0


def test_with_nothing_removed_the_files_are_byte_copies_and_keep_the_raw_scores(tmp_path: Path) -> None:
    predictions = {"a": vessel(), "b": with_specks(vessel(), (30,)), "c": with_specks(vessel(), (2,))}
    sets = _sets(tmp_path, predictions)
    run_postprocessing(sets, tmp_path / "pp" / "choice.json", PostprocessingSettings((0,)))
    for group in sets:
        for raw, output in zip(group.predictions, group.outputs, strict=True):
            assert output.read_bytes() == raw.read_bytes()
        assert group.metrics.read_text() == group.raw_metrics.read_text()


def test_a_region_mask_is_applied_to_predictions_only(tmp_path: Path) -> None:
    predictions = {s: vessel() for s in "abc"}
    sets = _sets(tmp_path, predictions)
    region = np.zeros(SHAPE, dtype=bool)
    region[:, :, :12] = True
    regions = {s: save(region, tmp_path / "masks" / f"{s}.nii.gz") for s in "abc"}
    settings = PostprocessingSettings((0,), "dice", region_mask=True)
    choice = run_postprocessing(sets, tmp_path / "pp" / "choice.json", settings, regions)
    assert choice.region_mask
    masked = np.asanyarray(nib.load(tmp_path / "pp" / "test" / "c.nii.gz").dataobj).astype(bool)
    assert np.array_equal(masked, vessel() & region)
    assert pd.read_csv(tmp_path / "pp" / "test.csv").loc[0, "recall"] == pytest.approx(10 / 20)
    with pytest.raises(DataError, match="no region mask for subject"):
        run_postprocessing(sets, tmp_path / "other.json", settings, {"a": regions["a"]})


def test_an_output_among_the_inputs_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    sets = _sets(tmp_path, {s: vessel() for s in "abc"})
    with pytest.raises(OutputError):
        run_postprocessing(
            sets, tmp_path / "raw" / "validation" / "choice.json", PostprocessingSettings((0,))
        )
    assert not (tmp_path / "pp").exists()


def test_a_region_mask_is_imported_only_on_its_images_grid(tmp_path: Path) -> None:
    data = tmp_path / "data"
    save(np.zeros(SHAPE), data / "images" / "s1.nii.gz")
    save(vessel(), data / "masks" / "s1.nii.gz")
    import_region_mask(data, "s1", tmp_path / "resources" / "s1.nii.gz")
    assert (tmp_path / "resources" / "s1.nii.gz").read_bytes() == (data / "masks" / "s1.nii.gz").read_bytes()
    nib.save(nib.Nifti1Image(vessel().astype(np.uint8), np.eye(4)), data / "masks" / "s1.nii.gz")
    with pytest.raises(DataError, match=r"masks/s1\.nii\.gz"):
        import_region_mask(data, "s1", tmp_path / "resources" / "other.nii.gz")
    assert not (tmp_path / "resources" / "other.nii.gz").exists()
    save(np.zeros(SHAPE), data / "images" / "s2.nii.gz")
    with pytest.raises(DataError, match=r"masks/s2\.nii\.gz: not found .* region masks go in masks/"):
        import_region_mask(data, "s2", tmp_path / "resources" / "s2.nii.gz")
