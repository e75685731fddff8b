"""Scoring predictions against labels, one row of every metric per subject.

Masks are compared in the voxel order training used (``orientation``: the stored order by default, as the
released code), so the MIP-Dice axes name the same array axes as ``mip_axis`` does in training. Every
other metric is the same in either order. Surface distances are in mm, from the label's voxel size (the
prediction must share the label's grid).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from spockmip.errors import DataError
from spockmip.evaluation.betti_matching import (
    INSTALL_HINT,
    BettiMatchingProtocol,
    betti_matching_available,
    betti_matching_errors,
)
from spockmip.evaluation.metrics import BETTI_MATCHING_KEYS, METRIC_KEYS, all_metrics
from spockmip.files.outputs import atomic_path
from spockmip.files.volumes import Orientation, labelled_volumes, load_mask, load_mask_and_spacing
from spockmip.settings.catalogue import (
    BETTI_MATCHING_PATCH,
    BETTI_MATCHING_PATCHES,
    BETTI_MATCHING_SEED,
    BETTI_MATCHING_WHOLE_VOXELS,
)


@dataclass(frozen=True)
class ScoringSettings:
    """How every prediction is scored (the ``evaluation`` settings, typed once at the stage's door).

    ``nsd_tolerance_mm``: the normalised surface Dice's tolerance (None: each file's smallest voxel
    size). ``radius_edges_mm``: the two interior radius-bin edges of continuity by radius (None: one and
    two times each file's smallest voxel size). ``betti_matching``: the Betti matching error's protocol,
    None to leave it out.
    """

    nsd_tolerance_mm: float | None = None
    radius_edges_mm: tuple[float, float] | None = None
    betti_matching: BettiMatchingProtocol | None = None

    @classmethod
    def of(cls, section: Mapping[str, Any]) -> ScoringSettings:
        """From a validated ``evaluation`` section (missing keys keep their defaults)."""
        edges = section.get("radius_edges_mm")
        protocol = None
        if section.get("betti_matching", False):
            protocol = BettiMatchingProtocol(
                max_whole_voxels=int(section.get("betti_matching_whole_voxels", BETTI_MATCHING_WHOLE_VOXELS)),
                patch_size=tuple(section.get("betti_matching_patch", BETTI_MATCHING_PATCH)),
                n_patches=int(section.get("betti_matching_patches", BETTI_MATCHING_PATCHES)),
                seed=int(section.get("betti_matching_seed", BETTI_MATCHING_SEED)),
            )
        return cls(
            nsd_tolerance_mm=section.get("nsd_tolerance_mm"),
            radius_edges_mm=None if edges is None else (float(edges[0]), float(edges[1])),
            betti_matching=protocol,
        )

    @property
    def scores_betti_matching(self) -> bool:
        """Whether the Betti matching error is asked for and can be computed."""
        return self.betti_matching is not None and betti_matching_available()


DEFAULT_SCORING = ScoringSettings()
logger = logging.getLogger(__name__)


def folder_pairs(predictions: Path, labels: Path) -> tuple[list[str], list[Path], list[Path]]:
    """Subjects, predictions and labels paired by name from two folders; every prediction needs a label."""
    pairs = labelled_volumes(predictions, labels)
    subjects = sorted(pairs)
    return subjects, [pairs[s][0] for s in subjects], [pairs[s][1] for s in subjects]


def evaluate_pair(
    prediction_path: str | Path,
    label_path: str | Path,
    orientation: Orientation = "stored",
    settings: ScoringSettings = DEFAULT_SCORING,
) -> dict[str, float]:
    """Every metric of :mod:`spockmip.evaluation.metrics` for one prediction/label pair (same grid
    required)."""
    label, spacing = load_mask_and_spacing(label_path, orientation=orientation)
    prediction = load_mask(prediction_path, reference=label_path, orientation=orientation)
    scores = all_metrics(prediction, label, spacing, settings.nsd_tolerance_mm, settings.radius_edges_mm)
    if settings.betti_matching is not None and settings.scores_betti_matching:
        scores |= betti_matching_errors(prediction, label, settings.betti_matching)
    return scores


def evaluate(
    subjects: Sequence[str],
    predictions: Sequence[str | Path],
    labels: Sequence[str | Path],
    orientation: Orientation = "stored",
    settings: ScoringSettings = DEFAULT_SCORING,
) -> pd.DataFrame:
    """One row per subject, columns ``subject`` then :data:`spockmip.evaluation.metrics.METRIC_KEYS`."""
    if not len(subjects) == len(predictions) == len(labels):
        raise DataError(
            f"{len(subjects)} subjects, {len(predictions)} predictions and {len(labels)} labels differ"
        )
    if settings.betti_matching is not None and not settings.scores_betti_matching:
        logger.warning(
            "Betti matching error left out: its implementation is not installed (%s)", INSTALL_HINT
        )
    rows = [
        {"subject": subject, **evaluate_pair(prediction, label, orientation, settings)}
        for subject, prediction, label in zip(subjects, predictions, labels, strict=True)
    ]
    extra = BETTI_MATCHING_KEYS if settings.scores_betti_matching else ()
    return pd.DataFrame(rows, columns=["subject", *METRIC_KEYS, *extra])


def write_metrics(table: pd.DataFrame, destination: str | Path) -> None:
    """CSV with full float precision, written atomically."""
    with atomic_path(destination) as temporary:
        table.to_csv(temporary, index=False, float_format="%.6g")
