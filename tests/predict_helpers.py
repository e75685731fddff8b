"""One file through the prediction stage, as the library tests call it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from spockmip.inference.planning import PredictionJob
from spockmip.inference.windows import InferenceConfig
from spockmip.stages.predict import run_prediction


def predict_file(
    model: Any,
    image: str | Path,
    output: str | Path,
    config: InferenceConfig,
    threshold: str | float = "otsu",
    probabilities_path: str | Path | None = None,
    label_path: str | Path | None = None,
    figures_dir: str | Path | None = None,
    orientation: str = "stored",
) -> float:
    """:func:`spockmip.stages.predict.run_prediction` of one network (or source) on one file."""
    job = PredictionJob(
        Path(image),
        Path(output),
        Path(probabilities_path) if probabilities_path else None,
        Path(label_path) if label_path else None,
    )
    inference = {
        "patch_size": config.patch_size,
        "strides": config.strides,
        "blend": config.blend,
        "batch_size": config.batch_size,
        "threshold": threshold,
    }
    figures = Path(figures_dir) if figures_dir else None
    return run_prediction([model], [job], inference, figures=figures, orientation=orientation)[0]
