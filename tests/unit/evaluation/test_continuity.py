"""Continuity by vessel radius on constructed tubes and on the phantoms (spockmip.evaluation.continuity)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import yaml
from numpy.typing import NDArray
from paths import ROOT
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

from spockmip.datasets.synthetic import THIN_RADIUS_VOX, generate_phantom, subject_seed
from spockmip.evaluation import metrics
from spockmip.evaluation.continuity import (
    CONTINUITY_KEYS,
    RADIUS_BINS,
    Centreline,
    radius_bins,
    radius_edges,
)
from spockmip.stages.synthesize import phantom_config

LENGTH = 40
# Tube radius R (voxels) -> the bin its centre line falls in: voxel centres within < R voxels of the axis,
# so R = 1 is a line (radius one voxel), R = 2 a 3x3 bar (two voxels), R = 4 a disk (four voxels).
TUBES = {1: "thin", 2: "medium", 4: "thick"}
# Anisotropic as MRA is: two fine axes and one coarse, so every tube's cross-section spans a fine axis (the
# bins are in units of the finest voxel size; a line along the only fine axis would be measured across
# coarser ones, and so be wider than one finest voxel).
SPACINGS = [(1.0, 1.0, 1.0), (0.5, 0.5, 1.0), (0.3, 0.6, 0.3)]


def tubes(axis: int) -> tuple[NDArray[np.bool_], dict[int, tuple[int, int]]]:
    """Three parallel straight tubes of radius 1, 2 and 4 voxels along ``axis``, far apart, through the
    whole volume (no end caps, whose voxels would be thinner); with each tube's axis position across the
    other two axes."""
    across = (11, 31, 53)
    shape = [64, 64, 64]
    shape[axis] = LENGTH
    grid = np.indices(shape)
    others = [a for a in range(3) if a != axis]
    inside = np.ones(shape, dtype=bool)
    volume = np.zeros(shape, dtype=bool)
    centres = {}
    for (radius, _), position in zip(TUBES.items(), across, strict=True):
        distance2 = (grid[others[0]] - position) ** 2 + (grid[others[1]] - 32) ** 2
        volume |= inside & (distance2 < radius**2)
        centres[radius] = (position, 32)
    return volume, centres


def _axis_voxel(axis: int, along: int, centre: tuple[int, int]) -> tuple[int, int, int]:
    index = [0, 0, 0]
    others = [a for a in range(3) if a != axis]
    index[axis], index[others[0]], index[others[1]] = along, *centre
    return tuple(index)


def _scores(prediction: NDArray[np.bool_], reference: NDArray[np.bool_], spacing) -> dict[str, float]:
    scores = metrics.all_metrics(prediction, reference, spacing)
    return {key: scores[key] for key in CONTINUITY_KEYS}


@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_a_perfect_prediction_recalls_every_bin_without_gaps(axis: int, spacing) -> None:
    reference, _ = tubes(axis)
    scores = _scores(reference, reference, spacing)
    for name in RADIUS_BINS:
        assert scores[f"{name}_recall"] == 1.0
        assert scores[f"{name}_precision"] == 1.0
        assert scores[f"{name}_gaps"] == 0


@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("cuts", [1, 3])
def test_each_cut_through_the_thin_tube_is_one_thin_gap_and_leaves_the_other_bins(
    axis: int, spacing, cuts: int
) -> None:
    reference, centres = tubes(axis)
    prediction = reference.copy()
    for along in np.linspace(8, LENGTH - 9, cuts).astype(int):
        prediction[_axis_voxel(axis, int(along), centres[1])] = False
    perfect, cut = _scores(reference, reference, spacing), _scores(prediction, reference, spacing)
    assert cut["thin_gaps"] == cuts
    assert cut["thin_recall"] < 1.0
    for name in ("medium", "thick"):
        for measure in ("recall", "precision", "gaps"):
            assert cut[f"{name}_{measure}"] == perfect[f"{name}_{measure}"]


@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_deleting_the_thin_tube_leaves_no_thin_recall_and_one_gap(axis: int, spacing) -> None:
    reference, centres = tubes(axis)
    prediction = reference.copy()
    others = [a for a in range(3) if a != axis]
    thin = np.zeros_like(reference)
    index: list[object] = [slice(None)] * 3
    index[others[0]], index[others[1]] = centres[1]
    thin[tuple(index)] = True
    prediction &= ~thin
    scores = _scores(prediction, reference, spacing)
    assert scores["thin_recall"] == 0.0
    assert scores["thin_gaps"] == 1
    assert scores["medium_gaps"] == scores["thick_gaps"] == 0


def test_an_empty_bin_has_undefined_recall_and_precision_and_no_gaps() -> None:
    reference = np.zeros((20, 20, 30), dtype=bool)
    reference[10, 10, 3:27] = True
    scores = _scores(reference, reference, (1.0, 1.0, 1.0))
    assert scores["thin_recall"] == 1.0
    assert math.isnan(scores["thick_recall"]) and math.isnan(scores["thick_precision"])
    assert scores["thick_gaps"] == 0
    empty = _scores(np.zeros_like(reference), reference, (1.0, 1.0, 1.0))
    assert empty["thin_recall"] == 0.0 and math.isnan(empty["thin_precision"])


def test_a_radius_on_an_edge_falls_in_the_bin_below_even_when_rounded_up() -> None:
    edges = radius_edges((0.3, 0.3, 0.3))
    assert edges == pytest.approx((0.3, 0.6))
    radii = np.array([0.3, 0.3 * (1 + 1e-12), 0.3 * (1 + 1e-6), 0.6, 0.61, 0.0])
    assert radius_bins(radii, edges).tolist() == [0, 0, 1, 1, 2, 0]


def test_bin_edges_given_in_mm_are_checked() -> None:
    assert radius_edges((1.0, 1.0, 1.0), [0.5, 1.5]) == (0.5, 1.5)
    for bad in ([1.0], [2.0, 1.0], [0.0, 1.0], [1.0, math.inf]):
        with pytest.raises(ValueError, match="radius bin edges"):
            radius_edges((1.0, 1.0, 1.0), bad)


def _perturbed(label: NDArray[np.bool_], seed: int) -> NDArray[np.bool_]:
    """A prediction with scattered misses and additions, as a network's would have."""
    rng = np.random.default_rng(seed)
    prediction = label.copy()
    prediction[rng.random(label.shape) < 0.05] = False
    prediction[rng.random(label.shape) < 0.002] = True
    return prediction


DEMO = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["dataset"]["synthetic"]


@pytest.mark.parametrize("index", range(DEMO["n_subjects"]))
def test_on_every_demo_subject_the_bins_split_cldice_skeleton_recall(index: int) -> None:
    phantom = generate_phantom(subject_seed(DEMO["seed"], index), phantom_config(DEMO))
    spacing = phantom.config.spacing_mm
    prediction = _perturbed(phantom.label, index)
    scores = metrics.all_metrics(prediction, phantom.label, spacing)
    _, bins, covered = metrics.reference_centreline(prediction, phantom.label, spacing)
    counts = np.bincount(bins, minlength=3)
    recalled = sum(scores[f"{name}_recall"] * counts[i] for i, name in enumerate(RADIUS_BINS) if counts[i])
    assert recalled / counts.sum() == pytest.approx(scores["skeleton_recall"], rel=1e-12)
    assert covered.mean() == pytest.approx(scores["skeleton_recall"], rel=1e-12)


@pytest.mark.parametrize("seed", [2020, 2021, 2022])
def test_the_thin_bin_holds_the_generators_thin_vessels_on_the_default_phantoms(seed: int) -> None:
    """The generator's own radius (of the nearest centre-line point) says which skeleton voxels are
    thin; at least 75 % of them must be in the thin bin."""
    phantom = generate_phantom(seed)
    points, bins, _ = metrics.reference_centreline(phantom.label, phantom.label, phantom.config.spacing_mm)
    _, nearest = cKDTree(phantom.centreline).query(points)
    thin = phantom.radii[nearest] < THIN_RADIUS_VOX
    assert thin.any()
    assert np.mean(bins[thin] == 0) >= 0.75


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_a_vessel_leaving_the_volume_keeps_its_radius_up_to_the_edge(axis: int) -> None:
    reference, centres = tubes(axis)
    points, bins, _ = metrics.reference_centreline(reference, reference, (1.0, 1.0, 1.0))
    others = [a for a in range(3) if a != axis]
    for radius, name in TUBES.items():
        on_axis = np.all(points[:, others] == centres[radius], axis=1)
        assert on_axis.sum() > LENGTH // 2
        assert set(bins[on_axis].tolist()) == {RADIUS_BINS.index(name)}
    assert set(metrics.reference_centreline(np.ones((5, 5, 5)), np.ones((5, 5, 5)))[1].tolist()) == {2}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_each_radius_is_the_masks_distance_transform_at_that_voxel(seed: int) -> None:
    """The radii come from a k-d tree over the background voxels next to the mask; they must equal the
    Euclidean distance transform (the outside of the volume counting as foreground)."""
    rng = np.random.default_rng(seed)
    mask = ndi.binary_opening(rng.random((30, 26, 22)) < 0.7)
    spacing = (0.3, 0.45, 0.8)
    whole = tuple(slice(0, n) for n in mask.shape)
    line = Centreline.of(np.pad(mask, 1), whole, mask.shape, metrics.skeleton(mask), spacing)
    assert len(line.points) > 20
    outside_foreground = np.pad(mask, 1, constant_values=True)
    depth = ndi.distance_transform_edt(outside_foreground, sampling=spacing)[1:-1, 1:-1, 1:-1]
    np.testing.assert_allclose(line.radii, depth[tuple(line.points.T)], rtol=1e-12)
