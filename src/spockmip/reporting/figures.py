"""Figures a researcher reads at a glance: overlays against a label, metric distributions, learning curves.

Overlay colours follow the SPOCKMIP figures: white = true positive, red = false negative (a vessel
missed), blue = false positive. Every voxel is classified in 3D first and the classes are then projected,
the most important class winning along each ray (false negative, then false positive, then true
positive): a false positive hidden behind a correctly found vessel stays visible, which comparing the two
projections would hide.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import MaxNLocator

from spockmip.axes import volume_dim
from spockmip.evaluation.metrics import PRESENTATION, Presentation
from spockmip.files.outputs import atomic_path
from spockmip.settings.catalogue import VALIDATION_COLUMNS, VALIDATION_LABELS

# Class codes; a larger code wins a projection, so this order is the priority FN > FP > TP > background.
BACKGROUND, TRUE_POSITIVE, FALSE_POSITIVE, FALSE_NEGATIVE = 0, 1, 2, 3
CLASS_COLOURS = np.array([(0, 0, 0), (255, 255, 255), (0, 0, 255), (255, 0, 0)], dtype=np.uint8)
CLASS_NAMES = {
    TRUE_POSITIVE: "true positive",
    FALSE_POSITIVE: "false positive",
    FALSE_NEGATIVE: "false negative",
}
LOG_SCALE_RATIO = 10.0  # plot losses on a log axis when they span more than this factor


def mip(volume: np.ndarray, axis: str = "z") -> np.ndarray:
    """Maximum intensity projection of an (X, Y, Z) array over a named axis."""
    return volume.max(axis=volume_dim(axis) + 3)


def voxel_classes(prediction: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per-voxel class codes (uint8) of a binary prediction against a binary reference of the same shape."""
    p, g = prediction.astype(bool), reference.astype(bool)
    classes = np.full(p.shape, BACKGROUND, dtype=np.uint8)
    classes[p & g] = TRUE_POSITIVE
    classes[p & ~g] = FALSE_POSITIVE
    classes[~p & g] = FALSE_NEGATIVE
    return classes


def projected_classes(prediction: np.ndarray, reference: np.ndarray, axis: str = "z") -> np.ndarray:
    """Voxel classes decided in 3D, projected over ``axis`` with priority FN > FP > TP > background."""
    return mip(voxel_classes(prediction, reference), axis)


def overlay(prediction: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """RGB image (…, 3) uint8 of TP white, FN red, FP blue on black, for binary arrays of one shape."""
    return CLASS_COLOURS[voxel_classes(prediction, reference)]


def overlay_mip(prediction: np.ndarray, reference: np.ndarray, axis: str = "z") -> np.ndarray:
    """RGB overlay of :func:`projected_classes`: the classes seen along each ray, errors first."""
    return CLASS_COLOURS[projected_classes(prediction, reference, axis)]


def _display(image: np.ndarray) -> np.ndarray:
    """(X, Y[, 3]) array → image rows = Y, columns = X, so the view is the usual axial one."""
    return np.swapaxes(image, 0, 1)[::-1]


def _save(figure: Figure, path: str | Path) -> None:
    """Figures are built without pyplot: no global state, no display backend, nothing left open."""
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=120, bbox_inches="tight", format="png")


def _class_legend() -> list[Patch]:
    return [
        Patch(facecolor=CLASS_COLOURS[code] / 255, edgecolor="grey", label=name)
        for code, name in CLASS_NAMES.items()
    ]


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
    axes[0].imshow(_display(overlay_mip(prediction, reference)), interpolation="nearest")
    axes[0].set_title(f"{title}: MIP over z")
    for ax, index in zip(axes[1:], chosen, strict=True):
        ax.imshow(_display(overlay(prediction[:, :, index], reference[:, :, index])), interpolation="nearest")
        ax.set_title(f"slice z={index}")
    for ax in axes:
        ax.axis("off")
    figure.legend(handles=_class_legend(), loc="lower center", ncols=3, frameon=False)
    _save(figure, path)


def most_different_window(projections: Sequence[np.ndarray], size: int) -> tuple[int, int]:
    """Top-left corner (row, column) of the ``size``² window where the projected classes of the variants
    disagree on the most pixels (the centre of the image when they agree everywhere)."""
    stack = np.stack(projections)
    disagreement = (stack != stack[0]).any(axis=0)
    rows, columns = disagreement.shape
    size = min(size, rows, columns)
    if not disagreement.any():
        return (rows - size) // 2, (columns - size) // 2
    # Window sums from the summed-area table: one pass, whatever the window size.
    table = np.pad(disagreement.astype(np.int64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    sums = table[size:, size:] - table[:-size, size:] - table[size:, :-size] + table[:-size, :-size]
    row, column = np.unravel_index(np.argmax(sums), sums.shape)
    return int(row), int(column)


def save_subject_overlays(
    image: np.ndarray,
    reference: np.ndarray,
    predictions: Mapping[str, np.ndarray],
    path: str | Path,
    subject: str,
    models: str,
) -> None:
    """Image MIP, then every variant's overlay of one subject (top), and the same zoomed on the window
    where the variants differ most (bottom); all over z, classes decided per voxel in 3D. ``models`` names
    the run the predictions come from (``fold 0``, or ``fold 0, seed 7``)."""
    views = {variant: _display(projected_classes(p, reference)) for variant, p in predictions.items()}
    image_view = _display(mip(image))
    size = max(8, min(image_view.shape) // 3)
    row, column = most_different_window(list(views.values()), size)
    zoom = (slice(row, row + size), slice(column, column + size))
    columns = 1 + len(views)
    figure = Figure(figsize=(2.6 * columns, 6.2), layout="constrained")
    axes = figure.subplots(2, columns)
    panels = [("image MIP", image_view, "gray"), *((v, CLASS_COLOURS[c], None) for v, c in views.items())]
    for index, (name, picture, cmap) in enumerate(panels):
        top, bottom = axes[0, index], axes[1, index]
        top.imshow(picture, cmap=cmap, interpolation="nearest")
        top.add_patch(Rectangle((column - 0.5, row - 0.5), size, size, fill=False, edgecolor="yellow"))
        top.set_title(name, fontsize="medium")
        bottom.imshow(picture[zoom], cmap=cmap, interpolation="nearest")
        bottom.set_title(f"{name}, zoom", fontsize="small")
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    figure.suptitle(
        f"{subject}, {models} models: MIP over z of voxels classified in 3D (a ray shows FN over FP "
        "over TP); yellow box: where the variants differ most, zoomed below"
    )
    figure.legend(handles=_class_legend(), loc="outside lower center", ncols=3, frameon=False)
    _save(figure, path)


def _direction(presentation: Presentation) -> str:
    """Which way is better, for a panel title; nothing for what is not a score (a raw Betti number)."""
    if presentation.higher_is_better is None:
        return ""
    return ": higher is better" if presentation.higher_is_better else ": lower is better"


def _n_text(groups: Sequence[np.ndarray]) -> str:
    counts = sorted({len(values) for values in groups})
    return f"n = {counts[0]}" if len(counts) == 1 else f"n = {counts[0]}–{counts[-1]}"


def save_metric_boxplots(
    table: pd.DataFrame,
    metrics: Sequence[str],
    order: Sequence[str],
    path: str | Path,
    title: str,
    seed_means: pd.DataFrame | None = None,
) -> None:
    """One panel per metric, one box per variant; every observation drawn once as a point over its box
    (the boxes draw no outliers of their own), median as the box line, mean as a diamond. Undefined
    values (NaN: a surface distance with exactly one mask empty) are left out, and each panel's n counts
    only what it shows.

    With several training seeds, ``table`` holds each subject's score averaged over them
    (:func:`spockmip.reporting.replicates.average_over_seeds`) and ``seed_means`` each (variant, seed)'s mean
    score (:func:`spockmip.reporting.replicates.seed_means`), drawn beside the box, so the spread between
    seeds can be read against the spread between subjects."""
    seeds = [] if seed_means is None else sorted(seed_means["seed"].unique())
    figure = Figure(figsize=(max(6.0, 0.9 * len(order)) * len(metrics) / 2, 5.0), layout="constrained")
    axes = np.atleast_1d(figure.subplots(1, len(metrics)))
    jitter = np.random.default_rng(0)
    for ax, metric in zip(axes, metrics, strict=True):
        presentation = PRESENTATION[metric]
        scale = presentation.scale
        groups = [
            table.loc[table["variant"] == v, metric].dropna().astype(float).to_numpy() * scale for v in order
        ]
        ax.boxplot(
            groups,
            tick_labels=list(order),
            showmeans=True,
            showfliers=False,
            medianprops={"color": "tab:orange", "linewidth": 2},
            meanprops={"marker": "D", "markerfacecolor": "tab:green", "markeredgecolor": "black"},
        )
        for position, values in enumerate(groups, start=1):
            offsets = jitter.uniform(-0.12, 0.12, len(values))
            ax.plot(position + offsets, values, "o", alpha=0.6, markersize=3.5, color="tab:blue")
        if len(seeds) > 1:
            for position, variant in enumerate(order, start=1):
                means = seed_means.loc[seed_means["variant"] == variant, metric].to_numpy(dtype=float) * scale
                beside = np.full(len(means), position + 0.3)
                ax.plot(beside, means, "_", markersize=10, mew=2, color="tab:red")
        ax.set_ylabel(presentation.axis_label)
        ax.set_xlabel("variant")
        ax.set_title(f"{presentation.description}{_direction(presentation)}\n{_n_text(groups)} per variant")
        ax.tick_params(axis="x", labelrotation=60)
    handles = [
        Line2D([], [], color="tab:orange", linewidth=2, label="median"),
        Line2D([], [], marker="D", linestyle="", markerfacecolor="tab:green", markeredgecolor="black",
               label="mean"),
        Line2D([], [], marker="o", linestyle="", color="tab:blue", alpha=0.6,
               label="one subject (mean over seeds)" if len(seeds) > 1 else "one observation"),
    ]  # fmt: skip
    if len(seeds) > 1:
        handles.append(
            Line2D([], [], marker="_", linestyle="", markersize=10, mew=2, color="tab:red",
                   label=f"one seed's mean ({len(seeds)} seeds)")
        )  # fmt: skip
    figure.legend(handles=handles, loc="outside lower center", ncols=len(handles), frameon=False)
    figure.suptitle(title)
    _save(figure, path)


# history.csv's training columns: line style and legend label. The continuity term is plotted before its
# weight (it is also inside the segmentation loss); one label names both kinds, the legend being global.
TRAINING_TERMS = {
    "train_loss": ("-", "train loss"),
    "train_segmentation": ("--", "train segmentation"),
    "train_mip": (":", "train MIP"),
    "train_continuity": ("-.", "train continuity (clDice / Skeleton Recall)"),
}


def _log_scale_if_spread(ax, values: list[np.ndarray], label: str) -> None:
    positive = np.concatenate([v[v > 0] for v in values]) if values else np.array([])
    if len(positive) and positive.max() / positive.min() > LOG_SCALE_RATIO:
        ax.set_yscale("log")
        label += " (log scale)"
    ax.set_ylabel(label)


def save_learning_curves(
    histories: Mapping[str, Mapping[str, pd.DataFrame]], criteria: Mapping[str, str], path: str | Path
) -> None:
    """One row per variant: training terms (left) and validation Focal Tversky (right) per epoch, for each
    of its runs (``histories[variant][label]``, labelled ``fold 0`` or ``fold 0, seed 7``).

    The validation panel plots the loss that variant's ``validation_criterion`` (``criteria[variant]``)
    keeps its best epoch by, and says which. A colour is a run (the same in both panels), a line style a
    training term; terms that are zero throughout (no MIP or no continuity term) are left out, and an axis
    turns logarithmic when its values span more than a factor of ten. A star marks each run's best epoch,
    the one whose weights were kept.

    A history written before a term was recorded lacks its column: the term is left out for that run, as
    one that is zero throughout. Empty cells (NaN) count as not measured: gaps in the term's line.
    """
    variants = list(histories)
    figure = Figure(figsize=(11, 2.6 * len(variants) + 0.8), layout="constrained")
    axes = np.atleast_2d(figure.subplots(len(variants), 2, squeeze=False))
    colours = [f"C{i % 10}" for i in range(max(len(h) for h in histories.values()))]
    for (training_ax, validation_ax), variant in zip(axes, variants, strict=True):
        plotted, validation = [], []
        criterion = criteria[variant]
        for colour, (run, history) in zip(colours, histories[variant].items(), strict=False):
            epochs = history["epoch"].to_numpy()
            for term, (style, _) in TRAINING_TERMS.items():
                if term not in history:
                    continue
                values = history[term].to_numpy(dtype=float)
                if np.any(np.abs(values) > 0):  # NaN (not measured) is not > 0
                    training_ax.plot(epochs, values, style, color=colour, marker=".")
                    plotted.append(values)
            ftl = history[VALIDATION_COLUMNS[criterion]].to_numpy(dtype=float)
            validation_ax.plot(epochs, ftl, color=colour, marker=".", label=run)
            best = int(np.argmin(ftl))
            validation_ax.plot(epochs[best], ftl[best], "*", color=colour, markersize=12, markeredgecolor="k")
            validation.append(ftl)
        _log_scale_if_spread(training_ax, plotted, "training loss")
        _log_scale_if_spread(validation_ax, validation, "validation FTL")
        training_ax.set_title(f"{variant}: training terms (mean per epoch)")
        validation_ax.set_title(
            f"{variant}: validation {VALIDATION_LABELS[criterion]} ({criterion} criterion), lower is better"
        )
        validation_ax.legend(fontsize="small", loc="upper right")
    for ax in axes.ravel():
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in axes[-1]:
        ax.set_xlabel("epoch")
    handles = [
        *(Line2D([], [], linestyle=style, color="black", label=label)
          for style, label in TRAINING_TERMS.values()),
        Line2D([], [], marker="*", linestyle="", color="grey", markeredgecolor="k", markersize=12,
               label="best epoch (kept weights)"),
    ]  # fmt: skip
    figure.legend(handles=handles, loc="outside lower center", ncols=3, frameon=False)
    _save(figure, path)
