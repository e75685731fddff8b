"""A segmentation's outputs: the threshold that makes it, and the files and figures written for a subject.

Every file is written in the input's voxel order, affine and header, whatever order the network saw, so a
segmentation overlays the scan it came from in any viewer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from skimage.filters import threshold_otsu

from spockmip.data.subjects import Subject
from spockmip.files.outputs import write_nifti_like
from spockmip.files.volumes import to_stored_order

FALLBACK_THRESHOLD = 0.5


def binarise(
    probabilities: np.ndarray, threshold: float | Literal["otsu"] = "otsu"
) -> tuple[np.ndarray, float]:
    """Threshold at Otsu's value over the whole volume (0.5 where Otsu is undefined), or a fixed one."""
    if threshold == "otsu":
        try:
            value = float(threshold_otsu(probabilities.ravel()))
        except ValueError:
            value = FALLBACK_THRESHOLD
        if not np.isfinite(value) or probabilities.min() == probabilities.max():
            value = FALLBACK_THRESHOLD
    else:
        value = float(threshold)
    return (probabilities > value).astype(np.uint8), value


def export_prediction(
    subject: Subject,
    segmentation: np.ndarray,
    probabilities: np.ndarray,
    output_path: str | Path,
    probabilities_path: str | Path | None = None,
    figures_dir: str | Path | None = None,
) -> None:
    """Write ``subject``'s segmentation (uint8) to ``output_path``, its probability map (float32) when
    ``probabilities_path`` is given, and a MIP figure (with an overlay on the label, if the subject has
    one) into ``figures_dir`` when given. The arrays are in ``subject.orientation``'s voxel order and are
    written back in the file's stored order onto ``subject.reference``."""
    reference, orientation = subject.reference, subject.orientation
    write_nifti_like(to_stored_order(segmentation, reference, orientation), reference, output_path, np.uint8)
    if probabilities_path is not None:
        original = to_stored_order(probabilities, reference, orientation)
        write_nifti_like(original, reference, probabilities_path, np.float32)
    if figures_dir is not None:
        # Imported here: matplotlib's import is a tenth of a prediction job, which writes no figures.
        from spockmip.reporting.figures import save_mip, save_overlay

        figures = Path(figures_dir)
        save_mip(segmentation, figures / f"{subject.name}_prediction_mip.png", f"{subject.name} prediction")
        if subject.label is not None:
            save_overlay(segmentation, subject.label, figures / f"{subject.name}_overlay.png", subject.name)
