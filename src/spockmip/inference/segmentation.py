"""One subject segmented by one model or a fold ensemble, and its outputs written into a staging folder.

A constant image has no vessel to find: its mask is empty, with a warning naming it. Probabilities that are
not finite come from broken weights, and are an error naming them. Probabilities constant over an image
that is not come from weights scaled into saturation or from a training that collapsed to one output value
(soft-clDice has such a minimum, docs/method.md): a result of the weights, segmented by the threshold as
any other, with a warning naming them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spockmip.data.subjects import load_subject
from spockmip.errors import WeightsError
from spockmip.files.outputs import StagedOutputs
from spockmip.files.volumes import Orientation
from spockmip.inference.export import FALLBACK_THRESHOLD, binarise, export_prediction
from spockmip.inference.planning import InferenceSettings, PredictionJob
from spockmip.inference.predictor import Predictor
from spockmip.inference.windows import InferenceConfig, ensemble_probabilities

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ensemble:
    """The networks that segment a group of jobs (one, or several averaged), the window they slide with,
    and the sources they were read from (``weights``, to name them in messages)."""

    weights: Sequence[Any]
    predictors: Sequence[Predictor]
    window: InferenceConfig


@dataclass(frozen=True)
class Segmenter:
    """What every subject of one prediction call shares: the settings, the device, the voxel order the
    networks see, whether figures are written (and where), and whether progress is shown."""

    settings: InferenceSettings
    device: torch.device
    orientation: Orientation = "stored"
    figures: Path | None = None
    progress: bool = False

    def segment(self, job: PredictionJob, ensemble: Ensemble, staging: StagedOutputs) -> float:
        """``job``'s segmentation (and probabilities, figures) written into ``staging``; returns the
        threshold that made it."""
        subject = load_subject(
            job.image, job.label, patch_size=ensemble.window.patch_size, orientation=self.orientation
        )
        if subject.image.min() == subject.image.max():
            log.warning(
                "%s: the image is constant (%g): no vessel to find, the mask is empty",
                job.image,
                float(subject.image.flat[0]),
            )
            probabilities = np.zeros(subject.image.shape, dtype=np.float32)
            segmentation, value = np.zeros(subject.image.shape, dtype=np.uint8), FALLBACK_THRESHOLD
        else:
            probabilities = ensemble_probabilities(
                [p.model for p in ensemble.predictors],
                subject.image,
                ensemble.window,
                self.device,
                tta=self.settings.tta,
                progress=self.progress,
            )
            check_probabilities(probabilities, subject.image, ensemble.weights)
            segmentation, value = binarise(probabilities, self.settings.threshold)
        export_prediction(
            subject,
            segmentation,
            probabilities,
            staging.path(job.output),
            staging.path(job.probabilities) if job.probabilities else None,
            self._figure_folder(subject.name, subject.label is not None, staging),
        )
        return value

    def _figure_folder(self, name: str, labelled: bool, staging: StagedOutputs) -> Path | None:
        """The folder ``name``'s figures are staged in (its MIP, and its overlay when labelled: each staged,
        so that the call fails unless both are written), or None."""
        if self.figures is None:
            return None
        names = [f"{name}_prediction_mip.png", *([f"{name}_overlay.png"] if labelled else [])]
        staged = [staging.path(self.figures / figure) for figure in names]
        return staged[0].parent


def check_probabilities(probabilities: np.ndarray, image: np.ndarray, weights: Sequence[Any]) -> None:
    """Refuse non-finite probabilities, which only broken weights produce. Constant ones for an image that
    is not constant are a warning: the file may be broken (weights scaled into saturation) or the training
    collapsed to one output value, which is a result to report (a replicate of a study), not to hide."""
    named = ", ".join(str(w) if isinstance(w, str | Path) else type(w).__name__ for w in weights)
    if not np.all(np.isfinite(probabilities)):
        raise WeightsError(f"{named}: the weights give non-finite probabilities; the checkpoint is broken")
    if probabilities.min() == probabilities.max() and image.min() != image.max():
        log.warning(
            "%s: the weights give the same probability (%.3g) everywhere: a training that collapsed to "
            "one output, or broken weights; segmented by the threshold as any other",
            named,
            float(probabilities.flat[0]),
        )
