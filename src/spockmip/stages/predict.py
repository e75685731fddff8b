"""Prediction: one model or a fold ensemble segments files, with the guards every caller gets.

Outputs are checked before any model is loaded, no output may be an input (images, labels, weights), and
every result of the call is staged and moved into place only when all subjects are done, so a bad volume
in a folder leaves no new file. A constant image has no vessel to find: its mask is empty, with a warning
naming it. Probabilities that are not finite come from broken weights, and are an error naming them.
Probabilities constant over an image that is not come from weights scaled into saturation or from a
training that collapsed to one output value (soft-clDice has such a minimum, docs/method.md): a result of
the weights, segmented by the threshold as any other, with a warning naming them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from spockmip.errors import SettingsError
from spockmip.files.outputs import OutputError, check_writable, refuse_overwriting_inputs, staged_outputs
from spockmip.files.volumes import NIFTI_SUFFIXES, DataError, nifti_files
from spockmip.settings.lookup import default

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PredictionJob:
    """One volume to segment and where its results go (``probabilities`` and ``label`` optional)."""

    image: Path
    output: Path
    probabilities: Path | None = None
    label: Path | None = None


@dataclass(frozen=True)
class PredictionGroup:
    """Jobs segmented by the same ``weights`` (one source, or several averaged as an ensemble)."""

    weights: Sequence[Any]
    jobs: Sequence[PredictionJob]

    @classmethod
    def of(cls, weights: Sequence[Any], images: Sequence[Any], outputs: Sequence[Any]) -> PredictionGroup:
        """The group that segments ``images[i]`` into ``outputs[i]``; the lists must pair up."""
        if len(images) != len(outputs):
            raise OutputError(f"{len(images)} images but {len(outputs)} outputs for the weights {weights}")
        return cls(
            list(weights), [PredictionJob(Path(i), Path(o)) for i, o in zip(images, outputs, strict=True)]
        )


def folder_jobs(
    images: Path, output: Path, probabilities: Path | None = None, labels: Path | None = None
) -> list[PredictionJob]:
    """A job per volume of the folder ``images``, each output named after its input (as ``.nii.gz``)."""
    if output.resolve() == images.resolve():
        raise OutputError(f"{output}: the output folder is the input folder")
    for role, folder in (("output", output), ("probabilities", probabilities)):
        if folder is not None and folder.name.endswith(NIFTI_SUFFIXES):
            raise OutputError(f"{folder}: the {role} must be a folder when the input is a folder")
    found = nifti_files(images)
    if not found:
        raise DataError(f"{images}: no .nii or .nii.gz files")
    references = nifti_files(labels) if labels else {}
    unlabelled = [str(found[s]) for s in found if labels and s not in references]
    if unlabelled:
        raise DataError(f"{labels}: no label for {', '.join(unlabelled)}")
    return [
        PredictionJob(
            image,
            output / f"{subject}.nii.gz",
            probabilities / f"{subject}.nii.gz" if probabilities else None,
            references.get(subject),
        )
        for subject, image in found.items()
    ]


def _check_jobs(jobs: Sequence[PredictionJob], weights: Sequence[Any], figures: Path | None) -> None:
    """Every output a NIfTI name, written once, writable, and none of them an input."""
    outputs: dict[Path, str] = {}
    written: dict[Path, str] = {}  # each output's resolved path, to find one written twice
    files = [Path(w) for w in weights if isinstance(w, str | Path)]
    inputs: dict[Path, str] = {path: "the weights" for path in files if path.exists()}
    for job in jobs:
        inputs[job.image] = "the input image"
        if job.label is not None:
            inputs[job.label] = "the label"
    for job in jobs:
        for role, path in (("segmentation", job.output), ("probability map", job.probabilities)):
            if path is None:
                continue
            if not path.name.endswith(NIFTI_SUFFIXES):
                raise OutputError(f"{path}: the {role} must be named .nii or .nii.gz")
            if path.resolve() in written:
                raise OutputError(f"{path}: the {role} would overwrite the {written[path.resolve()]}")
            written[path.resolve()] = role
            check_writable(path)
            outputs[path] = role
    if figures is not None:
        check_writable(figures, folder=True)
        outputs[figures] = "figures folder"
    refuse_overwriting_inputs(outputs, inputs)


def window_geometry(
    inference: Mapping[str, Any], recorded: Sequence[tuple[Any, Any]], spell: Callable[[str], str]
) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """The window and strides: as given, else as every model records them, else the settings' defaults.

    Members of an ensemble that record different geometries leave the choice to the user."""
    chosen = []
    for index, key in enumerate(("patch_size", "strides")):
        value = inference.get(key)
        if value is None:
            values = {r[index] for r in recorded}
            if len(values) > 1:
                raise SettingsError(
                    f"{spell(key)}: the weights record different {key} ({', '.join(map(str, values))}); "
                    "give one"
                )
            value = values.pop() or default("training", key)
        chosen.append(tuple(value))
    return chosen[0], chosen[1]


def check_probabilities(probabilities: np.ndarray, image: np.ndarray, weights: Sequence[Any]) -> None:
    """Refuse non-finite probabilities, which only broken weights produce. Constant ones for an image that
    is not constant are a warning: the file may be broken (weights scaled into saturation) or the training
    collapsed to one output value, which is a result to report (a replicate of a study), not to hide."""
    from spockmip.networks.weights import WeightsError

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


def _predictor(source: Any, activation: str | None, revision: str | None) -> Any:
    """A source read once (:func:`spockmip.inference.predictor.load_predictor`); a network given as an object is
    taken as it is, recording no geometry."""
    import torch

    from spockmip.inference.predictor import Predictor, load_predictor

    if isinstance(source, Predictor):
        return source
    if isinstance(source, torch.nn.Module):
        return Predictor(source, None, None, type(source).__name__)
    return load_predictor(source, activation, revision)


def run_prediction(
    weights: Sequence[Any],
    jobs: Sequence[PredictionJob],
    inference: Mapping[str, Any],
    **options: Any,
) -> list[float]:
    """Segment every job with the mean probability of ``weights``; returns each job's threshold.

    ``weights`` are sources :func:`spockmip.inference.predictor.load_predictor` reads (checkpoint files, published
    folders, Hugging Face repo ids), or networks already loaded. ``options`` are those of
    :func:`run_predictions`, which this is for one group.
    """
    return run_predictions([PredictionGroup(weights, jobs)], inference, **options)


def _source_key(source: Any) -> Any:
    """What identifies a weights source, so that one named in several groups is read once."""
    return Path(source).resolve() if isinstance(source, str | Path) and Path(source).exists() else id(source)


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

    ``inference`` holds the ``inference`` settings (:data:`spockmip.settings.catalogue.INFERENCE`): ``patch_size``
    and ``strides`` None take the geometry the checkpoints record (each group's own), ``threshold`` is
    ``otsu`` or a probability, ``tta`` averages over flips. ``spell`` names a setting as the caller's user
    wrote it.
    """
    import torch

    from spockmip.inference.windows import InferenceConfig
    from spockmip.runtime.devices import resolve_threads, select_device

    _check_jobs(
        [job for group in groups for job in group.jobs],
        [w for group in groups for w in group.weights],
        figures,
    )
    chosen_device = select_device(device)
    torch.set_num_threads(resolve_threads(threads))
    loaded: dict[Any, Any] = {}
    members = []
    for group in groups:
        for source in group.weights:
            key = _source_key(source)
            if key not in loaded:
                loaded[key] = _predictor(source, activation, revision)
        members.append([loaded[_source_key(source)] for source in group.weights])
    configs = []
    for predictors in members:
        patch, strides = window_geometry(inference, [(p.patch_size, p.strides) for p in predictors], spell)
        configs.append(
            InferenceConfig(
                patch_size=patch,
                strides=strides,
                blend=inference.get("blend", default("inference", "blend")),
                batch_size=inference.get("batch_size"),
                compile=bool(inference.get("compile", False)),
            )
        )
    thresholds = []
    with staged_outputs() as staging:
        for group, predictors, config in zip(groups, members, configs, strict=True):
            for job in group.jobs:
                value = _segment(
                    job,
                    group.weights,
                    predictors,
                    config,
                    inference,
                    orientation,
                    figures,
                    chosen_device,
                    progress,
                    staging,
                )
                thresholds.append(value)
                report(job, value)
    return thresholds


def _segment(
    job: PredictionJob,
    weights: Sequence[Any],
    predictors: Sequence[Any],
    config: Any,
    inference: Mapping[str, Any],
    orientation: str,
    figures: Path | None,
    device: Any,
    progress: bool,
    staging: Any,
) -> float:
    """One job: its segmentation (and probabilities, figures) written into ``staging``; returns the
    threshold."""
    from spockmip.data.subjects import load_subject
    from spockmip.inference.export import FALLBACK_THRESHOLD, binarise, export_prediction
    from spockmip.inference.windows import ensemble_probabilities

    subject = load_subject(job.image, job.label, patch_size=config.patch_size, orientation=orientation)
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
            [p.model for p in predictors],
            subject.image,
            config,
            device,
            tta=bool(inference.get("tta")),
            progress=progress,
        )
        check_probabilities(probabilities, subject.image, weights)
        threshold = inference.get("threshold", default("inference", "threshold"))
        segmentation, value = binarise(probabilities, threshold)
    figure_folder = None
    if figures is not None:
        names = [f"{subject.name}_prediction_mip.png"]
        if subject.label is not None:
            names.append(f"{subject.name}_overlay.png")
        staged_figures = [staging.path(figures / name) for name in names]
        figure_folder = staged_figures[0].parent
    export_prediction(
        subject,
        segmentation,
        probabilities,
        staging.path(job.output),
        staging.path(job.probabilities) if job.probabilities else None,
        figure_folder,
    )
    return value
