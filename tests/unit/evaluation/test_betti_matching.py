"""Tests of spockmip.evaluation.betti_matching: known values, the checks of each call, the protocol.

The expected values of the cases below were computed with Betti-Matching-3D built from the authors'
repository (github.com/nstucki/Betti-Matching-3D), given the same border and corner voxel, and agree with
the module that topolosses ships.
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from import_helpers import heavy_modules_after
from numpy.typing import NDArray
from scipy import ndimage as ndi

from spockmip.errors import MetricError, SettingsError
from spockmip.evaluation import betti_matching as bm
from spockmip.evaluation import metrics

needs_extension = pytest.mark.skipif(
    not bm.betti_matching_available(),
    reason="needs the compiled Betti-Matching-3D that topolosses ships (the topology or test extra)",
)

SHAPE = (11, 11, 7)
WHOLE = bm.BettiMatchingProtocol()


def blank() -> NDArray[np.bool_]:
    return np.zeros(SHAPE, dtype=bool)


def cube(corner: tuple[int, int, int], size: int = 3) -> NDArray[np.bool_]:
    mask = blank()
    x, y, z = corner
    mask[x : x + size, y : y + size, z : z + size] = True
    return mask


def ring() -> NDArray[np.bool_]:
    """A square ring one voxel thick in the plane z = 3: one component, one loop."""
    mask = blank()
    mask[2:9, 2:9, 3] = True
    mask[3:8, 3:8, 3] = False
    return mask


def broken_ring() -> NDArray[np.bool_]:
    mask = ring()
    mask[5, 2, 3] = False
    return mask


def diagonal(length: int = 5) -> NDArray[np.bool_]:
    """Voxels (i, i, i): one 26-connected line, ``length`` separate voxels with 6-connectivity."""
    mask = blank()
    steps = np.arange(1, length + 1)
    mask[steps, steps, steps] = True
    return mask


def staircase(length: int = 5) -> NDArray[np.bool_]:
    """The diagonal with two voxels added per step, so that it is one 6-connected piece."""
    mask = diagonal(length)
    steps = np.arange(1, length)
    mask[steps + 1, steps, steps] = True
    mask[steps + 1, steps + 1, steps] = True
    return mask


def smooth_noise(seed: int, shape: tuple[int, int, int] = (14, 12, 10)) -> NDArray[np.float64]:
    """Smoothed noise: thresholded, a blob mask with many components, loops and a few cavities."""
    return ndi.gaussian_filter(np.random.default_rng(seed).standard_normal(shape), 1.2)


def noisy_pair(seed: int) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    field = smooth_noise(seed)
    return field > 0.05, field + 0.3 * smooth_noise(seed + 100) > 0.05


def errors(prediction: NDArray[Any], reference: NDArray[Any], **protocol: Any) -> list[float]:
    scores = bm.betti_matching_errors(prediction, reference, bm.BettiMatchingProtocol(**protocol))
    return [scores[key] for key in bm.BETTI_MATCHING_KEYS]


@needs_extension
@pytest.mark.parametrize(
    ("prediction", "reference", "expected"),
    [
        # The papers' example: the Betti numbers agree (Betti error 0) but the features do not.
        (cube((1, 1, 1)), cube((6, 6, 3)), [2, 0]),
        # The loop is lost; the broken ring still matches the ring as a component.
        (broken_ring(), ring(), [0, 1]),
        (ring() | cube((1, 1, 5), 2), ring() | cube((1, 1, 5), 2), [0, 0]),
        # Each mask's oldest component counts too: one missed vessel scores 1.
        (blank(), cube((4, 4, 2)), [1, 0]),
        (cube((4, 4, 2)), blank(), [1, 0]),
        (blank(), blank(), [0, 0]),
        # Overlapping copies are one component of the union, hence matched.
        (cube((3, 3, 2)), cube((4, 4, 2)), [0, 0]),
        # Five 6-separate voxels inside one piece: one matches it, four are left (26-connected: error 0).
        (diagonal(), staircase(), [4, 0]),
        (diagonal(), diagonal(), [0, 0]),
        (diagonal(), blank(), [5, 0]),
    ],
)
def test_errors_equal_the_authors_implementation_on_known_cases(
    prediction: NDArray[np.bool_], reference: NDArray[np.bool_], expected: list[int]
) -> None:
    assert errors(prediction, reference) == expected


@needs_extension
def test_the_spatial_mismatch_is_invisible_to_the_betti_error() -> None:
    """The reason for the metric: spockmip's Betti errors score the papers' example 0."""
    scores = metrics.all_metrics(cube((1, 1, 1)), cube((6, 6, 3)))
    assert (scores["betti0_error"], scores["betti1_error"]) == (0.0, 0.0)
    assert errors(cube((1, 1, 1)), cube((6, 6, 3)))[0] == 2


def shell() -> NDArray[np.bool_]:
    """A 3×3×3 block without its centre: one component enclosing one cavity."""
    mask = np.ones((3, 3, 3), dtype=bool)
    mask[1, 1, 1] = False
    return mask


def shell_without_corner() -> NDArray[np.bool_]:
    """The centre touches the removed corner at a vertex only: open with a 26-connected background."""
    mask = shell()
    mask[0, 0, 0] = False
    return mask


def pair(offset: tuple[int, int, int]) -> NDArray[np.bool_]:
    mask = np.zeros((4, 4, 4), dtype=bool)
    mask[1, 1, 1] = True
    mask[1 + offset[0], 1 + offset[1], 1 + offset[2]] = True
    return mask


def diamond() -> NDArray[np.bool_]:
    """Eight voxels around a centre, each touching the next at an edge only: a loop with 26-connectivity,
    eight separate voxels with 6-connectivity."""
    mask = np.zeros((5, 5, 3), dtype=bool)
    for x, y in [(0, 2), (1, 1), (2, 0), (3, 1), (4, 2), (3, 3), (2, 4), (1, 3)]:
        mask[x, y, 1] = True
    return mask


@pytest.mark.parametrize(
    ("mask", "expected", "expected_26"),
    [
        (pair((1, 0, 0)), (1, 0, 0), (1, 0, 0)),
        (pair((1, 1, 0)), (2, 0, 0), (1, 0, 0)),
        (pair((1, 1, 1)), (2, 0, 0), (1, 0, 0)),
        (ring(), (1, 1, 0), (1, 1, 0)),
        (diamond(), (8, 0, 0), (1, 1, 0)),
        (shell(), (1, 0, 1), (1, 0, 1)),
        (shell_without_corner(), (1, 0, 0), (1, 0, 1)),
        (blank(), (0, 0, 0), (0, 0, 0)),
    ],
)
def test_betti_numbers_use_6_connected_foreground_unlike_the_other_metrics(
    mask: NDArray[np.bool_], expected: tuple[int, int, int], expected_26: tuple[int, int, int]
) -> None:
    """Values verified with the authors' barcodes; spockmip.evaluation.metrics counts 26/6 instead."""
    assert bm.betti_numbers_6(mask) == expected
    assert metrics.betti_numbers(mask) == expected_26


@needs_extension
@pytest.mark.parametrize(("seed", "threshold"), [(0, 0.0), (1, 0.0), (2, 0.0), (5, -0.05)])
def test_betti_numbers_agree_with_the_implementations_barcode(seed: int, threshold: float) -> None:
    """The independent count the checks rely on, against the implementation's own barcode (of the mask
    with a zero border, whose oldest component the barcode leaves out); the last mask has a cavity."""
    mask = smooth_noise(seed) > threshold
    barcode = bm._extension().compute_barcode(np.where(np.pad(mask, 1), 0.0, 1.0))
    counts = tuple(len(np.asarray(births).reshape(-1, 3)) for births in barcode.birth_coordinates)
    b0, b1, b2 = bm.betti_numbers_6(mask)
    assert counts == (b0 - 1, b1, b2)
    assert b1 > 0 and b0 > 1


@needs_extension
@pytest.mark.parametrize("seed", [0, 4, 9])
def test_cropping_and_the_sentinel_leave_the_value_unchanged(seed: int) -> None:
    """The value equals one plain call on the whole volume with only the border and corner voxel that
    make every component count."""
    prediction, reference = noisy_pair(seed)
    prediction[:3] = False
    reference[:, -2:] = False

    def plain(mask: NDArray[np.bool_]) -> NDArray[np.float64]:
        framed = np.pad(mask, 1)
        framed[0, 0, 0] = True
        return np.where(framed, 0.0, 1.0)

    result = bm._extension().compute_matching(plain(prediction), plain(reference))
    expected = np.asarray(result.num_unmatched_input1) + np.asarray(result.num_unmatched_input2)
    assert errors(prediction, reference) == expected[:2].tolist()
    assert expected[0] > 0 and expected[1] > 0


def matching_call(
    prediction: NDArray[np.bool_], reference: NDArray[np.bool_]
) -> tuple[SimpleNamespace, tuple[NDArray[np.float64], NDArray[np.float64]], tuple[bm.Betti, bm.Betti]]:
    """One framed call, its result as a mutable copy, the inputs and the Betti numbers to expect."""
    inputs = (bm._prepared(prediction), bm._prepared(reference))
    result = bm._extension().compute_matching(*inputs)
    names = [name for name in dir(result) if name.startswith(("input", "num_"))]
    copy = SimpleNamespace(**{name: list(getattr(result, name)) for name in names})
    return copy, inputs, (bm._frame_betti(prediction), bm._frame_betti(reference))


@needs_extension
def test_a_complete_result_passes_the_check() -> None:
    result, inputs, expected = matching_call(broken_ring(), ring())
    bm._check(result, inputs, expected)


@needs_extension
def test_a_result_missing_pairs_is_refused() -> None:
    """What a worker that failed before reporting leaves: fewer pairs than the mask has features."""
    result, inputs, expected = matching_call(broken_ring() | cube((1, 1, 5), 2), ring())
    result.num_unmatched_input1[0] -= 1
    with pytest.raises(MetricError, match=r"reported \[2, 1, 0\] pairs .* for input 1, whose Betti numbers"):
        bm._check(result, inputs, expected)


@needs_extension
def test_a_result_whose_matches_were_dropped_is_refused() -> None:
    """What a failed comparison worker leaves: every loop unmatched, the totals unchanged."""
    result, inputs, expected = matching_call(ring(), ring())
    matched = result.num_matched[1]
    assert matched == 2  # the ring and the sentinel
    result.num_matched[1] = 0
    for side in (1, 2):
        getattr(result, f"num_unmatched_input{side}")[1] += matched
        for end in ("birth", "death"):
            own = getattr(result, f"input{side}_matched_{end}_coordinates")
            getattr(result, f"input{side}_unmatched_{end}_coordinates")[1] = own[1]
            own[1] = np.zeros((0, 3), dtype=np.int64)
    bm._check_counts(result, expected)
    with pytest.raises(MetricError, match="loop shared by both inputs is not matched"):
        bm._check(result, inputs, expected)


@needs_extension
def test_an_interval_other_than_0_1_is_refused() -> None:
    result, inputs, expected = matching_call(cube((3, 3, 2)), cube((4, 4, 2)))
    result.input2_matched_birth_coordinates[0] = result.input2_matched_death_coordinates[0]
    with pytest.raises(MetricError, match="matched dimension-0 interval of input 2 is not"):
        bm._check(result, inputs, expected)


@needs_extension
def test_running_out_of_memory_is_a_metric_error() -> None:
    class Exhausted:
        def compute_matching(self, *inputs: Any) -> None:
            raise MemoryError("std::bad_alloc")

    with pytest.raises(MetricError, match="out of memory on a box of"):
        bm._matching_errors(Exhausted(), cube((1, 1, 1)), ring())


def test_without_the_package_it_is_unavailable_and_a_call_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def missing(name: str) -> None:
        raise bm.importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(bm.importlib.metadata, "files", missing)
    assert bm._extension_path() is None
    monkeypatch.setattr(bm, "_extension", lambda: None)
    assert not bm.betti_matching_available()
    with pytest.raises(MetricError, match=r"pip install 'spockmip\[topology\]'"):
        bm.betti_matching_errors(ring(), ring())


@needs_extension
def test_the_module_loads_without_torch_torchvision_or_topolosses() -> None:
    statement = (
        "import numpy as np\n"
        "from spockmip.evaluation.betti_matching import betti_matching_errors\n"
        "mask = np.zeros((5, 5, 5)); mask[1:3, 1:3, 1:3] = 1\n"
        "assert betti_matching_errors(mask, np.zeros((5, 5, 5)))['betti_matching_error_0'] == 1.0"
    )
    assert heavy_modules_after(statement, heavy=("torch", "torchvision", "topolosses")) == []


@needs_extension
def test_scores_are_floats_under_the_stable_keys() -> None:
    scores = bm.betti_matching_errors(broken_ring(), ring())
    assert tuple(scores) == bm.BETTI_MATCHING_KEYS
    assert all(type(value) is float for value in scores.values())


def test_masks_of_different_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="does not match reference shape"):
        bm.betti_matching_errors(np.zeros((4, 4, 4)), np.zeros((4, 4, 5)))


def test_a_volume_within_the_bound_is_one_whole_region() -> None:
    reference = ring()
    protocol = bm.BettiMatchingProtocol(max_whole_voxels=reference.size, patch_size=(4, 4, 4))
    assert bm.scored_regions(reference, protocol) == [(slice(None), slice(None), slice(None))]


def test_patches_are_centred_on_label_voxels_drawn_by_the_seed() -> None:
    reference = ring()
    protocol = bm.BettiMatchingProtocol(max_whole_voxels=64, patch_size=(4, 4, 1), n_patches=5, seed=3)
    regions = bm.scored_regions(reference, protocol)
    assert len(regions) == 5
    assert regions == bm.scored_regions(reference.astype(np.uint8), protocol)
    assert regions != bm.scored_regions(reference, bm.BettiMatchingProtocol(64, (4, 4, 1), 5, seed=4))
    for region in regions:
        assert [s.stop - s.start for s in region] == [4, 4, 1]
        assert all(s.start >= 0 and s.stop <= n for s, n in zip(region, SHAPE, strict=True))
        assert reference[region].any()
    centres = {tuple((s.start + s.stop) // 2 for s in region) for region in regions}
    assert len(centres) == 5


def test_a_label_with_fewer_voxels_than_patches_gives_one_patch_per_voxel() -> None:
    reference = blank()
    reference[0, 0, 0] = reference[10, 10, 6] = True
    regions = bm.scored_regions(reference, bm.BettiMatchingProtocol(64, (4, 4, 4), n_patches=8))
    assert sorted(tuple(s.start for s in region) for region in regions) == [(0, 0, 0), (7, 7, 3)]


def test_an_empty_label_gets_patches_anywhere() -> None:
    regions = bm.scored_regions(blank(), bm.BettiMatchingProtocol(64, (4, 4, 4), n_patches=3, seed=1))
    assert len({tuple(s.start for s in region) for region in regions}) == 3


@needs_extension
def test_a_large_volume_scores_the_sum_over_its_patches() -> None:
    prediction, reference = noisy_pair(5)
    protocol = bm.BettiMatchingProtocol(max_whole_voxels=512, patch_size=(8, 8, 8), n_patches=3, seed=2)
    regions = bm.scored_regions(reference, protocol)
    per_patch = [errors(prediction[region], reference[region]) for region in regions]
    total = errors(prediction, reference, max_whole_voxels=512, patch_size=(8, 8, 8), n_patches=3, seed=2)
    assert total == np.sum(per_patch, axis=0).tolist()
    assert total != errors(prediction, reference)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"patch_size": (8, 8)}, "three positive integers"),
        ({"patch_size": (8, 0, 8)}, "three positive integers"),
        ({"n_patches": 0}, "at least 1"),
        ({"max_whole_voxels": 1000, "patch_size": (16, 16, 16)}, "more than max_whole_voxels"),
    ],
)
def test_an_unusable_protocol_is_refused(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        bm.BettiMatchingProtocol(**settings)


def test_the_description_names_the_bound_the_patches_and_the_seed() -> None:
    text = bm.BettiMatchingProtocol(max_whole_voxels=10**6, patch_size=(64, 64, 32), n_patches=4, seed=7)
    assert text.describe() == (
        "Betti matching error (6-connected foreground) on the whole volume up to 1,000,000 voxels, "
        "otherwise summed over 4 patches of 64×64×32 voxels centred on label voxels drawn with seed 7."
    )


def test_the_default_protocol_scores_the_demo_volume_whole_and_a_scan_in_patches() -> None:
    assert math.prod((64, 64, 48)) <= WHOLE.max_whole_voxels < math.prod((480, 640, 163))
    assert WHOLE.n_patches * math.prod(WHOLE.patch_size) < math.prod((480, 640, 163))
