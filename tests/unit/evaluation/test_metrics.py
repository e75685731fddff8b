"""Known-answer tests for spockmip.evaluation.metrics on small analytic volumes."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from import_helpers import heavy_modules_after
from numpy.typing import NDArray
from scipy import ndimage as ndi
from skimage.measure import euler_number
from skimage.morphology import skeletonize

from spockmip.evaluation import metrics
from spockmip.evaluation.scoring import ScoringSettings, evaluate, evaluate_pair, write_metrics
from spockmip.settings.catalogue import METRICS

Shape = tuple[int, int, int]

# Every score that is 1.0 for a perfect prediction.
PERFECT_SCORE_KEYS = (
    "dice",
    "iou",
    "precision",
    "recall",
    "cl_dice",
    "skeleton_precision",
    "skeleton_recall",
    "mip_dice_x",
    "mip_dice_y",
    "mip_dice_z",
)


def _centred(shape: Shape) -> list[NDArray[np.float64]]:
    """Open-grid voxel coordinates with the origin at the volume centre (a voxel centre for odd sizes:
    skimage's thinning deletes some even-width shapes, which a test below covers separately)."""
    return list(np.ogrid[tuple(slice(-(n - 1) / 2, (n + 1) / 2) for n in shape)])


def torus(shape: Shape = (33, 33, 15), major: float = 10.0, minor: float = 3.5) -> NDArray[np.bool_]:
    """Solid torus around the z axis: one piece, one loop."""
    x, y, z = _centred(shape)
    return (np.hypot(x, y) - major) ** 2 + z**2 <= minor**2


def tube(
    shape: Shape = (17, 17, 40), radius: float = 3.0, offset: tuple[float, float] = (0.0, 0.0)
) -> NDArray[np.bool_]:
    """Straight solid cylinder along z, through the whole volume."""
    x, y, _ = _centred(shape)
    disc = (x - offset[0]) ** 2 + (y - offset[1]) ** 2 <= radius**2
    return np.broadcast_to(disc, shape).copy()


def hollow_sphere(shape: Shape = (25, 25, 25), inner: float = 5.0, outer: float = 8.0) -> NDArray[np.bool_]:
    """Spherical shell: one piece enclosing one cavity."""
    x, y, z = _centred(shape)
    radius = np.sqrt(x**2 + y**2 + z**2)
    return (radius >= inner) & (radius <= outer)


def two_tubes(shape: Shape = (21, 17, 30)) -> NDArray[np.bool_]:
    """Two parallel cylinders three voxels apart: two pieces, no loop."""
    return tube(shape, 2.5, (-4.0, 0.0)) | tube(shape, 2.5, (4.0, 0.0))


def test_solid_torus_is_one_piece_with_one_loop() -> None:
    assert metrics.betti_numbers(torus()) == (1, 1, 0)


def test_two_disjoint_tori_have_two_pieces_and_two_loops() -> None:
    assert metrics.betti_numbers(np.concatenate([torus(), torus()], axis=0)) == (2, 2, 0)


def test_two_disjoint_tubes_are_two_components() -> None:
    mask = two_tubes()
    assert metrics.betti_numbers(mask) == (2, 0, 0)
    sizes = metrics.component_sizes(mask)
    assert sizes.tolist() == [mask.sum() // 2, mask.sum() // 2]
    assert metrics.largest_component_fraction(mask) == pytest.approx(0.5)


def test_bridges_between_two_tubes_close_a_loop() -> None:
    mask = two_tubes()
    mask[:, :, :3] = mask[:, :, -3:] = False
    mask[6:15, 7:10, 3:5] = mask[6:15, 7:10, -5:-3] = True
    assert metrics.betti_numbers(mask) == (1, 1, 0)


def test_hollow_sphere_encloses_one_cavity() -> None:
    mask = hollow_sphere()
    assert metrics.betti_numbers(mask) == (1, 0, 1)
    assert metrics.count_cavities(mask) == 1
    assert metrics.euler_characteristic(mask) == 2


def test_tube_cut_by_one_voxel_gap() -> None:
    uncut = tube()
    cut = uncut.copy()
    cut[:, :, 20] = False
    assert skeletonize(uncut).any()  # odd width: skimage's own skeleton, not the fallback voxel
    scores = metrics.all_metrics(cut, uncut)
    assert metrics.betti_numbers(cut) == (2, 0, 0)
    assert scores["n_components_prediction"] == 2
    assert scores["betti0_error"] == 1
    assert scores["cl_dice"] < 1.0
    assert scores["skeleton_precision"] == 1.0  # the cut tube lies inside the uncut one
    assert scores["skeleton_recall"] < 1.0  # the reference centreline crosses the gap
    assert metrics.cl_dice(cut, uncut) == scores["cl_dice"]


def test_identical_masks_score_perfectly() -> None:
    mask = torus()
    scores = metrics.all_metrics(mask, mask)
    assert {key: scores[key] for key in PERFECT_SCORE_KEYS} == dict.fromkeys(PERFECT_SCORE_KEYS, 1.0)
    assert scores["betti0_error"] == scores["betti1_error"] == 0.0
    assert (scores["betti0_prediction"], scores["betti1_prediction"]) == (1.0, 1.0)
    assert scores["n_components_prediction"] == 1.0
    assert scores["largest_component_fraction_prediction"] == 1.0


# What is not a score, and so improves in neither direction: the Betti numbers of one mask.
NOT_SCORES = {"betti0_prediction", "betti0_reference", "betti1_prediction", "betti1_reference"}


def test_every_column_the_evaluation_writes_is_presented_with_a_direction(tmp_path: Path) -> None:
    """A metric cannot reach the per-subject CSV without a header, a unit and a stated direction, and
    every metric a summary or box plot shows says which way is better."""
    for name, mask in (("prediction", two_tubes()), ("label", np.roll(two_tubes(), 1, axis=0))):
        nib.save(nib.Nifti1Image(mask.astype(np.uint8), np.eye(4)), tmp_path / f"{name}.nii.gz")
    prediction, label = tmp_path / "prediction.nii.gz", tmp_path / "label.nii.gz"
    write_metrics(evaluate(["s1"], [prediction], [label]), tmp_path / "metrics.csv")
    header = (tmp_path / "metrics.csv").read_text().splitlines()[0].split(",")
    assert header == ["subject", *evaluate_pair(prediction, label)]  # no computed metric is dropped
    assert header[1:] == list(metrics.METRIC_KEYS)
    presented = metrics.PRESENTATION.values()
    assert all(presentation.unit in ("%", "mm", "count") for presentation in presented)
    assert len({presentation.header for presentation in presented}) == len(presented)  # one column each
    undirected = {
        key for key, presentation in metrics.PRESENTATION.items() if presentation.higher_is_better is None
    }
    assert undirected == NOT_SCORES | {metrics.POSTPROCESSED + key for key in NOT_SCORES}
    assert {*METRICS, *metrics.BOXPLOT_METRICS} <= metrics.PRESENTATION.keys() - undirected


def test_importing_the_metrics_imports_neither_torch_nor_matplotlib() -> None:
    """Every parse of the Snakefile imports this module (the box-plot metrics)."""
    assert heavy_modules_after("import spockmip.evaluation.metrics") == []


def test_all_metrics_keys_are_stable_floats() -> None:
    scores = metrics.all_metrics(two_tubes(), two_tubes())
    assert tuple(scores) == metrics.METRIC_KEYS
    assert all(type(value) is float for value in scores.values())


@pytest.mark.parametrize(
    ("prediction", "reference", "expected"),
    [
        # overlap 1 of 2 and 2: Dice 2/4, IoU 1/3
        ([1, 1, 0, 0], [0, 1, 1, 0], {"dice": 0.5, "iou": 1 / 3, "precision": 0.5, "recall": 0.5}),
        # prediction inside reference: Dice 2/4, IoU 1/3, nothing false positive
        ([1, 0, 0, 0], [1, 1, 1, 0], {"dice": 0.5, "iou": 1 / 3, "precision": 1.0, "recall": 1 / 3}),
        ([1, 1, 0, 0], [0, 0, 1, 1], {"dice": 0.0, "iou": 0.0, "precision": 0.0, "recall": 0.0}),
    ],
)
def test_overlap_scores_by_hand(
    prediction: list[int], reference: list[int], expected: dict[str, float]
) -> None:
    pred = np.array(prediction, dtype=bool).reshape(1, 1, -1)
    ref = np.array(reference, dtype=bool).reshape(1, 1, -1)
    functions = {
        "dice": metrics.dice,
        "iou": metrics.iou,
        "precision": metrics.precision,
        "recall": metrics.recall,
    }
    for name, value in expected.items():
        assert functions[name](pred, ref) == pytest.approx(value)
        assert metrics.all_metrics(pred, ref)[name] == pytest.approx(value)


def test_mip_dice_compares_projections() -> None:
    prediction = np.zeros((4, 5, 7), dtype=bool)
    reference = np.zeros_like(prediction)
    prediction[2, 3, 1] = reference[2, 3, 5] = True  # same (x, y), different depth z
    assert metrics.dice(prediction, reference) == 0.0
    assert metrics.mip_dice(prediction, reference, "z") == 1.0
    assert metrics.mip_dice(prediction, reference, "x") == 0.0
    assert metrics.mip_dice(prediction, reference, "y") == 0.0
    with pytest.raises(ValueError, match="unknown axis"):
        metrics.mip_dice(prediction, reference, "t")


def test_both_empty_is_perfect_agreement() -> None:
    empty = np.zeros((8, 9, 10), dtype=bool)
    scores = metrics.all_metrics(empty, empty)
    assert {key: scores[key] for key in PERFECT_SCORE_KEYS} == dict.fromkeys(PERFECT_SCORE_KEYS, 1.0)
    for key in ("betti0_prediction", "betti0_reference", "betti0_error", "betti1_prediction", "betti1_error"):
        assert scores[key] == 0.0
    assert scores["n_components_prediction"] == 0.0
    assert scores["largest_component_fraction_prediction"] == 0.0
    assert metrics.cl_dice(empty, empty) == 1.0


def test_empty_prediction_scores_zero() -> None:
    reference = tube()
    scores = metrics.all_metrics(np.zeros_like(reference), reference)
    assert {key: scores[key] for key in PERFECT_SCORE_KEYS} == dict.fromkeys(PERFECT_SCORE_KEYS, 0.0)
    assert scores["betti0_prediction"] == 0.0
    assert scores["betti0_reference"] == scores["betti0_error"] == 1.0
    assert scores["n_components_prediction"] == 0.0
    assert scores["largest_component_fraction_prediction"] == 0.0


def test_empty_reference_scores_zero() -> None:
    prediction = tube()
    scores = metrics.all_metrics(prediction, np.zeros_like(prediction))
    assert {key: scores[key] for key in PERFECT_SCORE_KEYS} == dict.fromkeys(PERFECT_SCORE_KEYS, 0.0)
    assert scores["betti0_error"] == 1.0
    assert scores["largest_component_fraction_prediction"] == 1.0


def test_empty_mask_topology_is_zero() -> None:
    empty = np.zeros((5, 6, 7), dtype=np.uint8)
    assert metrics.betti_numbers(empty) == (0, 0, 0)
    assert metrics.euler_characteristic(empty) == 0
    assert metrics.count_cavities(empty) == 0
    assert metrics.component_sizes(empty).size == 0
    assert metrics.largest_component_fraction(empty) == 0.0
    assert not metrics.skeleton(empty).any()


def test_rejects_mismatched_shapes_naming_both() -> None:
    a, b = np.zeros((2, 3, 4), dtype=bool), np.zeros((2, 3, 5), dtype=bool)
    for function in (metrics.all_metrics, metrics.dice, metrics.cl_dice):
        with pytest.raises(ValueError, match=r"\(2, 3, 4\).*\(2, 3, 5\)"):
            function(a, b)


def test_rejects_non_3d_volumes() -> None:
    with pytest.raises(ValueError, match=r"3D.*\(4, 4\)"):
        metrics.betti_numbers(np.zeros((4, 4), dtype=bool))


def test_uint8_masks_score_like_bool() -> None:
    prediction, reference = torus(), torus(minor=3.0)
    expected = metrics.all_metrics(prediction, reference)
    assert metrics.all_metrics(prediction.astype(np.uint8), reference.astype(np.uint8) * 255) == expected


@pytest.mark.parametrize("seed", range(20))
def test_euler_characteristic_matches_skimage(seed: int) -> None:
    rng = np.random.default_rng(seed)
    mask = rng.random(tuple(rng.integers(1, 13, size=3))) < rng.uniform(0.1, 0.9)
    assert metrics.euler_characteristic(mask) == euler_number(mask, connectivity=3)


def test_cropped_skeleton_equals_full_volume_skeleton() -> None:
    mask = np.zeros((50, 45, 40), dtype=bool)
    mask[10:43, 12:45, 0:15] = torus()  # off-centre, touching two faces
    mask[2:19, 0:17, 20:40] |= tube((17, 17, 20))
    assert metrics.betti_numbers(mask) == (2, 1, 0)
    np.testing.assert_array_equal(metrics.skeleton(mask), skeletonize(mask))


def test_components_that_skimage_thins_away_keep_a_skeleton_voxel() -> None:
    bar = np.zeros((10, 10, 30), dtype=bool)
    bar[3:7, 3:7, 2:28] = True  # even width: skimage's skeletonize returns nothing (scikit-image #3757)
    blob = np.zeros_like(bar)
    blob[0:2, 0:2, 0:2] = True  # a 2x2x2 false positive, also thinned away entirely by skimage
    assert not skeletonize(bar | blob).any()
    skel = metrics.skeleton(bar | blob)
    assert skel.sum() == 2
    assert (skel & bar).sum() == 1 and (skel & blob).sum() == 1
    assert metrics.cl_dice(bar, bar) == 1.0
    assert metrics.all_metrics(bar | blob, bar)["skeleton_precision"] == 0.5


# Surface metrics ------------------------------------------------------------------------------------------

SPACING = (0.3, 0.45, 0.8)  # anisotropic, as TOF-MRA slabs are (thicker slices)
SURFACE_KEYS = ("hd95_mm", "assd_mm", "nsd")


def ball_mm(radius_mm: float, shape: Shape = (61, 41, 25), spacing: Sequence[float] = SPACING) -> NDArray:
    """Ball of radius ``radius_mm`` in physical space around the volume centre (an ellipsoid in voxels)."""
    x, y, z = (axis * size for axis, size in zip(_centred(shape), spacing, strict=True))
    return x**2 + y**2 + z**2 <= radius_mm**2


def test_concentric_balls_are_their_radial_gap_apart() -> None:
    inner_mm, gap_mm, voxel_mm = 4.0, 2.4, max(SPACING)
    inner, outer = ball_mm(inner_mm), ball_mm(inner_mm + gap_mm)
    scores = metrics.surface_scores(inner, outer, SPACING)
    assert scores["hd95_mm"] == pytest.approx(gap_mm, abs=voxel_mm)
    assert scores["assd_mm"] == pytest.approx(gap_mm, abs=voxel_mm)
    assert metrics.surface_scores(inner, outer, SPACING, gap_mm + voxel_mm)["nsd"] == 1.0
    assert metrics.surface_scores(inner, outer, SPACING, gap_mm / 4)["nsd"] < 0.05
    # The same pair in voxel units (unit spacing) is a different, wrong, answer: spacing is honoured.
    assert metrics.surface_scores(inner, outer)["assd_mm"] > 1.5 * scores["assd_mm"]


def test_identical_masks_are_zero_mm_apart() -> None:
    mask = ball_mm(3.0)
    assert metrics.surface_scores(mask, mask, SPACING) == {"hd95_mm": 0.0, "assd_mm": 0.0, "nsd": 1.0}


def test_a_boundary_one_finest_voxel_off_matches_under_the_default_tolerance() -> None:
    """Distances exactly tau away (here 0.3 mm, which 10 * 0.3 - 9 * 0.3 misses by rounding) count."""
    reference = np.zeros((14, 12, 12), dtype=bool)
    reference[2:10, 2:10, 2:10] = True
    shifted = np.roll(reference, 1, axis=0)
    assert metrics.surface_scores(shifted, reference, SPACING)["nsd"] == 1.0
    assert metrics.surface_scores(shifted, reference, SPACING, 0.29)["nsd"] < 1.0


def test_surface_of_empty_masks() -> None:
    empty, mask = np.zeros((9, 9, 9), dtype=bool), ball_mm(1.0, (9, 9, 9))
    assert metrics.surface_scores(empty, empty, SPACING) == {"hd95_mm": 0.0, "assd_mm": 0.0, "nsd": 1.0}
    for prediction, reference in ((empty, mask), (mask, empty)):
        scores = metrics.all_metrics(prediction, reference, SPACING)
        assert all(math.isnan(scores[key]) for key in SURFACE_KEYS)
    assert {key: metrics.all_metrics(empty, empty)[key] for key in SURFACE_KEYS} == {
        "hd95_mm": 0.0,
        "assd_mm": 0.0,
        "nsd": 1.0,
    }


def test_all_metrics_carries_the_surface_scores() -> None:
    prediction, reference = torus(), torus(minor=3.0)
    expected = metrics.surface_scores(prediction, reference, SPACING, 0.5)
    scores = metrics.all_metrics(prediction, reference, SPACING, nsd_tolerance_mm=0.5)
    assert {key: scores[key] for key in SURFACE_KEYS} == expected


@pytest.mark.parametrize(
    ("spacing", "tolerance"), [((1.0, 1.0, 2.0), -0.1), ((1.0, 0.0, 1.0), None), ((1.0, 1.0), None)]
)
def test_bad_spacing_or_tolerance_is_refused(spacing: tuple[float, ...], tolerance: float | None) -> None:
    mask = ball_mm(1.0, (9, 9, 9))
    with pytest.raises(ValueError, match=r"spacing|tolerance"):
        metrics.all_metrics(mask, mask, spacing, tolerance)


def _blobs(seed: int, shape: Shape = (40, 34, 22)) -> NDArray[np.bool_]:
    """Smoothed noise thresholded: several irregular pieces with holes and thin parts."""
    noise = np.random.default_rng(seed).normal(size=shape)
    return ndi.gaussian_filter(noise, 2.0) > 0.08


@pytest.mark.parametrize("seed", range(4))
def test_surface_scores_match_monai(seed: int) -> None:
    """MONAI defines HD95 as we do (the larger directed 95th percentile), ASSD as the mean over both
    surfaces, and NSD (without sub-voxel areas) as the share of both surfaces' voxels within tau."""
    torch = pytest.importorskip("torch")
    monai_metrics = pytest.importorskip("monai.metrics")
    prediction, reference = _blobs(seed), _blobs(seed + 100)
    spacing, tolerance = (0.3, 0.45, 0.8) if seed % 2 else (0.7, 0.5, 0.35), 0.77
    ours = metrics.surface_scores(prediction, reference, spacing, tolerance)

    def batch(mask: NDArray[np.bool_]) -> object:
        return torch.from_numpy(mask[None, None].astype(np.float32))

    pred, ref = batch(prediction), batch(reference)
    hd95 = monai_metrics.compute_hausdorff_distance(
        pred, ref, include_background=True, percentile=95, spacing=spacing
    )
    assd = monai_metrics.compute_average_surface_distance(
        pred, ref, include_background=True, symmetric=True, spacing=spacing
    )
    nsd = monai_metrics.compute_surface_dice(
        pred, ref, [tolerance], include_background=True, spacing=spacing, use_subvoxels=False
    )
    assert ours["hd95_mm"] == pytest.approx(float(hd95), rel=1e-5)
    assert ours["assd_mm"] == pytest.approx(float(assd), rel=1e-5)
    assert ours["nsd"] == pytest.approx(float(nsd), rel=1e-6)


def test_evaluation_measures_in_the_label_files_voxel_size(tmp_path: Path) -> None:
    """The spacing comes from the file's affine and follows the axes when the volume is reoriented."""
    inner, outer = ball_mm(4.0), ball_mm(6.4)
    # Stored order with the axes permuted and one flipped (not RAS): canonical reorders them.
    affine = np.array([[0, 0, -SPACING[2], 0], [SPACING[0], 0, 0, 0], [0, SPACING[1], 0, 0], [0, 0, 0, 1]])
    for name, mask in (("prediction", inner), ("label", outer)):
        nib.save(nib.Nifti1Image(mask.astype(np.uint8), affine), tmp_path / f"{name}.nii.gz")
    expected = metrics.surface_scores(inner, outer, SPACING, 1.0)
    for orientation in ("stored", "canonical"):
        scores = evaluate_pair(
            tmp_path / "prediction.nii.gz", tmp_path / "label.nii.gz", orientation, ScoringSettings(1.0)
        )
        for key, value in expected.items():
            assert scores[key] == pytest.approx(value), (orientation, key)
