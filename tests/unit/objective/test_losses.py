"""Focal Tversky, deep supervision and MIP loss: hand-computed values and the axis convention."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from spockmip.axes import to_network, to_volume
from spockmip.objective.losses import (
    LossConfig,
    focal_tversky,
    level_probabilities,
    mip_loss,
    segmentation_loss,
)
from spockmip.objective.mip import (
    PAD_VALUE,
    crop_mip,
    network_patch_mip,
    projection_axes,
    released_patch_mips,
    volume_mips,
)

CONFIDENT = 30.0  # logit whose sigmoid is 1 to within 1e-13


def test_focal_tversky_matches_a_hand_computation() -> None:
    p = torch.tensor([0.9, 0.2, 0.6, 0.0])
    g = torch.tensor([1.0, 1.0, 0.0, 0.0])
    tp, fn, fp = 0.9 + 0.2, 0.1 + 0.8, 0.6
    ti = (tp + 1) / (tp + 0.7 * fn + 0.3 * fp + 1)
    assert focal_tversky(p, g).item() == pytest.approx((1 - ti) ** 0.75, rel=1e-6)
    ti_custom = (tp + 0.5) / (tp + 0.4 * fn + 0.6 * fp + 0.5)
    value = focal_tversky(p, g, alpha=0.4, gamma=2.0, smooth=0.5).item()
    assert value == pytest.approx((1 - ti_custom) ** 2, rel=1e-6)


def test_focal_tversky_per_sample_averages_per_element_losses() -> None:
    p = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    g = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    first = 0.0
    second = (1 - 1 / (0.7 * 2 + 1)) ** 0.75
    assert focal_tversky(p, g, per_sample=True).item() == pytest.approx((first + second) / 2, rel=1e-6)
    pooled = (1 - 2 / (1 + 0.7 * 2 + 1)) ** 0.75
    assert focal_tversky(p, g).item() == pytest.approx(pooled, rel=1e-6)


def test_focal_tversky_is_zero_for_a_perfect_prediction_and_rejects_shape_mismatch() -> None:
    g = (torch.rand(2, 1, 8, 8, 8) > 0.7).float()
    assert focal_tversky(g, g).item() == 0.0
    with pytest.raises(ValueError, match="differ"):
        focal_tversky(g, g[:, :, :4])


def test_side_outputs_are_upsampled_to_the_patch_size_whatever_it_is() -> None:
    outputs = [torch.zeros(1, 1, 32, 16, 48), torch.zeros(1, 1, 16, 8, 24), torch.zeros(1, 1, 8, 4, 12)]
    probabilities = level_probabilities(outputs, (32, 16, 48))
    assert [tuple(p.shape) for p in probabilities] == [(1, 1, 32, 16, 48)] * 3
    assert all(torch.all(p == 0.5) for p in probabilities)


def test_deep_supervision_weights_levels_1_066_034() -> None:
    label = torch.zeros(1, 1, 16, 16, 16)
    label[..., 4:12, 4:12, 4:12] = 1
    perfect = (label * 2 - 1) * CONFIDENT
    wrong_small = torch.full((1, 1, 8, 8, 8), -CONFIDENT)
    perfect_small = (label[..., ::2, ::2, ::2] * 2 - 1) * CONFIDENT
    ftl_all_wrong = focal_tversky(torch.zeros_like(label), label).item()
    terms = segmentation_loss([perfect, wrong_small, perfect_small], label, LossConfig(baseline_scale="unit"))
    assert terms.total.item() == pytest.approx(0.66 * ftl_all_wrong, rel=1e-5)


def test_released_baseline_back_propagates_seven_tenths_of_floss() -> None:
    """Without a MIP term the released total is 0.7·floss (the 0.001 start values shift, never steer)."""
    label = (torch.rand(2, 1, 16, 16, 16, generator=torch.Generator().manual_seed(1)) > 0.8).float()
    logits = torch.randn(2, 1, 16, 16, 16, generator=torch.Generator().manual_seed(2))
    released = segmentation_loss([logits], label, LossConfig())
    unit = segmentation_loss([logits], label, LossConfig(baseline_scale="unit"))
    assert released.segmentation.item() == pytest.approx(unit.segmentation.item())
    assert released.total.item() == pytest.approx(0.7 * unit.total.item(), rel=1e-6)
    with_mip = LossConfig(mip_axis="z", mip_target="patch", baseline_scale="unit")
    assert segmentation_loss([logits], label, with_mip).total.item() == pytest.approx(
        segmentation_loss([logits], label, replace(with_mip, baseline_scale="released")).total.item()
    )


def _volume_with_vessels() -> np.ndarray:
    """An (X, Y, Z) label with three straight vessels, one along each axis, plus one oblique one."""
    label = np.zeros((24, 20, 16), dtype=np.float32)
    label[:, 5, 7] = 1  # along x
    label[3, :, 11] = 1  # along y
    label[17, 14, :] = 1  # along z
    idx = np.arange(16)
    label[idx + 2, idx // 2 + 1, idx] = 1
    return label


def _patch_inputs(label: np.ndarray, start: tuple[int, int, int], size: tuple[int, int, int], axes):
    region = tuple(slice(s, s + n) for s, n in zip(start, size, strict=True))
    patch = torch.from_numpy(label[region].copy())[None, None]
    mips = volume_mips(label, axes)
    targets = {a: torch.from_numpy(crop_mip(mips[a], a, start, size))[None, None] for a in axes}
    return to_network(patch), targets


@pytest.mark.parametrize("mip_axis", ["x", "y", "z", "multi"])
def test_perfect_prediction_of_a_patch_spanning_the_projection_axis_has_zero_mip_loss(mip_axis: str) -> None:
    """The patch covers the whole volume along every projected axis, and only part of the others."""
    label = _volume_with_vessels()
    config = LossConfig(mip_axis=mip_axis, mip_pairing="consistent")
    start, size = [4, 2, 3], [16, 16, 12]
    for axis in config.axes:
        start["xyz".index(axis)] = 0
        size["xyz".index(axis)] = label.shape["xyz".index(axis)]
    patch, targets = _patch_inputs(label, tuple(start), tuple(size), config.axes)
    logits = (patch * 2 - 1) * CONFIDENT
    terms = segmentation_loss([logits], patch, config, targets)
    assert terms.mip.item() < 1e-3
    assert terms.segmentation.item() < 1e-3


def test_missing_vessel_costs_mip_loss_and_gradients_reach_the_logits() -> None:
    label = _volume_with_vessels()
    patch, targets = _patch_inputs(label, (0, 0, 0), label.shape, ("x", "y", "z"))
    config = LossConfig(mip_axis="multi", mip_pairing="consistent")
    logits = ((patch * 2 - 1) * CONFIDENT).requires_grad_(True)
    perfect = segmentation_loss([logits], patch, config, targets)
    without_x_vessel = logits.detach().clone()
    volume_x_vessel = torch.zeros_like(torch.from_numpy(label))
    volume_x_vessel[:, 5, 7] = 1
    without_x_vessel[to_network(volume_x_vessel[None, None]) > 0] = -CONFIDENT
    worse = segmentation_loss([without_x_vessel], patch, config, targets)
    assert worse.mip.item() > perfect.mip.item() + 0.05
    assert worse.total.item() > perfect.total.item()

    soft = torch.zeros_like(patch, requires_grad=True)
    segmentation_loss([soft], patch, config, targets).total.backward()
    assert soft.grad is not None and soft.grad.abs().sum() > 0
    mip_only = torch.zeros_like(patch, requires_grad=True)
    probabilities = level_probabilities([mip_only], patch.shape[2:])
    mip_loss(probabilities, targets, config).backward()
    assert mip_only.grad is not None and mip_only.grad.abs().sum() > 0


@pytest.mark.parametrize(("axis", "array_axis"), [("x", 0), ("y", 1), ("z", 2)])
def test_each_axis_name_projects_over_the_array_axis_it_claims(axis: str, array_axis: int) -> None:
    """One straight vessel along X: only the projection over x collapses it to a single pixel."""
    volume = np.zeros((32, 16, 48), dtype=np.float32)
    volume[:, 9, 30] = 1
    network = to_network(torch.from_numpy(volume)[None, None])
    projected = network_patch_mip(network, axis)[0, 0].numpy()
    np.testing.assert_array_equal(projected, volume.max(axis=array_axis))
    np.testing.assert_array_equal(volume_mips(volume)[axis], volume.max(axis=array_axis))
    expected_pixels = 1 if axis == "x" else 32
    assert projected.sum() == expected_pixels


def test_network_order_round_trip_is_exact() -> None:
    volume = torch.rand(2, 1, 5, 6, 7)
    network = to_network(volume)
    assert network.shape == (2, 1, 7, 5, 6)
    assert torch.equal(to_volume(network), volume)


def test_crop_mip_centre_pads_where_the_patch_overhangs_the_volume() -> None:
    mip = np.arange(12, dtype=np.float32).reshape(3, 4)  # a MIP over z: axes (X, Y)
    crop = crop_mip(mip, "z", start=(2, 1, 0), patch_size=(3, 4, 8))
    expected = np.full((3, 4), PAD_VALUE, dtype=np.float32)
    expected[1, 0:3] = mip[2, 1:4]  # X: 1 row kept of 3 -> one pad row before, one after; Y: 3 of 4 -> 0/1
    np.testing.assert_array_equal(crop, expected)


def test_volume_target_penalises_vessels_outside_the_patch_and_patch_target_does_not() -> None:
    label = _volume_with_vessels()
    start, size = (0, 0, 0), (24, 20, 8)  # half the slices: the vessel along y at z = 11 is outside
    patch, targets = _patch_inputs(label, start, size, ("z",))
    logits = (patch * 2 - 1) * CONFIDENT
    config = LossConfig(mip_axis="z", mip_pairing="consistent")
    volume_terms = segmentation_loss([logits], patch, config, targets)
    patch_terms = segmentation_loss([logits], patch, replace(config, mip_target="patch"))
    assert volume_terms.mip.item() > 0.05
    assert patch_terms.mip.item() < 1e-3


def test_total_combines_floss_and_mip_with_configurable_coefficients() -> None:
    label = _volume_with_vessels()
    patch, targets = _patch_inputs(label, (0, 0, 0), (24, 20, 8), ("z",))
    logits = torch.zeros_like(patch)
    terms = segmentation_loss(
        [logits],
        patch,
        LossConfig(mip_axis="z", mip_pairing="consistent", floss_weight=0.2, mip_weight=0.8),
        targets,
    )
    assert terms.total.item() == pytest.approx(0.2 * terms.segmentation.item() + 0.8 * terms.mip.item())
    baseline = segmentation_loss([logits], patch, LossConfig(baseline_scale="unit"))
    assert baseline.total.item() == pytest.approx(baseline.segmentation.item())
    assert baseline.mip.item() == 0.0


def test_bad_settings_are_rejected() -> None:
    with pytest.raises(ValueError, match="mip_axis"):
        LossConfig(mip_axis="w")
    with pytest.raises(ValueError, match="mip_target"):
        LossConfig(mip_axis="z", mip_target="slab")
    with pytest.raises(ValueError, match="mip_pairing"):
        LossConfig(mip_axis="z", mip_pairing="swapped")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="baseline_scale"):
        LossConfig(baseline_scale="half")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="whole-volume"):
        segmentation_loss([torch.zeros(1, 1, 4, 4, 4)], torch.zeros(1, 1, 4, 4, 4), LossConfig(mip_axis="z"))


def test_fused_projections_match_amax_values_and_gradients_with_ties() -> None:
    """The fused MIP backward must route gradients exactly as torch.amax does, ties shared equally."""
    from spockmip.objective.mip import network_patch_mips, patch_mip

    base = torch.rand(3, 1, 6, 8, 10)
    base = torch.nn.functional.interpolate(base[..., ::2, ::2, ::2], size=(6, 8, 10), mode="nearest")
    weights = {axis: torch.rand_like(patch_mip(to_volume(base), axis)) for axis in "xyz"}
    fused_input = base.clone().requires_grad_(True)
    fused = network_patch_mips(fused_input, ("x", "y", "z"))
    sum((fused[a] * w).sum() for a, w in weights.items()).backward()
    reference_input = base.clone().requires_grad_(True)
    reference = {a: patch_mip(to_volume(reference_input), a) for a in "xyz"}
    sum((reference[a] * w).sum() for a, w in weights.items()).backward()
    for axis in "xyz":
        assert torch.equal(fused[axis], reference[axis])
    torch.testing.assert_close(fused_input.grad, reference_input.grad, rtol=0, atol=1e-6)


# The released pairing, per mip_axis: (target projected over, prediction projected over), volume axes.
RELEASED_PAIRS = {"z": (2, 1), "x": (0, 2), "y": (1, 0)}


@pytest.mark.parametrize("mip_axis", ["x", "y", "z"])
def test_released_pairing_projects_the_prediction_over_the_axis_the_released_code_does(mip_axis: str) -> None:
    """Target over one axis, prediction over another, both 2D arrays compared as they lie."""
    label = np.zeros((16, 16, 16), dtype=np.float32)
    rng = np.random.default_rng(3)
    label[rng.random(label.shape) > 0.97] = 1
    network = to_network(torch.from_numpy(label)[None, None])
    prediction = released_patch_mips(network, (mip_axis,))[mip_axis][0, 0].numpy()
    target_axis, prediction_axis = RELEASED_PAIRS[mip_axis]
    assert target_axis == "xyz".index(mip_axis)
    projected = label.max(axis=prediction_axis)
    # Left in network order (Z, X, Y) after the reduction: a (Z, X) array for z, (X, Y) for x, (Z, Y) for y.
    expected = {"z": projected.T, "x": projected, "y": projected.T}[mip_axis]
    np.testing.assert_array_equal(prediction, expected)


@pytest.mark.parametrize("mip_axis", ["x", "y", "z", "multi"])
def test_released_pairing_penalises_a_perfect_prediction_and_consistent_does_not(mip_axis: str) -> None:
    label = _volume_with_vessels()[:16, :16, :16]
    patch, targets = _patch_inputs(label, (0, 0, 0), (16, 16, 16), projection_axes(mip_axis))
    logits = (patch * 2 - 1) * CONFIDENT
    released = segmentation_loss([logits], patch, LossConfig(mip_axis=mip_axis), targets)
    consistent = segmentation_loss(
        [logits], patch, LossConfig(mip_axis=mip_axis, mip_pairing="consistent"), targets
    )
    assert consistent.mip.item() < 1e-3
    assert released.mip.item() > 0.3 * len(projection_axes(mip_axis))


def test_released_pairing_refuses_a_non_cubic_patch() -> None:
    label = _volume_with_vessels()
    patch, targets = _patch_inputs(label, (0, 0, 0), (16, 16, 8), ("z",))
    with pytest.raises(ValueError, match="cubic"):
        segmentation_loss([patch], patch, LossConfig(mip_axis="z"), targets)


@pytest.mark.parametrize(
    ("mip_axis", "mip_target"), [("none", "volume"), ("multi", "patch"), ("z", "volume")]
)
def test_training_runs_segmentation_loss(mip_axis: str, mip_target: str) -> None:
    """batch_loss is segmentation_loss on the network's outputs (plus DS6's term), not a copy of it."""
    from spockmip.data.subjects import normalise_patches
    from spockmip.networks.unet import build_model
    from spockmip.objective.batch import batch_loss
    from spockmip.training.trainer import TrainingConfig

    torch.manual_seed(0)
    model = build_model("unetmss", 2)
    config = TrainingConfig(loss=LossConfig(mip_axis=mip_axis, mip_target=mip_target))
    batch = {"image": torch.rand(2, 1, 32, 32, 32), "label": (torch.rand(2, 1, 32, 32, 32) > 0.9).float()}
    batch |= {f"mip_{a}": (torch.rand(2, 1, 32, 32) > 0.8).float() for a in ("x", "y", "z")}
    trained = batch_loss(model, batch, config, torch.device("cpu"), None)
    targets = {a: batch[f"mip_{a}"] for a in config.loss.volume_target_axes} or None
    # The loader hands over raw patches; the network sees each divided by its own maximum.
    image = normalise_patches(batch["image"].clone())
    with torch.no_grad():
        direct = segmentation_loss(model(image), batch["label"], config.loss, targets)
        extra = segmentation_loss(
            model(image), batch["label"], config.loss, targets, lambda levels: levels[0].mean()
        )
    for mine, theirs in zip(trained, direct, strict=True):
        torch.testing.assert_close(mine.detach(), theirs, rtol=0, atol=0)
    probability = torch.sigmoid(model(image)[0].detach().float()).mean()
    torch.testing.assert_close(extra.segmentation, direct.segmentation + probability)
