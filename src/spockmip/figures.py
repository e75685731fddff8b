"""Figures a researcher looks at: MIPs of predictions and colour overlays against a label.

Overlay colours follow the SPOCKMIP figures: white = true positive, red = false negative (a vessel
missed), blue = false positive. On a MIP a pixel is TP if both projections have a vessel there, so a
broken vessel shows up as a red gap in an otherwise white tree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
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


def save_metric_boxplots(
    table: pd.DataFrame, metrics: Sequence[str], order: Sequence[str], path: str | Path, title: str
) -> None:
    """One panel per metric, one box per variant, every (fold, subject) drawn as a point over its box."""
    figure = Figure(figsize=(max(6.0, 0.9 * len(order)) * len(metrics) / 2, 4.5), layout="constrained")
    axes = np.atleast_1d(figure.subplots(1, len(metrics)))
    for ax, metric in zip(axes, metrics, strict=True):
        groups = [table.loc[table["variant"] == v, metric].astype(float).to_numpy() for v in order]
        ax.boxplot(groups, tick_labels=list(order), showmeans=True)
        for position, values in enumerate(groups, start=1):
            ax.plot(np.full(len(values), position), values, "o", alpha=0.5, markersize=3, color="tab:blue")
        ax.set_title(metric)
        ax.tick_params(axis="x", labelrotation=60)
    figure.suptitle(title)
    _save(figure, path)


def save_variant_overlays(
    reference: np.ndarray, predictions: Mapping[str, np.ndarray], path: str | Path, subject: str
) -> None:
    """The z-MIP overlay of every variant's prediction of one subject, side by side (same colour code)."""
    columns = min(4, len(predictions))
    rows = -(-len(predictions) // columns)
    figure = Figure(figsize=(4 * columns, 4 * rows + 0.6), layout="constrained")
    axes = np.atleast_1d(figure.subplots(rows, columns)).ravel()
    for ax, (variant, prediction) in zip(axes, predictions.items(), strict=False):
        ax.imshow(_display(overlay(mip(prediction), mip(reference))), interpolation="nearest")
        ax.set_title(variant)
    for ax in axes:
        ax.axis("off")
    figure.suptitle(f"{subject}: MIP over z — white TP, red FN, blue FP")
    _save(figure, path)


def save_learning_curves(histories: Mapping[str, pd.DataFrame], path: str | Path) -> None:
    """Training loss and validation Focal Tversky per epoch, one line per (variant, fold)."""
    figure = Figure(figsize=(12, 4.5), layout="constrained")
    loss_ax, validation_ax = figure.subplots(1, 2)
    for name, history in histories.items():
        loss_ax.plot(history["epoch"], history["train_loss"], marker=".", label=name)
        validation_ax.plot(history["epoch"], history["validation_ftl"], marker=".", label=name)
    loss_ax.set(title="training loss", xlabel="epoch")
    validation_ax.set(title="validation Focal Tversky (lower is better)", xlabel="epoch")
    validation_ax.legend(fontsize="small", ncols=2)
    _save(figure, path)
