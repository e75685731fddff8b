"""Segmenting one file: check the outputs, load the subject, predict, threshold, write.

The pieces live in their own modules: the sliding window and ensembles in :mod:`spockmip.windows`,
loading weights in :mod:`spockmip.predictor` and :mod:`spockmip.weights`, thresholds and written outputs in
:mod:`spockmip.export`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch

from spockmip.data import load_subject
from spockmip.export import binarise, export_prediction
from spockmip.ingest import NIFTI_SUFFIXES
from spockmip.outputs import OutputError, check_writable
from spockmip.volumes import Orientation
from spockmip.windows import InferenceConfig, WeightsSource, ensemble_probabilities


def check_outputs(
    image_path: str | Path,
    output_path: str | Path,
    probabilities_path: str | Path | None = None,
    figures_dir: str | Path | None = None,
) -> None:
    """Refuse, before any computing, outputs that would overwrite the input or each other, that are not
    NIfTI names (nibabel would write an unreadable file), or that cannot be written."""
    named = {"segmentation": output_path, "probability map": probabilities_path}
    written: dict[Path, str] = {Path(image_path).resolve(): "the input image"}
    for role, path in named.items():
        if path is None:
            continue
        path = Path(path)
        if not path.name.endswith(NIFTI_SUFFIXES):
            raise OutputError(f"{path}: the {role} must be named .nii or .nii.gz")
        if path.resolve() in written:
            raise OutputError(f"{path}: the {role} would overwrite {written[path.resolve()]}")
        written[path.resolve()] = f"the {role}"
        check_writable(path)
    if figures_dir is not None:
        check_writable(figures_dir, folder=True)


def predict_file(
    model: WeightsSource | Sequence[WeightsSource],
    image_path: str | Path,
    output_path: str | Path,
    config: InferenceConfig,
    threshold: float | Literal["otsu"] = "otsu",
    probabilities_path: str | Path | None = None,
    label_path: str | Path | None = None,
    figures_dir: str | Path | None = None,
    device: torch.device | str = "cpu",
    orientation: Orientation = "stored",
    tta: bool = False,
    progress: bool = False,
) -> float:
    """Segment one NIfTI file with one model or the mean of several (:func:`ensemble_probabilities`).

    Outputs keep the input's voxel order, affine and header; returns the threshold. ``orientation:
    stored`` feeds the network the file's voxel order, as the released code (and so the published weights)
    did; ``canonical`` reorients to RAS+ first and maps the result back. ``tta`` averages over axis flips
    (:func:`flip_averaged_probabilities`); ``progress`` shows a bar over windows. All validation happens
    before the first write, so a bad input leaves no output behind.
    """
    check_outputs(image_path, output_path, probabilities_path, figures_dir)
    subject = load_subject(image_path, label_path, patch_size=config.patch_size, orientation=orientation)
    models = [model] if isinstance(model, torch.nn.Module | str | Path) else model
    probabilities = ensemble_probabilities(models, subject.image, config, device, tta=tta, progress=progress)
    segmentation, value = binarise(probabilities, threshold)
    export_prediction(subject, segmentation, probabilities, output_path, probabilities_path, figures_dir)
    return value


def inference_config_from_settings(settings: dict) -> tuple[InferenceConfig, float | Literal["otsu"]]:
    """The sliding-window config and the threshold from flat settings (a workflow config section)."""
    settings = dict(settings)
    threshold = settings.pop("threshold", "otsu")
    for key in ("patch_size", "strides"):
        if key in settings:
            settings[key] = tuple(settings[key])
    try:
        return InferenceConfig(**settings), threshold
    except TypeError as error:
        raise ValueError(f"unknown inference setting: {error}") from None
