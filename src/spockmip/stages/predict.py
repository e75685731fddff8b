"""Prediction: one model or a fold ensemble segments files, with the guards every caller gets.

Outputs are checked before any model is loaded (:mod:`spockmip.inference.planning`), no output may be an
input (images, labels, weights), hold one, or lie in a folder given as input, and every result of the call
is staged and moved into place only when all subjects are done, so a bad volume in a folder leaves no new
file. Each subject is segmented by :class:`spockmip.inference.segmentation.Segmenter`. A group that names a
record gets one (:mod:`spockmip.runtime.records`), staged with its segmentations.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from spockmip.files.hashing import file_sha256
from spockmip.files.outputs import StagedOutputs, staged_outputs
from spockmip.inference.planning import InferenceSettings, PredictionGroup, PredictionJob, check_jobs
from spockmip.runtime.provenance import library_fingerprint
from spockmip.runtime.records import (
    Stopwatch,
    complete_record,
    deterministic_record,
    file_hashes,
    shown_path,
    usage,
    write_record,
)


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
    a setting as the caller's user wrote it. Each group's ``record`` (where given) says how its set was
    made: the effective settings (the window each group slid), the hashes of its weights, images and
    outputs, each segmentation's threshold, the code, the machine and the time taken.
    """
    watch = Stopwatch.start()
    settings = InferenceSettings.of(inference)
    check_jobs(
        [job for group in groups for job in group.jobs],
        [w for group in groups for w in group.weights],
        figures,
        [group.record for group in groups if group.record is not None],
    )
    import torch

    from spockmip.inference.predictor import load_predictors
    from spockmip.inference.segmentation import Ensemble, Segmenter
    from spockmip.inference.windows import InferenceConfig
    from spockmip.runtime.devices import resolve_threads, select_device

    segmenter = Segmenter(settings, select_device(device), orientation, figures, progress)
    cores = resolve_threads(threads)
    torch.set_num_threads(cores)
    ensembles = []
    for group, predictors in zip(
        groups, load_predictors([g.weights for g in groups], activation, revision), strict=True
    ):
        patch, strides = settings.window([(p.patch_size, p.strides) for p in predictors], spell)
        window = InferenceConfig(
            patch, strides, blend=settings.blend, batch_size=settings.batch_size, compile=settings.compile
        )
        ensembles.append(Ensemble(group.weights, predictors, window))
    made: list[dict[PredictionJob, float]] = []
    with staged_outputs() as staging:
        for group, ensemble in zip(groups, ensembles, strict=True):
            made.append({})
            for job in group.jobs:
                made[-1][job] = segmenter.segment(job, ensemble, staging)
                report(job, made[-1][job])
        # Measured once, before the records read the git state (git runs as a child process).
        used = usage(watch, str(segmenter.device))
        for group, ensemble, thresholds in zip(groups, ensembles, made, strict=True):
            if group.record is not None:
                window = {"patch_size": ensemble.window.patch_size, "strides": ensemble.window.strides}
                options = {"orientation": orientation, "activation": activation, "revision": revision}
                record = _record({**asdict(settings), **window, **options}, thresholds)
                record = complete_record(record, *_files(group, staging), used, str(segmenter.device), cores)
                write_record(staging.path(group.record), record)
    return [threshold for thresholds in made for threshold in thresholds.values()]


def _source_hashes(source: Any) -> dict[str, str | None]:
    """The SHA-256 of a weights source's files: a checkpoint, or each file of a published folder. A
    source without files of its own (a Hugging Face repo id, a network given as an object) is named
    without a hash."""
    if isinstance(source, str | Path) and Path(source).is_file():
        return dict(file_hashes([source]))
    if isinstance(source, str | Path) and Path(source).is_dir():
        files = sorted(p for p in Path(source).iterdir() if p.is_file() and not p.name.startswith("."))
        return dict(file_hashes(files))
    return {str(source) if isinstance(source, str | Path) else type(source).__name__: None}


def _files(group: PredictionGroup, staging: StagedOutputs) -> tuple[dict[str, str | None], dict[str, str]]:
    """The hashes of what ``group`` read (its weights and images) and of what it wrote (each staged
    segmentation and probability map), by path."""
    inputs: dict[str, str | None] = {}
    for source in group.weights:
        inputs.update(_source_hashes(source))
    inputs.update(file_hashes(job.image for job in group.jobs))
    written = [path for job in group.jobs for path in (job.output, job.probabilities) if path is not None]
    return inputs, {shown_path(path): file_sha256(staging.staged(path)) for path in written}


def _record(settings: Mapping[str, Any], thresholds: Mapping[PredictionJob, float]) -> dict[str, Any]:
    """What identical calls share of a group's record: the ``settings`` as used, the code of this stage
    and each segmentation's ``thresholds``."""
    return deterministic_record(
        "prediction",
        library_fingerprint(__file__),
        settings,
        thresholds={shown_path(job.output): float(value) for job, value in thresholds.items()},
    )
