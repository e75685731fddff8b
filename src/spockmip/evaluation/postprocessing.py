"""Post-processing of binary predictions, chosen on cross-validation: small components removed, and
optionally everything outside a region mask.

Scattered specks dominate a prediction's component count, so without this step "breaks fewer vessels" and
"sprinkles fewer specks" cannot be told apart. The field's tools remove components below a size (vesselFM
500 voxels, VesselBoost 10), and nnU-Net keeps a post-processing step only where it helps on
cross-validation; here the size k is chosen the same way, per (variant, seed), on the predictions the
cross-validation table scores, and then applied to that variant's test and ensemble predictions. The raw
predictions are kept and scored beside the post-processed ones.

The region mask (a brain mask, say) is applied first, then the components are counted, so a component the
mask cuts is judged by the part that remains. Only predictions are ever masked, never labels, and a
mask's effect is measured in the tables, never assumed: brain masks often cut the Circle of Willis on MRA.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

from spockmip.errors import DataError
from spockmip.evaluation.metrics import PRESENTATION, betti_numbers, cl_dice, dice
from spockmip.settings.catalogue import POSTPROCESSING_MIN_SIZES

_CONNECTIVITY_26 = np.ones((3, 3, 3), dtype=bool)


def remove_small_components(mask: NDArray[Any], min_size: int) -> NDArray[np.bool_]:
    """``mask`` without its 26-connected components of fewer than ``min_size`` voxels (0 or 1: all kept)."""
    kept = np.asarray(mask).astype(bool)
    if min_size <= 1 or not kept.any():
        return kept
    labels, count = ndi.label(kept, structure=_CONNECTIVITY_26)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    small = sizes < min_size
    small[0] = False
    return kept & ~small[labels]


def postprocess(mask: NDArray[Any], min_size: int, region: NDArray[Any] | None = None) -> NDArray[np.bool_]:
    """The region mask applied (where one is given), then components below ``min_size`` removed."""
    kept = np.asarray(mask).astype(bool)
    if region is not None:
        kept = kept & np.asarray(region).astype(bool)
    return remove_small_components(kept, min_size)


def selection_score(prediction: NDArray[Any], reference: NDArray[Any], metric: str) -> float:
    """The score that chooses k: Dice, clDice or the Betti-0 error (26-connected, as in the tables)."""
    if metric == "dice":
        return dice(prediction, reference)
    if metric == "cl_dice":
        return cl_dice(prediction, reference)
    if metric == "betti0_error":
        return float(abs(betti_numbers(prediction)[0] - betti_numbers(reference)[0]))
    raise ValueError(f"unknown post-processing selection metric {metric!r}")


@dataclass(frozen=True)
class MinSizeChoice:
    """The chosen minimum component size and the evidence for it: each candidate's mean score over the
    cross-validation subjects (``subjects`` of them)."""

    min_size: int
    metric: str
    candidates: tuple[int, ...]
    mean_scores: tuple[float, ...]
    subjects: int
    region_mask: bool

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> MinSizeChoice:
        fields = json.loads(text)
        return cls(
            min_size=int(fields["min_size"]),
            metric=str(fields["metric"]),
            candidates=tuple(int(k) for k in fields["candidates"]),
            mean_scores=tuple(float(s) for s in fields["mean_scores"]),
            subjects=int(fields["subjects"]),
            region_mask=bool(fields["region_mask"]),
        )


def choose_min_size(
    pairs: Sequence[tuple[NDArray[Any], NDArray[Any], NDArray[Any] | None]],
    candidates: Sequence[int],
    metric: str,
) -> MinSizeChoice:
    """The candidate k with the best mean ``metric`` over the (prediction, reference, region or None)
    ``pairs``; ties go to the smaller k, which removes less. A candidate whose mean is undefined never
    wins unless every one is."""
    if not pairs:
        raise ValueError("choosing a minimum component size needs at least one cross-validation subject")
    higher_is_better = PRESENTATION[metric].higher_is_better
    ordered = sorted(set(int(k) for k in candidates))
    means = []
    for k in ordered:
        scores = [selection_score(postprocess(p, k, region), r, metric) for p, r, region in pairs]
        means.append(float(np.mean(scores)))
    sign = 1.0 if higher_is_better else -1.0
    keyed = [(sign * m if not math.isnan(m) else -math.inf, -k) for k, m in zip(ordered, means, strict=True)]
    best = max(range(len(ordered)), key=lambda i: keyed[i])
    return MinSizeChoice(
        min_size=ordered[best],
        metric=metric,
        candidates=tuple(ordered),
        mean_scores=tuple(means),
        subjects=len(pairs),
        region_mask=any(region is not None for _, _, region in pairs),
    )


@dataclass(frozen=True)
class PredictionSet:
    """The predictions behind one metrics table: each subject's raw prediction and label, where its
    post-processed prediction goes, the raw table that scored them (``raw_metrics``), where the
    post-processed table goes (``metrics``) and its constant columns. ``selects``: a cross-validation set,
    whose subjects choose k."""

    subjects: tuple[str, ...]
    predictions: tuple[Path, ...]
    labels: tuple[Path, ...]
    outputs: tuple[Path, ...]
    raw_metrics: Path
    metrics: Path
    columns: Mapping[str, Any]
    selects: bool = False

    @classmethod
    def of(cls, fields: Mapping[str, Any]) -> PredictionSet:
        """From the plain mapping a workflow rule passes (lists of path strings)."""
        paths = {name: tuple(Path(p) for p in fields[name]) for name in ("predictions", "labels", "outputs")}
        subjects = tuple(str(s) for s in fields["subjects"])
        if any(len(group) != len(subjects) for group in paths.values()):
            raise DataError(
                f"{fields['metrics']}: subjects, predictions, labels and outputs differ in number"
            )
        return cls(
            subjects=subjects,
            **paths,
            raw_metrics=Path(fields["raw_metrics"]),
            metrics=Path(fields["metrics"]),
            columns=dict(fields["columns"]),
            selects=bool(fields.get("selects", False)),
        )


@dataclass(frozen=True)
class PostprocessingSettings:
    """The ``postprocessing`` settings, typed at the stage's door."""

    min_sizes: tuple[int, ...] = POSTPROCESSING_MIN_SIZES
    selection_metric: str = "dice"
    region_mask: bool = False

    @classmethod
    def of(cls, section: Mapping[str, Any]) -> PostprocessingSettings:
        return cls(
            min_sizes=tuple(int(k) for k in section["min_sizes"]),
            selection_metric=str(section["selection_metric"]),
            region_mask=bool(section["region_mask"]),
        )
