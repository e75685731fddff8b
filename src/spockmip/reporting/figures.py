"""Figures a researcher reads at a glance: overlays and gap maps against a label, metric distributions,
learning curves.

Overlays are drawn as the papers' figures draw them: the maximum intensity projection (MIP) of the
prediction against the MIP of the label, each pixel classified in 2D: white = true positive, red = false
negative (a vessel missed), blue = false positive. A prediction one voxel wider than its vessel shows as a
blue rim around a white vessel, as it does in the papers. A MIP cannot show every gap: a pixel is white
when its ray meets both the prediction and the label, not necessarily at the same voxel, so a missed voxel
is hidden by any predicted voxel on its ray, as a break in a vessel running along the projection axis is
by the rest of that vessel.

The gap map shows those gaps. It draws the label's centre line (the skeleton the continuity scores of
:mod:`spockmip.evaluation.continuity` use), each voxel coloured by its radius bin, strong where the
prediction misses it and muted where it covers it. Coverage is decided per voxel in 3D and only then
projected, a missed voxel drawn over a covered one and a thinner bin over a thicker one.

Both figures zoom on the same window: where the variants differ most in covering the thin centre line,
the thin vessels being what the MIP loss and the continuity losses are meant to keep.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import MaxNLocator
from numpy.typing import NDArray

from spockmip.axes import volume_dim
from spockmip.evaluation.continuity import RADIUS_BINS, bin_shares, radius_edges
from spockmip.evaluation.metrics import PRESENTATION, Presentation, reference_centreline
from spockmip.files.outputs import atomic_path
from spockmip.settings.catalogue import VALIDATION_COLUMNS, VALIDATION_LABELS

# Overlay class codes of a pixel (or a voxel of one slice), and their colours.
BACKGROUND, TRUE_POSITIVE, FALSE_POSITIVE, FALSE_NEGATIVE = 0, 1, 2, 3
CLASS_COLOURS = np.array([(0, 0, 0), (255, 255, 255), (0, 0, 255), (255, 0, 0)], dtype=np.uint8)
CLASS_NAMES = {
    TRUE_POSITIVE: "true positive",
    FALSE_POSITIVE: "false positive",
    FALSE_NEGATIVE: "false negative",
}

THIN = RADIUS_BINS.index("thin")
# Thin coverage of a projected pixel: no thin centre line on its ray, all of it covered, some of it missed.
NO_THIN, THIN_COVERED, THIN_MISSED = 0, 1, 2

# Gap-map codes of a projected pixel: background, label off the centre line, then a centre-line code per
# (bin, missed) from gap_code; a larger code wins a ray.
GAP_BACKGROUND, GAP_LABEL = 0, 1
BIN_COLOURS: dict[str, tuple[int, int, int]] = {
    "thin": (255, 40, 40),
    "medium": (255, 200, 0),
    "thick": (40, 150, 255),
}
"""Strong colour of each radius bin, drawn where the prediction misses the centre line."""
COVERED_SHADE = 0.5  # covered centre line: the bin's colour dimmed towards the black background
LABEL_GREY = (55, 55, 55)  # the label's MIP behind the centre line, for where the vessels run

ZOOM_REASONS = (
    "where the variants differ most in covering the thin centre line",
    "where the thin centre line is missed most",
    "where the overlays differ most (no thin centre line missed)",
)
"""Why the zoom window lies where it does, in the order the criteria are tried."""
CENTRED_ZOOM = "the centre (the variants agree everywhere)"
MIN_ZOOM = 8  # pixels: the smallest zoom window

LOG_SCALE_RATIO = 10.0  # plot losses on a log axis when they span more than this factor
BOXPLOT_COLUMNS = 4  # box-plot panels per row
# Panel titles and axis labels are wrapped to what fits beside the neighbouring panels.
TITLE_CHARACTERS_PER_INCH = 10
YLABEL_CHARACTERS = 40


def mip(volume: np.ndarray, axis: str = "z") -> np.ndarray:
    """Maximum intensity projection of an (X, Y, Z) array over a named axis."""
    return volume.max(axis=volume_dim(axis) + 3)


def classify(prediction: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Class codes (uint8) of a binary prediction against a binary reference of the same shape, element by
    element: pixels of two MIPs, or voxels of one slice."""
    p, g = prediction.astype(bool), reference.astype(bool)
    classes = np.full(p.shape, BACKGROUND, dtype=np.uint8)
    classes[p & g] = TRUE_POSITIVE
    classes[p & ~g] = FALSE_POSITIVE
    classes[~p & g] = FALSE_NEGATIVE
    return classes


def mip_classes(prediction: np.ndarray, reference: np.ndarray, axis: str = "z") -> np.ndarray:
    """Classes of the prediction's MIP against the label's MIP over ``axis``, as the papers draw overlays:
    a wider prediction shows a false-positive rim only, and a gap under a found voxel of its ray is hidden."""
    return classify(mip(prediction, axis), mip(reference, axis))


def overlay(prediction: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """RGB image (…, 3) uint8 of TP white, FN red, FP blue on black, for binary arrays of one shape."""
    return CLASS_COLOURS[classify(prediction, reference)]


def overlay_mip(prediction: np.ndarray, reference: np.ndarray, axis: str = "z") -> np.ndarray:
    """RGB overlay of :func:`mip_classes`."""
    return CLASS_COLOURS[mip_classes(prediction, reference, axis)]


@dataclass(frozen=True)
class BinnedCentreline:
    """The label's centre-line voxels (N, 3) and the radius bin of each (0 thin, 1 medium, 2 thick), as
    the continuity scores find and bin them."""

    points: NDArray[np.intp]
    bins: NDArray[np.intp]

    @classmethod
    def of(
        cls, reference: np.ndarray, spacing: Sequence[float], radius_edges_mm: Sequence[float] | None
    ) -> BinnedCentreline:
        """The centre line of ``reference`` with voxel sizes ``spacing`` (mm) and interior bin edges
        ``radius_edges_mm`` (None: the continuity default). Skeletonised once: each prediction's coverage
        is then read off by :meth:`covered_by`."""
        points, bins, _ = reference_centreline(reference, reference, spacing, radius_edges_mm)
        return cls(points, bins)

    def covered_by(self, prediction: np.ndarray) -> NDArray[np.bool_]:
        """Which centre-line voxels lie in ``prediction`` (a whole volume)."""
        return np.asarray(prediction)[tuple(self.points.T)] != 0


def project_points(
    points: NDArray[np.intp], codes: NDArray[np.integer], shape: Sequence[int], axis: str = "z"
) -> np.ndarray:
    """The volume ``shape`` projected over ``axis`` (a 2D uint8 array in volume order, like :func:`mip`):
    at each pixel the largest code of the ``points`` on its ray, 0 where there is none."""
    kept = [dim for dim in range(3) if dim != volume_dim(axis) + 3]
    image = np.zeros([shape[dim] for dim in kept], dtype=np.uint8)
    np.maximum.at(image, tuple(points[:, kept].T), np.asarray(codes, dtype=np.uint8))
    return image


def thin_coverage(
    line: BinnedCentreline, covered: NDArray[np.bool_], shape: Sequence[int], axis: str = "z"
) -> np.ndarray:
    """Per projected pixel: :data:`NO_THIN`, :data:`THIN_COVERED` when the prediction covers every thin
    centre-line voxel on the ray, :data:`THIN_MISSED` when it misses one."""
    thin = line.bins == THIN
    codes = np.where(covered[thin], THIN_COVERED, THIN_MISSED)
    return project_points(line.points[thin], codes, shape, axis)


def gap_code(bins: NDArray[np.intp] | int, missed: NDArray[np.bool_] | bool) -> NDArray[np.intp] | int:
    """Gap-map code of centre-line voxels: every missed one above every covered one, then thinner bins
    above thicker ones, so that a ray shows its most telling voxel."""
    last = len(RADIUS_BINS) - 1
    return GAP_LABEL + 1 + (last - np.asarray(bins)) + len(RADIUS_BINS) * np.asarray(missed, dtype=np.intp)


def gap_codes(
    line: BinnedCentreline, covered: NDArray[np.bool_], reference: np.ndarray, axis: str = "z"
) -> np.ndarray:
    """Per projected pixel: the winning :func:`gap_code` of the centre-line voxels on the ray, else
    :data:`GAP_LABEL` where the label's MIP is set, else :data:`GAP_BACKGROUND`."""
    image = project_points(line.points, gap_code(line.bins, ~covered), reference.shape, axis)
    image[(image == GAP_BACKGROUND) & (mip(reference, axis) > 0)] = GAP_LABEL
    return image


def _gap_colours() -> NDArray[np.uint8]:
    """RGB colour of every gap-map code."""
    colours = np.zeros((GAP_LABEL + 1 + 2 * len(RADIUS_BINS), 3))
    colours[GAP_LABEL] = LABEL_GREY
    for index, name in enumerate(RADIUS_BINS):
        strong = np.array(BIN_COLOURS[name], dtype=float)
        colours[gap_code(index, False)] = COVERED_SHADE * strong
        colours[gap_code(index, True)] = strong
    return colours.round().astype(np.uint8)


GAP_COLOURS = _gap_colours()


def disagreement(views: Sequence[np.ndarray]) -> NDArray[np.bool_]:
    """Pixels where the variants' views differ (none when there is only one variant)."""
    stack = np.stack(views)
    return (stack != stack[0]).any(axis=0)


def busiest_window(marks: NDArray[np.bool_], size: int) -> tuple[int, int]:
    """Top-left corner (row, column) of the ``size``² window holding the most marked pixels (the centre
    of the image when none is marked); ``size`` must fit the image."""
    rows, columns = marks.shape
    if not marks.any():
        return (rows - size) // 2, (columns - size) // 2
    # Window sums from the summed-area table: one pass, whatever the window size.
    table = np.pad(marks.astype(np.int64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    sums = table[size:, size:] - table[:-size, size:] - table[size:, :-size] + table[:-size, :-size]
    row, column = np.unravel_index(np.argmax(sums), sums.shape)
    return int(row), int(column)


def zoom_window(
    thin_views: Sequence[np.ndarray], class_views: Sequence[np.ndarray], size: int
) -> tuple[int, int, str]:
    """The zoom window's top-left corner and the reason for it (:data:`ZOOM_REASONS`). Where the variants
    disagree on covering the thin centre line, the window goes where they disagree most. Where they all
    cover or all miss the same thin voxels (or there is one variant), it goes where the thin centre line
    is missed most; with no thin centre line missed at all, where the overlays differ most; failing
    that, to the centre."""
    candidates = (
        disagreement(thin_views),
        np.any(np.stack(thin_views) == THIN_MISSED, axis=0),
        disagreement(class_views),
    )
    for reason, marks in zip(ZOOM_REASONS, candidates, strict=True):
        if marks.any():
            return (*busiest_window(marks, size), reason)
    return (*busiest_window(candidates[0], size), CENTRED_ZOOM)


@dataclass(frozen=True)
class SubjectViews:
    """What the overlay and the gap map of one subject draw, over z and in display orientation (rows = Y,
    columns = X), computed once for both figures."""

    image: np.ndarray
    """The image's MIP."""
    classes: dict[str, np.ndarray]
    """Per variant, the overlay classes of its MIP against the label's (:func:`mip_classes`)."""
    gaps: dict[str, np.ndarray]
    """Per variant, the gap-map codes (:func:`gap_codes`)."""
    coverage: dict[str, list[float]]
    """Per variant and radius bin, the share of the label's centre line the prediction covers (NaN for a
    bin without centre line): the bin's recall."""
    edges: tuple[float, float]
    """The interior radius-bin edges in mm."""
    window: tuple[int, int, int]
    """The zoom window: top row, left column, size."""
    reason: str
    """Why the window lies where it does."""


def subject_views(
    image: np.ndarray,
    reference: np.ndarray,
    predictions: Mapping[str, np.ndarray],
    spacing: Sequence[float],
    radius_edges_mm: Sequence[float] | None = None,
) -> SubjectViews:
    """The views of one subject's figures. ``spacing`` is the label's voxel size in mm (X, Y, Z) and
    ``radius_edges_mm`` the interior radius-bin edges (None: the continuity default), both as the metrics
    take them, so that the figures bin the centre line as the scores do."""
    line = BinnedCentreline.of(reference, spacing, radius_edges_mm)
    covered = {variant: line.covered_by(p) for variant, p in predictions.items()}
    classes = {variant: _display(mip_classes(p, reference)) for variant, p in predictions.items()}
    thin = [_display(thin_coverage(line, hit, reference.shape)) for hit in covered.values()]
    image_view = _display(mip(image))
    size = min(max(MIN_ZOOM, min(image_view.shape) // 3), *image_view.shape)
    row, column, reason = zoom_window(thin, list(classes.values()), size)
    return SubjectViews(
        image=image_view,
        classes=classes,
        gaps={variant: _display(gap_codes(line, hit, reference)) for variant, hit in covered.items()},
        coverage={variant: bin_shares(line.bins, hit) for variant, hit in covered.items()},
        edges=radius_edges(spacing, radius_edges_mm),
        window=(row, column, size),
        reason=reason,
    )


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
    """The overlay of the MIPs over z, followed by per-slice overlays at ``slices`` (default: three evenly
    spaced), where a gap hidden in the MIP can show."""
    depth = prediction.shape[2]
    chosen = list(slices) or [depth // 4, depth // 2, (3 * depth) // 4]
    figure = Figure(figsize=(5 * (1 + len(chosen)), 5))
    axes = figure.subplots(1, 1 + len(chosen))
    axes[0].imshow(_display(overlay_mip(prediction, reference)), interpolation="nearest")
    axes[0].set_title(f"{title}: MIPs over z")
    for ax, index in zip(axes[1:], chosen, strict=True):
        ax.imshow(_display(overlay(prediction[:, :, index], reference[:, :, index])), interpolation="nearest")
        ax.set_title(f"slice z={index}")
    for ax in axes:
        ax.axis("off")
    figure.legend(handles=_class_legend(), loc="lower center", ncols=3, frameon=False)
    _save(figure, path)


def _whole_and_zoomed(
    figure: Figure, panels: Sequence[tuple[str, np.ndarray, str | None]], window: tuple[int, int, int]
) -> None:
    """One column per (title, picture, colour map) panel: the picture whole with the zoom window outlined
    in yellow (top), and the window enlarged (bottom)."""
    row, column, size = window
    zoom = (slice(row, row + size), slice(column, column + size))
    axes = figure.subplots(2, len(panels), squeeze=False)
    for index, (name, picture, cmap) in enumerate(panels):
        top, bottom = axes[0, index], axes[1, index]
        top.imshow(picture, cmap=cmap, interpolation="nearest")
        top.add_patch(Rectangle((column - 0.5, row - 0.5), size, size, fill=False, edgecolor="yellow"))
        top.set_title(name, fontsize="medium")
        bottom.imshow(picture[zoom], cmap=cmap, interpolation="nearest")
        bottom.set_title("zoom", fontsize="small")
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])


def save_subject_overlays(views: SubjectViews, path: str | Path, subject: str, models: str) -> None:
    """The image's MIP, then every variant's overlay of one subject (top), and the same zoomed (bottom).
    ``models`` names the run the predictions come from (``fold 0``, or ``fold 0, seed 7``)."""
    panels = [
        ("image MIP", views.image, "gray"),
        *((variant, CLASS_COLOURS[classes], None) for variant, classes in views.classes.items()),
    ]
    figure = Figure(figsize=(2.6 * len(panels), 6.6), layout="constrained")
    _whole_and_zoomed(figure, panels, views.window)
    figure.suptitle(
        f"{subject}, {models} models: MIP of each prediction against the label's MIP, over z\n"
        "a missed voxel is hidden wherever its ray meets the prediction (as a break along z is): "
        "the gap map shows it\n"
        f"yellow box: {views.reason}, zoomed below"
    )
    figure.legend(handles=_class_legend(), loc="outside lower center", ncols=3, frameon=False)
    _save(figure, path)


def _bin_ranges(edges: Sequence[float]) -> list[str]:
    """Each radius bin's range in mm, for the legend."""
    low, high = edges
    return [f"r ≤ {low:.2g} mm", f"{low:.2g} < r ≤ {high:.2g} mm", f"r > {high:.2g} mm"]


def _gap_legend(edges: Sequence[float]) -> list[Patch]:
    """Missed above covered for each bin, then the label: a figure legend fills column by column."""
    handles = [
        Patch(facecolor=GAP_COLOURS[gap_code(index, missed)] / 255, edgecolor="grey",
              label=f"{name} ({span}), {'missed' if missed else 'covered'}")
        for index, (name, span) in enumerate(zip(RADIUS_BINS, _bin_ranges(edges), strict=True))
        for missed in (True, False)
    ]  # fmt: skip
    handles.append(
        Patch(facecolor=GAP_COLOURS[GAP_LABEL] / 255, edgecolor="grey", label="label, off the centre line")
    )
    return handles


def _coverage_text(shares: Sequence[float]) -> str:
    """``thin 92 %, medium 97 %, thick 100 %`` (– for a bin without centre line)."""
    return ", ".join(
        f"{name} " + ("–" if math.isnan(share) else f"{100 * share:.0f} %")
        for name, share in zip(RADIUS_BINS, shares, strict=True)
    )


def save_gap_maps(views: SubjectViews, path: str | Path, subject: str, models: str) -> None:
    """Every variant's gap map of one subject (top), and the same zoomed on the overlays' window (bottom);
    each panel's title gives the share of each bin's centre line the prediction covers."""
    panels = [
        (f"{variant}\n{_coverage_text(views.coverage[variant])}", GAP_COLOURS[codes], None)
        for variant, codes in views.gaps.items()
    ]
    figure = Figure(figsize=(max(3.4 * len(panels), 8.0), 7.4), layout="constrained")
    _whole_and_zoomed(figure, panels, views.window)
    figure.suptitle(
        f"{subject}, {models} models: the label's centre line by vessel radius, over z\n"
        "strong where the prediction misses it, muted where it covers it (decided in 3D, a miss drawn over "
        f"a cover)\nyellow box: {views.reason}, zoomed below"
    )
    figure.legend(
        handles=_gap_legend(views.edges),
        loc="outside lower center",
        ncols=len(RADIUS_BINS) + 1,
        frameon=False,
    )
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
    """One panel per metric, in rows of at most :data:`BOXPLOT_COLUMNS` so that every panel stays wide
    enough for its variants' names; one box per variant; every observation drawn once as a point over its
    box (the boxes draw no outliers of their own), median as the box line, mean as a diamond. Undefined
    values (NaN: a surface distance with exactly one mask empty) are left out, and each panel's n counts
    only what it shows.

    With several training seeds, ``table`` holds each subject's score averaged over them
    (:func:`spockmip.reporting.replicates.average_over_seeds`) and ``seed_means`` each (variant, seed)'s mean
    score (:func:`spockmip.reporting.replicates.seed_means`), drawn beside the box, so the spread between
    seeds can be read against the spread between subjects."""
    seeds = [] if seed_means is None else sorted(seed_means["seed"].unique())
    columns = min(len(metrics), BOXPLOT_COLUMNS)
    rows = math.ceil(len(metrics) / columns)
    panel_width = max(3.0, 0.45 * len(order))
    title_characters = int(TITLE_CHARACTERS_PER_INCH * panel_width)
    figure = Figure(figsize=(panel_width * columns, 4.4 * rows + 0.6), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for unused in axes[len(metrics) :]:
        unused.set_visible(False)
    jitter = np.random.default_rng(0)
    for ax, metric in zip(axes, metrics, strict=False):
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
        ax.set_ylabel(textwrap.fill(presentation.axis_label, YLABEL_CHARACTERS))
        ax.set_xlabel("variant")
        heading = textwrap.fill(f"{presentation.description}{_direction(presentation)}", title_characters)
        ax.set_title(f"{heading}\n{_n_text(groups)} per variant")
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
