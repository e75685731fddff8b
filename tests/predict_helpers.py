"""One file through the prediction stage, as the library tests call it, and what prediction tests share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from spockmip.inference.planning import PredictionJob
from spockmip.inference.windows import InferenceConfig
from spockmip.stages.predict import run_prediction

# The phantoms that prediction tests segment (the session's phantom_dir fixture holds them).
SUBJECTS = ("phantom000", "phantom001")


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


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` and its bytes: what a refused call must leave unchanged."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
