"""Post-processing: the minimum component size chosen on one (variant, seed)'s cross-validation
predictions, applied to all of its predictions, which are then scored.

Torch-free, like evaluation. Every output is checked before any volume is read and written together once
everything is computed; no output may be an input or lie in an input's folder. A post-processed prediction
equal to its raw one is a byte copy of it, and keeps the raw scores (the same file scores the same), so
k = 0 reproduces the raw results exactly and costs no scoring.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from spockmip.errors import DataError
from spockmip.evaluation.postprocessing import (
    MinSizeChoice,
    PostprocessingSettings,
    PredictionSet,
    choose_min_size,
    postprocess,
)
from spockmip.evaluation.scoring import DEFAULT_SCORING, ScoringSettings, evaluate, write_metrics
from spockmip.files.outputs import (
    StagedOutputs,
    atomic_path,
    check_writable,
    refuse_overwriting_inputs,
    staged_outputs,
    write_nifti_like,
)
from spockmip.files.volumes import Orientation, load_mask, load_nifti, validate_label, validate_pair


def _guard(sets: Sequence[PredictionSet], regions: Mapping[str, Path], choice_path: Path) -> None:
    """Refuse, before any volume is read, an output that is an input or lies among them."""
    inputs: dict[Path, str] = {}
    for group in sets:
        inputs |= {p.parent: "the prediction folder" for p in group.predictions}
        inputs |= {p.parent: "the label folder" for p in group.labels}
        inputs |= {p: "the prediction" for p in group.predictions} | {p: "the label" for p in group.labels}
        inputs[group.raw_metrics] = "the raw metrics table"
    inputs |= {path: "the region mask" for path in regions.values()}
    outputs: dict[Path, str] = {choice_path: "post-processing choice"}
    for group in sets:
        outputs |= {path: "post-processed prediction" for path in group.outputs}
        outputs[group.metrics] = "post-processed metrics table"
    refuse_overwriting_inputs(outputs, inputs)
    for path in outputs:
        check_writable(path)


def _region(
    regions: Mapping[str, Path], subject: str, label: Path, orientation: Orientation
) -> np.ndarray | None:
    path = regions.get(subject)
    return None if path is None else load_mask(path, reference=label, orientation=orientation)


def _choose(
    sets: Sequence[PredictionSet],
    regions: Mapping[str, Path],
    settings: PostprocessingSettings,
    orientation: Orientation,
) -> MinSizeChoice:
    pairs = [
        (
            load_mask(prediction, reference=label, orientation=orientation),
            load_mask(label, orientation=orientation),
            _region(regions, subject, label, orientation),
        )
        for group in sets
        if group.selects
        for subject, prediction, label in zip(group.subjects, group.predictions, group.labels, strict=True)
    ]
    return choose_min_size(pairs, settings.min_sizes, settings.selection_metric)


def _write_postprocessed(
    prediction: Path, label: Path, region: Path | None, min_size: int, destination: Path
) -> bool:
    """The post-processed prediction at ``destination``, in the raw file's voxel order and header; a byte
    copy where nothing changes. Returns whether anything changed."""
    image, reference = load_nifti(prediction), load_nifti(label)
    validate_pair(reference, image, label, prediction)
    raw = validate_label(np.asanyarray(image.dataobj), prediction).astype(bool)
    mask = None
    if region is not None:
        region_image = load_nifti(region)
        validate_pair(reference, region_image, label, region)
        mask = validate_label(np.asanyarray(region_image.dataobj), region)
    kept = postprocess(raw, min_size, mask)
    if np.array_equal(kept, raw):
        with atomic_path(destination) as temporary:
            shutil.copyfile(prediction, temporary)
        return False
    write_nifti_like(kept.astype(np.uint8), image, destination, np.uint8)
    return True


def _scored(
    group: PredictionSet,
    staging: StagedOutputs,
    regions: Mapping[str, Path],
    min_size: int,
    orientation: Orientation,
    scoring: ScoringSettings,
) -> pd.DataFrame:
    """The set's post-processed table: raw rows for unchanged predictions, fresh scores for the rest."""
    raw = pd.read_csv(group.raw_metrics)
    if sorted(raw["subject"].astype(str)) != sorted(group.subjects):
        raise DataError(f"{group.raw_metrics}: its subjects are not those of the predictions it should score")
    changed = []
    for subject, prediction, label, output in zip(
        group.subjects, group.predictions, group.labels, group.outputs, strict=True
    ):
        staged = staging.path(output)
        if _write_postprocessed(prediction, label, regions.get(subject), min_size, staged):
            changed.append((subject, staged, label))
    if not changed:
        return raw
    subjects, predictions, labels = (list(column) for column in zip(*changed, strict=True))
    fresh = evaluate(subjects, predictions, labels, orientation, scoring)
    for position, (name, value) in enumerate(group.columns.items()):
        fresh.insert(position, name, value)
    rows = {str(row["subject"]): row for row in raw.to_dict("records")}
    rows |= {str(row["subject"]): row for row in fresh.to_dict("records")}
    return pd.DataFrame([rows[subject] for subject in group.subjects], columns=raw.columns)


def run_postprocessing(
    sets: Sequence[PredictionSet],
    choice_path: str | Path,
    settings: PostprocessingSettings,
    regions: Mapping[str, str | Path] | None = None,
    orientation: Orientation = "stored",
    scoring: ScoringSettings = DEFAULT_SCORING,
) -> MinSizeChoice:
    """Choose k on the ``selects`` sets, post-process every set's predictions with it (region masks from
    ``regions``, subject → mask file, when ``settings.region_mask``), score them and write each set's table
    and the choice (JSON) at ``choice_path``. Returns the choice."""
    choice_path = Path(choice_path)
    masks = {subject: Path(path) for subject, path in (regions or {}).items()}
    if settings.region_mask:
        missing = sorted({s for group in sets for s in group.subjects} - set(masks))
        if missing:
            raise DataError(f"postprocessing.region_mask: no region mask for subject(s) {', '.join(missing)}")
    else:
        masks = {}
    _guard(sets, masks, choice_path)
    choice = _choose(sets, masks, settings, orientation)
    with staged_outputs() as staging:
        for group in sets:
            table = _scored(group, staging, masks, choice.min_size, orientation, scoring)
            write_metrics(table, staging.path(group.metrics))
        with atomic_path(staging.path(choice_path)) as temporary:
            temporary.write_text(choice.to_json(), encoding="utf-8")
    return choice
