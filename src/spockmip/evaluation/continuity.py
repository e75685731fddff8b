"""Continuity by vessel radius: how much of the thin, medium and thick centre line a prediction keeps, and
where it breaks it.

Whole-volume scores mix thick and thin vessels: cutting a one-voxel vessel in two changes Dice by a few
voxels out of thousands, and clDice's skeleton recall by the few centre-line voxels of the cut. Yet the
claim of the MIP loss, soft-clDice and Skeleton Recall is about thin vessels. So the centre line is split
by vessel radius into bins, and each bin gets its own recall, precision and gap count.

Definitions (docs/method.md states them with their reasons):

* The centre lines are the skeletons clDice uses (:func:`spockmip.evaluation.metrics.skeleton`).
* The radius at a centre-line voxel is its own mask's Euclidean distance transform there, in mm, from the
  voxel centre to the nearest background voxel centre, without a half-voxel correction: a one-voxel-wide
  line has the radius of one voxel. Outside the volume there are no voxels, so no background: a vessel
  leaving the field of view keeps its radius up to the edge (a mask without any background voxel has
  infinite radius, so thick).
* Bins: two interior edges in mm, by default 1 and 2 times the smallest voxel size, giving ``thin``
  [0, 1], ``medium`` (1, 2] and ``thick`` (2, ∞) voxels. Each bin is closed on the right, and a radius
  within a relative 1e-9 of an edge counts as on it (an edge times a spacing is not exact in floating
  point).
* Recall of a bin: the share of the reference centre line in that bin (reference radius) that lies in the
  prediction. Precision: the share of the prediction's centre line in that bin (the prediction's own
  radius) that lies in the reference. Gaps: the 26-connected pieces of the reference centre line outside the
  prediction, each in the bin of the median reference radius of its voxels (``numpy.median``).
* A bin without centre line has NaN recall or precision (left out of means and counted in the table notes,
  so that a method which empties the thin bin by drawing every vessel fatter is seen) and 0 gaps.

Summed over the bins, the covered reference centre line is clDice's skeleton recall: the bins only split
it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi
from scipy.spatial import KDTree

RADIUS_BINS: tuple[str, ...] = ("thin", "medium", "thick")
"""The radius bins, thinnest first; two interior edges separate them."""
DEFAULT_EDGES_VOXELS: tuple[float, float] = (1.0, 2.0)
"""Interior bin edges in units of the smallest voxel size: thin up to one voxel, medium up to two."""
CONTINUITY_MEASURES: tuple[str, ...] = ("recall", "precision", "gaps")
CONTINUITY_KEYS: tuple[str, ...] = tuple(
    f"{bin_name}_{measure}" for bin_name in RADIUS_BINS for measure in CONTINUITY_MEASURES
)
"""Per-bin keys, e.g. ``thin_recall``, in the order the metrics table stores them."""
# A radius this close (relative) to an edge counts as on it, so that it falls in the bin below.
EDGE_TOLERANCE = 1e-9
_CONNECTIVITY_26 = np.ones((3, 3, 3), dtype=bool)


def radius_edges(spacing: Sequence[float], edges_mm: Sequence[float] | None = None) -> tuple[float, float]:
    """The two interior bin edges in mm: ``edges_mm`` as given, or the default edges scaled by the
    smallest voxel size; refused unless two finite, positive and increasing values."""
    if edges_mm is None:
        smallest = float(min(spacing))
        return DEFAULT_EDGES_VOXELS[0] * smallest, DEFAULT_EDGES_VOXELS[1] * smallest
    edges = [float(edge) for edge in edges_mm]
    if len(edges) != 2 or not all(math.isfinite(e) and e > 0 for e in edges) or edges[0] >= edges[1]:
        raise ValueError(f"radius bin edges must be two increasing positive distances in mm, got {edges}")
    return edges[0], edges[1]


def radius_bins(radii: NDArray[np.float64], edges: Sequence[float]) -> NDArray[np.intp]:
    """Bin index (0 thin, 1 medium, 2 thick) of each radius: the number of edges it lies beyond."""
    above = [radii > edge * (1 + EDGE_TOLERANCE) for edge in edges]
    return np.sum(above, axis=0, dtype=np.intp) if above else np.zeros(radii.shape, dtype=np.intp)


@dataclass(frozen=True)
class Centreline:
    """A mask's centre-line voxels, as volume indices (N, 3), with the mask's radius in mm at each."""

    points: NDArray[np.intp]
    radii: NDArray[np.float64]

    @classmethod
    def empty(cls) -> Centreline:
        return cls(np.zeros((0, 3), dtype=np.intp), np.zeros(0, dtype=np.float64))

    @classmethod
    def of(
        cls,
        padded_crop: NDArray[np.bool_],
        box: tuple[slice, slice, slice],
        shape: Sequence[int],
        skeleton: NDArray[np.bool_],
        spacing: Sequence[float],
    ) -> Centreline:
        """The centre line of a mask given as its crop to ``box`` padded by one background voxel, the
        volume's ``shape`` and the skeleton over the unpadded crop.

        The radius is the distance transform's value at each centre-line voxel, found without the
        transform of the whole crop (seconds per full-size volume, to read a few thousand values): a
        foreground voxel's nearest background voxel always has a face-neighbour in the foreground
        (stepping from it one voxel towards the foreground voxel along any axis on which they differ
        shortens the distance, so that neighbour is no background), so a k-d tree over those background
        voxels gives the same distances. Only the padded crop is searched: a background voxel outside the
        box is never nearer than one on the padding, since moving it onto the padding shortens every
        coordinate difference. Padding that lies outside the volume is made foreground, as there is no
        background there."""
        grid = padded_crop.copy()
        for axis, (part, size) in enumerate(zip(box, shape, strict=True)):
            face: list[slice | int] = [slice(None)] * 3
            if part.start == 0:
                face[axis] = 0
                grid[tuple(face)] = True
            if part.stop == size:
                face[axis] = -1
                grid[tuple(face)] = True
        local = np.argwhere(skeleton)
        border = np.argwhere(ndi.binary_dilation(grid) & ~grid)
        sizes = np.asarray(spacing, dtype=np.float64)
        if len(border) == 0 or len(local) == 0:
            radii = np.full(len(local), np.inf)
        else:
            radii, _ = KDTree(border * sizes).query((local + 1) * sizes)
        origin = np.array([part.start for part in box], dtype=np.intp)
        return cls(local + origin, np.asarray(radii, dtype=np.float64))

    def covered_by(self, mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
        """Which of the centre-line voxels lie in ``mask`` (a whole volume)."""
        return mask[tuple(self.points.T)] if len(self.points) else np.zeros(0, dtype=bool)


def bin_shares(bins: NDArray[np.intp], hit: NDArray[np.bool_]) -> list[float]:
    """Per bin, the share of its voxels that are hit; NaN for a bin without voxels."""
    totals = np.bincount(bins, minlength=len(RADIUS_BINS))
    hits = np.bincount(bins[hit], minlength=len(RADIUS_BINS))
    return [float(h / t) if t else math.nan for h, t in zip(hits, totals, strict=True)]


def gap_bins(reference: Centreline, covered: NDArray[np.bool_], edges: Sequence[float]) -> NDArray[np.intp]:
    """The bin of every gap: each 26-connected piece of the reference centre line outside the prediction,
    binned by the median reference radius of its voxels."""
    missed = reference.points[~covered]
    if not len(missed):
        return np.zeros(0, dtype=np.intp)
    low = missed.min(axis=0)
    grid = np.zeros(tuple(missed.max(axis=0) - low + 1), dtype=bool)
    local = tuple((missed - low).T)
    grid[local] = True
    labels, count = ndi.label(grid, structure=_CONNECTIVITY_26)
    piece = labels[local]
    radii = reference.radii[~covered]
    order = np.argsort(piece, kind="stable")
    starts = np.searchsorted(piece[order], np.arange(1, count + 1))
    medians = np.array([np.median(group) for group in np.split(radii[order], starts[1:])])
    return radius_bins(medians, edges)


def radius_scores(
    prediction: NDArray[np.bool_],
    reference: NDArray[np.bool_],
    predicted_line: Centreline,
    reference_line: Centreline,
    edges: Sequence[float],
) -> dict[str, float]:
    """Recall, precision and gaps per radius bin, keyed as :data:`CONTINUITY_KEYS` (definitions in the
    module docstring); ``edges`` are the interior bin edges in mm (:func:`radius_edges`)."""
    covered = reference_line.covered_by(prediction)
    recalls = bin_shares(radius_bins(reference_line.radii, edges), covered)
    precisions = bin_shares(radius_bins(predicted_line.radii, edges), predicted_line.covered_by(reference))
    gaps = np.bincount(gap_bins(reference_line, covered, edges), minlength=len(RADIUS_BINS))
    scores: dict[str, float] = {}
    for index, name in enumerate(RADIUS_BINS):
        scores[f"{name}_recall"] = recalls[index]
        scores[f"{name}_precision"] = precisions[index]
        scores[f"{name}_gaps"] = float(gaps[index])
    return scores
