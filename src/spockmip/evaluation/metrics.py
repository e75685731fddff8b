"""Segmentation-quality and vessel-continuity metrics for binary 3D volumes.

Voxel overlap (Dice, IoU, precision, recall) hardly moves when a thin vessel is cut in two or when a
spurious bridge joins two vessels, yet such errors are what matter for vessel trees. So this module also
scores continuity: clDice (overlap of skeletons, sensitive to breaks in thin structures), Betti numbers
(how many pieces and loops), the prediction's component count and how much of it sits in its largest
component, and the Dice of maximum intensity projections (what the MIP loss of SPOCKMIP optimises).
Surface metrics in millimetres (HD95, ASSD, normalised surface Dice) say how far a predicted boundary lies
from the true one, which overlap scores cannot: a vessel drawn one voxel too wide and one missed entirely
may cost the same Dice.

Each metric's key comes with how tables and figures present it (:data:`PRESENTATION`: name, unit, scale,
which way is better), so that adding a metric is one entry beside its computation and its header, axis
label and direction cannot disagree.

Masks are arrays of shape ``(X, Y, Z)`` (see :mod:`spockmip.axes`); any nonzero voxel is foreground.
Foreground is 26-connected and background 6-connected: under that pair the foreground is the union of its
closed unit cubes, and the Betti numbers reported are those of that union (b0 pieces, b1 tunnels/loops,
b2 enclosed cavities).

Skeletons come from ``skimage.morphology.skeletonize`` (Lee thinning), which wrongly deletes some
components outright, e.g. any 2x2x2 block or straight bar of even width
(github.com/scikit-image/scikit-image/issues/3757). Such
a component would then be invisible to clDice (and an all-even reference would give clDice 0 against a
perfect prediction), so each component that loses its whole skeleton keeps its deepest voxel instead.

Empty-mask conventions (chosen so that every score stays in [0, 1] and "no vessel" predicted for "no
vessel" present is a perfect result):

* A ratio score (Dice, IoU, precision, recall, clDice and its skeleton precision/recall, MIP Dice) whose
  denominator is zero is 1.0 when both masks are empty and 0.0 otherwise. So an empty prediction has
  precision 1.0 against an empty reference and 0.0 against a non-empty one; clDice is 1.0 if both masks
  are empty and 0.0 if exactly one is.
* The harmonic mean in clDice of two zero terms is 0.0.
* Betti numbers, Euler characteristic and component count of an empty mask are 0.
* The largest-component fraction of an empty prediction is 0.0: an empty prediction never looks perfectly
  connected.
* Surface metrics of two empty masks are 0 mm (HD95, ASSD) and 1.0 (NSD); with exactly one mask empty a
  distance to "the other surface" does not exist, so all three are NaN (summaries leave them out and
  count them) rather than an invented penalty.

Surfaces and distances (docs/method.md states them in full): a mask's surface is its foreground voxels
with at least one face-neighbour in the background (the mask XOR its erosion by the 6-connected cross;
voxels on the volume's edge count as surface). Face- rather than 26-connectivity marks only voxels whose
cube shares a face with the background, so a diagonal boundary is one voxel thick, and it is the surface
MONAI and medpy use, so values compare with theirs. Each surface voxel's distance to the other surface is
the Euclidean distance between voxel centres in mm (index times voxel spacing) to the nearest voxel of
the other surface, found with a k-d tree over the surface voxels only: surfaces are a few percent of a
vessel volume, and a distance transform would fill (and hold in memory) the whole volume to read those
few values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi
from scipy.spatial import KDTree
from skimage.morphology import skeletonize

from spockmip.evaluation.continuity import (
    RADIUS_BINS,
    Centreline,
    radius_bins,
    radius_edges,
    radius_scores,
)

_Box = tuple[slice, slice, slice]
Spacing = tuple[float, float, float]

# Array axis of each volume axis name; the same (X, Y, Z) order as spockmip.axes, kept here so that
# computing metrics does not import torch.
_AXIS_INDEX: dict[str, int] = {"x": 0, "y": 1, "z": 2}

_CONNECTIVITY_26 = np.ones((3, 3, 3), dtype=bool)
UNIT_SPACING: Spacing = (1.0, 1.0, 1.0)
# Distances are differences of (index x spacing) products, so one exactly tau away can come out a few
# units in the last place above tau; this relative slack counts it as within tau, as intended.
_TOLERANCE_SLACK = 1e-9


@dataclass(frozen=True)
class Presentation:
    """How tables and figures name and scale one metric, so that its header, axis label and ×100 cannot
    drift apart.

    ``name`` heads a table column, ``description`` is the longer wording of a figure's axis and panel
    title. ``unit`` is ``%`` for a score in [0, 1] shown ×100, ``mm`` for a distance, or ``count``;
    ``counts`` says what a count counts where ``description`` does not. ``higher_is_better`` is which way
    the score improves, None for what is not a score (a raw Betti number of one mask); it has no default,
    so a new metric must state it. ``undefined`` says when the metric is NaN, for the tables' notes.
    """

    name: str
    description: str
    unit: Literal["%", "mm", "count"]
    higher_is_better: bool | None
    counts: str = ""
    undefined: str = ""

    @property
    def scale(self) -> float:
        """Factor from the stored value to the shown one: percentages are stored as fractions."""
        return 100.0 if self.unit == "%" else 1.0

    @property
    def header(self) -> str:
        """Table column header, e.g. ``Dice %``; a count's column carries no unit, its numbers say it."""
        return self.name if self.unit == "count" else f"{self.name} {self.unit}"

    @property
    def axis_label(self) -> str:
        """Figure axis label, e.g. ``Betti-0 error (components, count)``."""
        unit = f"{self.counts}, {self.unit}" if self.counts else self.unit
        return f"{self.description} ({unit})"


def _betti_number(number: int, counts: str, mask: str) -> Presentation:
    """A raw Betti number of one mask: a property of that mask, not a score."""
    return Presentation(f"β{number} {mask}", f"Betti-{number} of the {mask}", "count", None, counts)


_ONE_MASK_EMPTY = "exactly one of prediction and label empty"


def _radius_bin_presentations(name: str) -> dict[str, Presentation]:
    """Recall, precision and gaps of one radius bin (:mod:`spockmip.evaluation.continuity`)."""
    title = name.capitalize()
    return {
        "recall": Presentation(
            f"{title} recall",
            f"recall of the {name} reference centre line",
            "%",
            True,
            undefined=f"no reference centre line in the {name} bin",
        ),
        "precision": Presentation(
            f"{title} precision",
            f"precision of the {name} predicted centre line",
            "%",
            True,
            undefined=f"no predicted centre line in the {name} bin",
        ),
        "gaps": Presentation(
            f"{title} gaps", f"breaks in the {name} reference centre line", "count", False, "gaps"
        ),
    }


PRESENTATION: dict[str, Presentation] = {
    "dice": Presentation("Dice", "Dice", "%", True),
    "iou": Presentation("IoU", "IoU", "%", True),
    "precision": Presentation("Precision", "precision", "%", True),
    "recall": Presentation("Recall", "recall", "%", True),
    "cl_dice": Presentation("clDice", "clDice", "%", True),
    "skeleton_precision": Presentation("Skeleton precision", "skeleton precision", "%", True),
    "skeleton_recall": Presentation("Skeleton recall", "skeleton recall", "%", True),
    "betti0_prediction": _betti_number(0, "components", "prediction"),
    "betti0_reference": _betti_number(0, "components", "label"),
    "betti0_error": Presentation("β0 error", "Betti-0 error", "count", False, "components"),
    "betti1_prediction": _betti_number(1, "loops", "prediction"),
    "betti1_reference": _betti_number(1, "loops", "label"),
    "betti1_error": Presentation("β1 error", "Betti-1 error", "count", False, "loops"),
    # A vessel tree is one piece, so fewer predicted components is better.
    "n_components_prediction": Presentation("Components", "connected components", "count", False),
    "largest_component_fraction_prediction": Presentation(
        "Largest component", "largest component's share of the prediction", "%", True
    ),
    **{
        f"mip_dice_{axis}": Presentation(f"MIP Dice {axis}", f"Dice of the MIPs over {axis}", "%", True)
        for axis in _AXIS_INDEX
    },
    "hd95_mm": Presentation("HD95", "HD95", "mm", False, undefined=_ONE_MASK_EMPTY),
    "assd_mm": Presentation("ASSD", "ASSD", "mm", False, undefined=_ONE_MASK_EMPTY),
    "nsd": Presentation("NSD", "normalised surface Dice", "%", True, undefined=_ONE_MASK_EMPTY),
    **{
        f"{name}_{measure}": presentation
        for name in RADIUS_BINS
        for measure, presentation in _radius_bin_presentations(name).items()
    },
}
"""How each metric of :func:`all_metrics` is presented; the order is that of :data:`METRIC_KEYS`."""

METRIC_KEYS: tuple[str, ...] = tuple(PRESENTATION)
"""Keys of :func:`all_metrics`, in the order it returns them (a stable CSV header)."""

BETTI_MATCHING_KEYS: tuple[str, ...] = ("betti_matching_error_0", "betti_matching_error_1")
"""The Betti matching errors (:mod:`spockmip.evaluation.betti_matching`), scored beside
:func:`all_metrics` where the optional compiled implementation is installed."""
PRESENTATION.update(
    {
        key: Presentation(
            f"BM error {dimension}",
            f"Betti matching error, dimension {dimension} (6-connected foreground)",
            "count",
            False,
            what,
        )
        for dimension, (key, what) in enumerate(
            zip(BETTI_MATCHING_KEYS, ("components", "loops"), strict=True)
        )
    }
)
SCORE_KEYS: tuple[str, ...] = METRIC_KEYS + BETTI_MATCHING_KEYS
"""Every per-subject score a metrics table may hold."""

POSTPROCESSED = "pp_"
"""Prefix of a metric scored on post-processed predictions (:mod:`spockmip.evaluation.postprocessing`),
beside the raw one in the gathered tables: ``pp_dice``."""


def _postprocessed(presentation: Presentation) -> Presentation:
    return replace(
        presentation,
        name=f"PP {presentation.name}",
        description=f"{presentation.description}, post-processed",
    )


PRESENTATION.update({POSTPROCESSED + key: _postprocessed(PRESENTATION[key]) for key in SCORE_KEYS})

BOXPLOT_METRICS: tuple[str, ...] = (
    "dice",
    "cl_dice",
    "betti0_error",
    "betti1_error",
    "hd95_mm",
    "assd_mm",
    "nsd",
    "thin_recall",
    "thin_gaps",
)
"""The metrics the workflow draws as box plots: overlap, continuity, topology, surface distance, and the
recall and gaps of the thin centre line, where the continuity losses are meant to help. IoU is left out as
a monotone function of Dice (it orders the variants the same way), and the predicted component count as
what β0 error already compares with the label."""


def _as_mask(mask: NDArray[Any], name: str) -> NDArray[np.bool_]:
    """Validate a volume and view it as bool, so that every metric sees the same foreground."""
    array = np.asarray(mask)
    if array.ndim != 3:
        raise ValueError(f"{name} must be a 3D (X, Y, Z) array, got shape {array.shape}")
    return array.astype(bool, copy=False)


def _as_pair(
    prediction: NDArray[Any], reference: NDArray[Any]
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """Validate a prediction/reference pair; a shape mismatch is always a pipeline bug, never scored."""
    pred = _as_mask(prediction, "prediction")
    ref = _as_mask(reference, "reference")
    if pred.shape != ref.shape:
        raise ValueError(f"prediction shape {pred.shape} does not match reference shape {ref.shape}")
    return pred, ref


def _ratio(numerator: float, denominator: float, both_empty: bool) -> float:
    """A score with the module's empty-mask convention for a zero denominator."""
    if denominator == 0:
        return 1.0 if both_empty else 0.0
    return float(numerator / denominator)


def _harmonic_mean(a: float, b: float) -> float:
    """Harmonic mean, 0.0 when both terms are 0 (nothing of either skeleton is covered)."""
    return 0.0 if a + b == 0 else 2.0 * a * b / (a + b)


def _bounding_box(mask: NDArray[np.bool_]) -> _Box | None:
    """Tight box around the foreground, or None when empty: the expensive steps only need this part."""
    xy = mask.any(axis=2)
    xs = np.flatnonzero(xy.any(axis=1))
    if xs.size == 0:
        return None
    ys = np.flatnonzero(xy.any(axis=0))
    zs = np.flatnonzero(mask.any(axis=(0, 1)))
    return (slice(xs[0], xs[-1] + 1), slice(ys[0], ys[-1] + 1), slice(zs[0], zs[-1] + 1))


class _Crop:
    """A mask's foreground box with a one-voxel zero border, which keeps the outside background one shell.

    All expensive steps run on this crop only; its 26-connected labelling is computed on first use and
    then shared by the component sizes (b0) and the skeleton check.
    """

    def __init__(self, mask: NDArray[np.bool_], box: _Box) -> None:
        self.box = box
        self.padded = np.pad(mask[box], 1)

    @cached_property
    def labels(self) -> tuple[NDArray[np.int32], int]:
        labels, count = ndi.label(self.padded, structure=_CONNECTIVITY_26)
        return labels, int(count)

    @cached_property
    def surface(self) -> NDArray[np.intp]:
        """Whole-volume indices, one row per surface voxel (foreground with a background face-neighbour);
        the zero border makes a voxel on the volume's edge a surface voxel."""
        surface = self.padded & ~ndi.binary_erosion(self.padded)
        return np.argwhere(surface) + np.array([axis.start - 1 for axis in self.box])


def _crop(mask: NDArray[np.bool_]) -> _Crop | None:
    box = _bounding_box(mask)
    return None if box is None else _Crop(mask, box)


def _component_sizes(crop: _Crop | None) -> NDArray[np.int64]:
    """Voxel counts of the 26-connected components, largest first."""
    if crop is None:
        return np.zeros(0, dtype=np.int64)
    labels, count = crop.labels
    sizes = np.bincount(labels[crop.padded], minlength=count + 1)[1:]
    return np.sort(sizes)[::-1].astype(np.int64)


def _euler(crop: _Crop | None) -> int:
    """Euler characteristic V - E + F - C of the union of closed voxel cubes.

    A lattice cell is in the union when any voxel cube containing it is foreground: OR-ing neighbouring
    voxels along one axis marks the faces across that axis, along two axes the edges, along all three the
    vertices. Pure slicing on bool, so it is much cheaper than skimage's 3x3x3 convolution on int64.
    """
    if crop is None:
        return 0
    padded = crop.padded
    faces_x = padded[1:] | padded[:-1]
    faces_y = padded[:, 1:] | padded[:, :-1]
    faces_z = padded[:, :, 1:] | padded[:, :, :-1]
    edges_z = faces_x[:, 1:] | faces_x[:, :-1]
    edges_y = faces_x[:, :, 1:] | faces_x[:, :, :-1]
    edges_x = faces_y[:, :, 1:] | faces_y[:, :, :-1]
    vertices = edges_z[:, :, 1:] | edges_z[:, :, :-1]
    faces = sum(np.count_nonzero(f) for f in (faces_x, faces_y, faces_z))
    edges = sum(np.count_nonzero(e) for e in (edges_x, edges_y, edges_z))
    return int(np.count_nonzero(vertices) - edges + faces - np.count_nonzero(padded))


def _cavities(crop: _Crop | None) -> int:
    """Background components (6-connected) other than the outside one, which the zero border joins up."""
    if crop is None:
        return 0
    _, count = ndi.label(~crop.padded)
    return int(count) - 1


def _largest_fraction(sizes: NDArray[np.int64]) -> float:
    """Share of the foreground in the largest component; 0.0 without foreground (see module docstring)."""
    return float(sizes[0] / sizes.sum()) if sizes.size else 0.0


@dataclass(frozen=True)
class _Topology:
    """The topological counts of one mask."""

    component_sizes: NDArray[np.int64]
    euler: int
    cavities: int

    @property
    def betti(self) -> tuple[int, int, int]:
        b0 = len(self.component_sizes)
        return b0, b0 + self.cavities - self.euler, self.cavities

    @property
    def largest_fraction(self) -> float:
        return _largest_fraction(self.component_sizes)


def _topology(crop: _Crop | None) -> _Topology:
    return _Topology(_component_sizes(crop), _euler(crop), _cavities(crop))


@dataclass(frozen=True)
class _BoxedSkeleton:
    """A skeleton stored only inside its mask's bounding box (``box`` is None for an empty mask)."""

    box: _Box | None
    voxels: NDArray[np.bool_]

    def coverage(self, other: NDArray[np.bool_]) -> tuple[int, int]:
        """(skeleton voxels inside ``other``, skeleton voxels)."""
        if self.box is None:
            return 0, 0
        return int(np.count_nonzero(self.voxels & other[self.box])), int(np.count_nonzero(self.voxels))


def _deepest_voxels(labels: NDArray[np.int32], count: int, components: NDArray[np.intp]) -> NDArray[np.bool_]:
    """One voxel per listed component, as far from its surface as possible (where a centreline runs)."""
    selected = np.zeros(count + 1, dtype=bool)
    selected[components] = True
    region = selected[labels]
    box = _bounding_box(region)
    if box is None:
        return region
    depth = ndi.distance_transform_edt(np.pad(region[box], 1))
    positions = np.array(ndi.maximum_position(depth, np.pad(labels[box], 1), components), dtype=np.intp)
    positions += np.array([axis.start - 1 for axis in box])
    marked = np.zeros(labels.shape, dtype=bool)
    marked[tuple(positions.T)] = True
    return marked


def _skeleton(crop: _Crop | None) -> _BoxedSkeleton:
    """Lee thinning of the crop (thinning is local, so this equals thinning the volume), then every
    component that skimage thinned away entirely gets its deepest voxel back."""
    if crop is None:
        return _BoxedSkeleton(None, np.zeros((0, 0, 0), dtype=bool))
    voxels = skeletonize(crop.padded)
    labels, count = crop.labels
    lost = np.flatnonzero(np.bincount(labels[voxels], minlength=count + 1)[1:] == 0) + 1
    if lost.size:
        voxels |= _deepest_voxels(labels, count, lost)
    return _BoxedSkeleton(crop.box, voxels[1:-1, 1:-1, 1:-1])


def _overlap_scores(pred: NDArray[np.bool_], ref: NDArray[np.bool_]) -> dict[str, float]:
    """Dice, IoU, precision and recall from one pass of counting."""
    inter = int(np.count_nonzero(pred & ref))
    n_pred = int(np.count_nonzero(pred))
    n_ref = int(np.count_nonzero(ref))
    both_empty = n_pred == 0 and n_ref == 0
    return {
        "dice": _ratio(2 * inter, n_pred + n_ref, both_empty),
        "iou": _ratio(inter, n_pred + n_ref - inter, both_empty),
        "precision": _ratio(inter, n_pred, both_empty),
        "recall": _ratio(inter, n_ref, both_empty),
    }


def _cl_dice_scores(
    pred: NDArray[np.bool_],
    ref: NDArray[np.bool_],
    pred_skeleton: _BoxedSkeleton,
    ref_skeleton: _BoxedSkeleton,
) -> dict[str, float]:
    """clDice with its two terms, skeleton precision (Tprec) and skeleton recall (Tsens)."""
    both_empty = pred_skeleton.box is None and ref_skeleton.box is None
    t_prec = _ratio(*pred_skeleton.coverage(ref), both_empty)
    t_sens = _ratio(*ref_skeleton.coverage(pred), both_empty)
    return {
        "cl_dice": _harmonic_mean(t_prec, t_sens),
        "skeleton_precision": t_prec,
        "skeleton_recall": t_sens,
    }


def _measures(spacing: Sequence[float], tolerance_mm: float | None) -> tuple[NDArray[np.float64], float]:
    """Voxel sizes (mm, X Y Z) and the NSD tolerance (mm; None = the smallest voxel size), checked before
    any work is done: a bad value would turn every distance into nonsense."""
    sizes = np.asarray(spacing, dtype=np.float64)
    if sizes.shape != (3,) or not np.all(np.isfinite(sizes)) or np.any(sizes <= 0):
        raise ValueError(f"spacing must be three positive finite voxel sizes in mm, got {list(spacing)}")
    tolerance = float(sizes.min()) if tolerance_mm is None else float(tolerance_mm)
    if not math.isfinite(tolerance) or tolerance < 0:
        raise ValueError(f"the NSD tolerance must be a finite distance of at least 0 mm, got {tolerance}")
    return sizes, tolerance


def _surface(crop: _Crop | None) -> NDArray[np.intp]:
    """Surface voxel indices of a cropped mask; none for an empty one."""
    return np.zeros((0, 3), dtype=np.intp) if crop is None else crop.surface


def _directed_distances(
    points: NDArray[np.intp], targets: NDArray[np.intp], spacing: NDArray[np.float64]
) -> NDArray[np.float64]:
    """For each of ``points`` (voxel indices), the distance in mm to the nearest of ``targets``."""
    distances, _ = KDTree(targets * spacing).query(points * spacing)
    return np.asarray(distances, dtype=np.float64)


def _surface_scores(
    pred_surface: NDArray[np.intp],
    ref_surface: NDArray[np.intp],
    sizes: NDArray[np.float64],
    tolerance: float,
) -> dict[str, float]:
    """HD95, ASSD and NSD from the two surfaces' voxel indices (definitions in the module docstring)."""
    if len(pred_surface) == 0 and len(ref_surface) == 0:
        return {"hd95_mm": 0.0, "assd_mm": 0.0, "nsd": 1.0}
    if len(pred_surface) == 0 or len(ref_surface) == 0:
        return dict.fromkeys(("hd95_mm", "assd_mm", "nsd"), math.nan)
    forward = _directed_distances(pred_surface, ref_surface, sizes)
    backward = _directed_distances(ref_surface, pred_surface, sizes)
    within = tolerance * (1 + _TOLERANCE_SLACK)
    return {
        "hd95_mm": float(max(np.percentile(forward, 95), np.percentile(backward, 95))),
        "assd_mm": float((forward.sum() + backward.sum()) / (forward.size + backward.size)),
        "nsd": float(np.count_nonzero(forward <= within) + np.count_nonzero(backward <= within))
        / (forward.size + backward.size),
    }


def _mip_dice(pred: NDArray[np.bool_], ref: NDArray[np.bool_], axis: str) -> float:
    if axis not in _AXIS_INDEX:
        raise ValueError(f"unknown axis {axis!r}; expected one of {tuple(_AXIS_INDEX)}")
    index = _AXIS_INDEX[axis]
    return _overlap_scores(pred.any(axis=index), ref.any(axis=index))["dice"]


def dice(prediction: NDArray[Any], reference: NDArray[Any]) -> float:
    """2|P∩G| / (|P|+|G|): the standard overlap score, comparable with published results."""
    return _overlap_scores(*_as_pair(prediction, reference))["dice"]


def iou(prediction: NDArray[Any], reference: NDArray[Any]) -> float:
    """|P∩G| / |P∪G| (Jaccard): stricter than Dice for partial overlaps."""
    return _overlap_scores(*_as_pair(prediction, reference))["iou"]


def precision(prediction: NDArray[Any], reference: NDArray[Any]) -> float:
    """|P∩G| / |P|: how much of the prediction is vessel (penalises false positives)."""
    return _overlap_scores(*_as_pair(prediction, reference))["precision"]


def recall(prediction: NDArray[Any], reference: NDArray[Any]) -> float:
    """|P∩G| / |G|: how much of the vessel was found (penalises missed, often thin, vessels)."""
    return _overlap_scores(*_as_pair(prediction, reference))["recall"]


def skeleton(mask: NDArray[Any]) -> NDArray[np.bool_]:
    """3D skeleton used by clDice, exposed to inspect what clDice compares.

    Equals ``skimage.morphology.skeletonize`` of the whole volume (computed on the bounding box only, as
    thinning is local), except that a component skimage deletes entirely keeps its deepest voxel.
    """
    volume = _as_mask(mask, "mask")
    boxed = _skeleton(_crop(volume))
    out = np.zeros(volume.shape, dtype=bool)
    if boxed.box is not None:
        out[boxed.box] = boxed.voxels
    return out


def cl_dice(prediction: NDArray[Any], reference: NDArray[Any]) -> float:
    """Centreline Dice: harmonic mean of Tprec = |S(P)∩G|/|S(P)| and Tsens = |S(G)∩P|/|S(G)|.

    Every skeleton voxel counts the same whatever the vessel radius, so a break in a thin vessel costs as
    much as one in a thick vessel, unlike in voxel Dice.
    """
    pred, ref = _as_pair(prediction, reference)
    return _cl_dice_scores(pred, ref, _skeleton(_crop(pred)), _skeleton(_crop(ref)))["cl_dice"]


def euler_characteristic(mask: NDArray[Any]) -> int:
    """Euler characteristic with 26-connected foreground (equals ``euler_number(mask, connectivity=3)``).

    Needed for b1, which has no cheap direct count: b1 = b0 + b2 - χ.
    """
    return _euler(_crop(_as_mask(mask, "mask")))


def count_cavities(mask: NDArray[Any]) -> int:
    """Number of background regions fully enclosed by foreground (b2), e.g. 1 for a hollow sphere."""
    return _cavities(_crop(_as_mask(mask, "mask")))


def component_sizes(mask: NDArray[Any]) -> NDArray[np.int64]:
    """Voxel counts of the 26-connected components, largest first: fragmentation at a glance."""
    return _component_sizes(_crop(_as_mask(mask, "mask")))


def betti_numbers(mask: NDArray[Any]) -> tuple[int, int, int]:
    """(b0, b1, b2): pieces, independent loops, enclosed cavities.

    A broken vessel raises b0 and a spurious bridge closing a loop raises b1; Dice barely sees either.
    """
    return _topology(_crop(_as_mask(mask, "mask"))).betti


def largest_component_fraction(mask: NDArray[Any]) -> float:
    """Share of the foreground in the largest 26-connected component (1.0 = one connected tree).

    A cerebral vessel tree is essentially one piece, so a low value flags a fragmented prediction.
    """
    return _largest_fraction(component_sizes(mask))


def mip_dice(prediction: NDArray[Any], reference: NDArray[Any], axis: str) -> float:
    """Dice of the maximum intensity projections along volume axis ``axis`` ("x", "y" or "z").

    Radiologists read MRA as MIPs and SPOCKMIP trains on them, so agreement in projection is reported too.
    """
    return _mip_dice(*_as_pair(prediction, reference), axis)


def surface_scores(
    prediction: NDArray[Any],
    reference: NDArray[Any],
    spacing: Sequence[float] = UNIT_SPACING,
    tolerance_mm: float | None = None,
) -> dict[str, float]:
    """``hd95_mm``, ``assd_mm`` and ``nsd`` of a pair whose voxels measure ``spacing`` mm along (X, Y, Z).

    HD95 is the larger of the two directed 95th percentiles of surface distance (MONAI's definition);
    ASSD is the mean over both surfaces' voxels of the distance to the other surface; NSD is the share of
    both surfaces' voxels within ``tolerance_mm`` of the other surface (default: the smallest voxel size,
    so that a boundary one voxel off along the finest axis still counts as found).
    """
    pred, ref = _as_pair(prediction, reference)
    sizes, tolerance = _measures(spacing, tolerance_mm)
    return _surface_scores(_surface(_crop(pred)), _surface(_crop(ref)), sizes, tolerance)


@dataclass(frozen=True)
class _Analysis:
    """What the pair metrics need of one mask, all from a single crop and labelling."""

    skeleton: _BoxedSkeleton
    topology: _Topology
    surface: NDArray[np.intp]
    centreline: Centreline


def _centreline(
    crop: _Crop | None, skeleton: _BoxedSkeleton, shape: Sequence[int], spacing: Sequence[float]
) -> Centreline:
    if crop is None:
        return Centreline.empty()
    return Centreline.of(crop.padded, crop.box, shape, skeleton.voxels, spacing)


def _analyse(mask: NDArray[np.bool_], spacing: Sequence[float]) -> _Analysis:
    crop = _crop(mask)
    skeleton = _skeleton(crop)
    centreline = _centreline(crop, skeleton, mask.shape, spacing)
    return _Analysis(skeleton, _topology(crop), _surface(crop), centreline)


def reference_centreline(
    prediction: NDArray[Any],
    reference: NDArray[Any],
    spacing: Sequence[float] = UNIT_SPACING,
    radius_edges_mm: Sequence[float] | None = None,
) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.bool_]]:
    """The reference centre line as :func:`all_metrics` bins it: its voxels (N, 3), each one's radius bin
    (0 thin, 1 medium, 2 thick; :data:`RADIUS_BINS`) and whether the prediction covers it (a gap map)."""
    pred, ref = _as_pair(prediction, reference)
    sizes, _ = _measures(spacing, None)
    crop = _crop(ref)
    line = _centreline(crop, _skeleton(crop), ref.shape, sizes)
    bins = radius_bins(line.radii, radius_edges(sizes, radius_edges_mm))
    return line.points, bins, line.covered_by(pred)


def all_metrics(
    prediction: NDArray[Any],
    reference: NDArray[Any],
    spacing: Sequence[float] = UNIT_SPACING,
    nsd_tolerance_mm: float | None = None,
    radius_edges_mm: Sequence[float] | None = None,
) -> dict[str, float]:
    """Every metric of this module, keyed as in :data:`METRIC_KEYS` (stable CSV columns).

    ``spacing`` is the voxel size in mm along (X, Y, Z), ``nsd_tolerance_mm`` the NSD tolerance (see
    :func:`surface_scores`) and ``radius_edges_mm`` the two interior radius-bin edges of the continuity
    by radius (None: one and two times the smallest voxel size; :mod:`spockmip.evaluation.continuity`).
    Each mask is cropped to its bounding box, labelled once and skeletonised once, prediction and
    reference in parallel threads (skimage's thinning and numpy release the GIL).
    """
    pred, ref = _as_pair(prediction, reference)
    sizes, tolerance = _measures(spacing, nsd_tolerance_mm)
    edges = radius_edges(sizes, radius_edges_mm)
    with ThreadPoolExecutor(max_workers=2) as pool:
        pred_analysis, ref_analysis = pool.map(lambda mask: _analyse(mask, sizes), (pred, ref))
    pred_skeleton, pred_topology = pred_analysis.skeleton, pred_analysis.topology
    ref_skeleton, ref_topology = ref_analysis.skeleton, ref_analysis.topology
    pred_betti, ref_betti = pred_topology.betti, ref_topology.betti
    scores: dict[str, float] = {
        **_overlap_scores(pred, ref),
        **_cl_dice_scores(pred, ref, pred_skeleton, ref_skeleton),
        "betti0_prediction": pred_betti[0],
        "betti0_reference": ref_betti[0],
        "betti0_error": abs(pred_betti[0] - ref_betti[0]),
        "betti1_prediction": pred_betti[1],
        "betti1_reference": ref_betti[1],
        "betti1_error": abs(pred_betti[1] - ref_betti[1]),
        "n_components_prediction": len(pred_topology.component_sizes),
        "largest_component_fraction_prediction": pred_topology.largest_fraction,
        **{f"mip_dice_{axis}": _mip_dice(pred, ref, axis) for axis in _AXIS_INDEX},
        **_surface_scores(pred_analysis.surface, ref_analysis.surface, sizes, tolerance),
        **radius_scores(pred, ref, pred_analysis.centreline, ref_analysis.centreline, edges),
    }
    return {key: float(value) for key, value in scores.items()}
