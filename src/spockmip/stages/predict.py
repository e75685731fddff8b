"""Prediction: one model or a fold ensemble segments files, with the guards every caller gets.

Outputs are checked before any model is loaded (:mod:`spockmip.inference.planning`), no output may be an
input (images, labels, weights), hold one, or lie in a folder given as input, and every result of the call
is staged and moved into place only when all subjects are done, so a bad volume in a folder leaves no new
file. Each subject is segmented by :class:`spockmip.inference.segmentation.Segmenter`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from spockmip.files.outputs import staged_outputs
from spockmip.inference.planning import InferenceSettings, PredictionGroup, PredictionJob, check_jobs


def run_prediction(
    weights: Sequence[Any],
    jobs: Sequence[PredictionJob],
    inference: Mapping[str, Any],
    **options: Any,
) -> list[float]:
    """Segment every job with the mean probability of ``weights``; returns each job's threshold.

    ``weights`` are sources :func:`spockmip.inference.predictor.load_predictor` reads (checkpoint files,
    published folders, Hugging Face repo ids), or networks already loaded. ``options`` are those of
    :func:`run_predictions`, which this is for one group.
    """
    return run_predictions([PredictionGroup(weights, jobs)], inference, **options)


def run_predictions(
    groups: Sequence[PredictionGroup],
    inference: Mapping[str, Any],
    *,
    figures: Path | None = None,
    orientation: str = "stored",
    device: str | None = None,
    activation: str | None = None,
    revision: str | None = None,
    threads: int | None = None,
    progress: bool = False,
    spell: Callable[[str], str] = lambda key: f"inference.{key}",
    report: Callable[[PredictionJob, float], None] = lambda job, threshold: None,
) -> list[float]:
    """Segment each group's jobs with the mean probability of its weights; returns each job's threshold,
    in order. One call, one set of guards: the outputs of every group are checked together (none written
    twice, none an input of any group) before a model is loaded, each weights source is read once however
    many groups name it, and nothing is moved into place until every group is done. The workflow predicts a
    fold's test subjects with its best weights and its validation subjects with the cross-validation
    checkpoint in one such call.

    ``inference`` holds the ``inference`` settings by name (:class:`InferenceSettings`; those missing take
    their defaults): ``patch_size`` and ``strides`` None take the geometry the checkpoints record (each
    group's own), ``threshold`` is ``otsu`` or a probability, ``tta`` averages over flips. ``spell`` names
    a setting as the caller's user wrote it.
    """
    settings = InferenceSettings.of(inference)
    check_jobs(
        [job for group in groups for job in group.jobs],
        [w for group in groups for w in group.weights],
        figures,
    )
    import torch

    from spockmip.inference.predictor import load_predictors
    from spockmip.inference.segmentation import Ensemble, Segmenter
    from spockmip.inference.windows import InferenceConfig
    from spockmip.runtime.devices import resolve_threads, select_device

    segmenter = Segmenter(settings, select_device(device), orientation, figures, progress)
    torch.set_num_threads(resolve_threads(threads))
    ensembles = []
    for group, predictors in zip(
        groups, load_predictors([g.weights for g in groups], activation, revision), strict=True
    ):
        patch, strides = settings.window([(p.patch_size, p.strides) for p in predictors], spell)
        window = InferenceConfig(
            patch, strides, blend=settings.blend, batch_size=settings.batch_size, compile=settings.compile
        )
        ensembles.append(Ensemble(group.weights, predictors, window))
    thresholds = []
    with staged_outputs() as staging:
        for group, ensemble in zip(groups, ensembles, strict=True):
            for job in group.jobs:
                thresholds.append(segmenter.segment(job, ensemble, staging))
                report(job, thresholds[-1])
    return thresholds
