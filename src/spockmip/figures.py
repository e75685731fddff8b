"""Figures a researcher looks at: MIPs of predictions and colour overlays against a label.

Overlay colours follow the SPOCKMIP figures: white = true positive, red = false negative (a vessel
missed), blue = false positive. On a MIP a pixel is TP if both projections have a vessel there, so a
broken vessel shows up as a red gap in an otherwise white tree.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from spockmip.axes import volume_dim
from spockmip.outputs import atomic_path

TRUE_POSITIVE = (255, 255, 255)
FALSE_NEGATIVE = (255, 0, 0)
FALSE_POSITIVE = (0, 0, 255)


def mip(volume: np.ndarray, axis: str = "z") -> np.ndarray:
    """Maximum intensity projection of an (X, Y, Z) array over a named axis."""
    return volume.max(axis=volume_dim(axis) + 3)


def overlay(prediction: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """RGB image (…, 3) uint8 of TP white, FN red, FP blue on black, for binary arrays of one shape."""
    p, g = prediction.astype(bool), reference.astype(bool)
    rgb = np.zeros((*p.shape, 3), dtype=np.uint8)
    rgb[p & g] = TRUE_POSITIVE
    rgb[~p & g] = FALSE_NEGATIVE
    rgb[p & ~g] = FALSE_POSITIVE
    return rgb


def _display(image: np.ndarray) -> np.ndarray:
    """(X, Y[, 3]) array → image rows = Y, columns = X, so the view is the usual axial one."""
    return np.swapaxes(image, 0, 1)[::-1]


def _save(figure: Figure, path: str | Path) -> None:
    """Figures are built without pyplot: no global state, no display backend, nothing left open."""
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=120, bbox_inches="tight", format="png")


def save_mip(volume: np.ndarray, path: str | Path, title: str, axis: str = "z") -> None:
    """Grey-scale MIP (of an image, probabilities or a mask)."""
    figure = Figure(figsize=(6, 6))
    ax = figure.subplots()
    ax.imshow(_display(mip(volume, axis)), cmap="gray", interpolation="nearest")
    ax.set_title(f"{title} (MIP over {axis})")
    ax.axis("off")
    _save(figure, path)


def save_overlay(
    prediction: np.ndarray, reference: np.ndarray, path: str | Path, title: str, slices: Sequence[int] = ()
) -> None:
    """The MIP overlay over z, followed by per-slice overlays at ``slices`` (default: three evenly spaced)."""
    depth = prediction.shape[2]
    chosen = list(slices) or [depth // 4, depth // 2, (3 * depth) // 4]
    figure = Figure(figsize=(5 * (1 + len(chosen)), 5))
    axes = figure.subplots(1, 1 + len(chosen))
    axes[0].imshow(_display(overlay(mip(prediction), mip(reference))), interpolation="nearest")
    axes[0].set_title(f"{title}: MIP over z")
    for ax, index in zip(axes[1:], chosen, strict=True):
        ax.imshow(_display(overlay(prediction[:, :, index], reference[:, :, index])), interpolation="nearest")
        ax.set_title(f"slice z={index}")
    for ax in axes:
        ax.axis("off")
    figure.text(0.5, 0.01, "white: true positive   red: false negative   blue: false positive", ha="center")
    _save(figure, path)
