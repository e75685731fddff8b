"""DS6's released deformation: the airlab-style field, its quirks, and how training uses it."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from spockmip.networks.unet import build_model
from spockmip.objective.batch import deformation_terms
from spockmip.objective.deformation import DeformationConfig, warp_label
from spockmip.objective.losses import LossConfig, focal_tversky, level_probabilities
from spockmip.objective.released_deformation import (
    ReleasedDeformation,
    bspline_kernel,
    control_grid_size,
    dense_velocity,
    displacement_from_control,
    identity_grid,
    random_control,
    random_released_deformation,
)
from spockmip.training.trainer import TrainingConfig

PATCH = (16, 16, 16)  # the DS6 training terms are checked on a small network and patch


def _transposed_convolution_oracle(control: torch.Tensor, spacing: int, shape) -> torch.Tensor:
    """The dense velocity the other way round: one 3D transposed convolution, cropped to the patch.

    The 3D kernel is built by convolving a box of ones with itself (divided by the box volume each
    time), the control grid is spread with stride ``spacing``, and the result is cut so that the patch
    sits centred between the control points. Independent of the per-axis matrices under test.
    """
    box = torch.ones(1, 1, spacing, spacing, spacing, dtype=torch.float64)
    kernel = box
    for _ in range(3):
        kernel = F.conv3d(kernel, box, padding=spacing - 1) / spacing**3
    half = (kernel.shape[-1] - 1) // 2
    spread = F.conv_transpose3d(
        control[None].double(), kernel.expand(3, 1, -1, -1, -1), stride=spacing, padding=half, groups=3
    )[0]
    for axis, size in enumerate(shape):
        inner = spacing * (control.shape[1 + axis] - 2) - (spacing - 1)
        start = spacing - (size - inner + 1) // 2
        spread = spread.narrow(1 + axis, start, size)
    return spread.permute(1, 2, 3, 0).float()


@pytest.mark.parametrize("shape", [(64, 64, 64), (32, 32, 32), (24, 30, 35)])
@pytest.mark.parametrize("spacing", [5, 6, 7])
def test_dense_velocity_equals_a_transposed_convolution(shape, spacing: int) -> None:
    generator = torch.Generator().manual_seed(spacing)
    control = random_control(shape, spacing, 0.03, 2, generator)
    ours = dense_velocity(control, spacing, shape)
    torch.testing.assert_close(
        ours, _transposed_convolution_oracle(control, spacing, shape), atol=1e-7, rtol=0
    )


def test_zero_control_displacements_give_a_zero_field() -> None:
    shape = (32, 32, 32)
    control = torch.zeros(3, *(control_grid_size(n, 6) for n in shape))
    assert torch.equal(displacement_from_control(control, 6, shape), torch.zeros(*shape, 3))


@pytest.mark.parametrize("spacing", [5, 6, 7])
def test_one_control_point_spreads_as_the_cubic_bspline_kernel(spacing: int) -> None:
    shape = (40, 40, 40)
    control = torch.zeros(3, *(control_grid_size(n, spacing) for n in shape))
    point = (3, 4, 3)
    control[1][point] = 0.02
    velocity = dense_velocity(control, spacing, shape)
    assert torch.count_nonzero(velocity[..., 0]) == 0 and torch.count_nonzero(velocity[..., 2]) == 0
    moved = velocity[..., 1]
    support = [
        torch.nonzero(moved.abs().amax(dim=tuple(d for d in range(3) if d != axis))).flatten()
        for axis in range(3)
    ]
    kernel = torch.from_numpy(bspline_kernel(spacing)).float()
    assert all(len(indices) == 4 * spacing - 3 for indices in support)  # the full kernel lies inside
    assert kernel.max().item() == pytest.approx(2 / 3, abs=0.02) and kernel.sum().item() == pytest.approx(
        spacing
    )
    profile = moved[:, support[1][2 * spacing - 2], support[2][2 * spacing - 2]][support[0]]
    torch.testing.assert_close(profile, 0.02 * kernel * kernel.max() ** 2, rtol=1e-5, atol=1e-9)
    # Scaling and squaring resamples the field ten times off the voxel centres (align_corners=False),
    # which smooths its peak a little: the integrated peak stays within 20 % below the velocity's.
    ratio = displacement_from_control(control, spacing, shape)[..., 1].abs().max() / moved.abs().max()
    assert 0.8 < ratio.item() <= 1.0


def test_only_the_first_two_axes_are_locked_so_the_third_axis_faces_move() -> None:
    generator = torch.Generator().manual_seed(0)
    locked, free = [], []
    for _ in range(10):
        field = random_released_deformation((48, 48, 48), (5, 6, 7), (0.03,), 2, generator).field.norm(dim=-1)
        locked += [field[0].mean(), field[-1].mean(), field[:, 0].mean(), field[:, -1].mean()]
        free += [field[:, :, 0].mean(), field[:, :, -1].mean()]
    assert min(free) > 3 * max(locked)


def test_peak_displacement_stays_well_below_the_drawn_bound() -> None:
    generator = torch.Generator().manual_seed(1)
    for _ in range(6):
        drawn = random_released_deformation((48, 48, 48), (5, 6, 7), (0.01, 0.03), 2, generator)
        peak = drawn.field.abs().max().item()
        assert drawn.spacing in (5, 6, 7) and drawn.max_displacement in (0.01, 0.03)
        assert 0.2 * drawn.max_displacement < peak < 0.9 * drawn.max_displacement


def test_one_field_warps_the_whole_batch_and_labels_come_out_fractional() -> None:
    generator = torch.Generator().manual_seed(2)
    drawn = random_released_deformation((32, 32, 32), (5,), (0.03,), 2, generator)
    sample = (torch.rand(1, 1, 32, 32, 32, generator=generator) > 0.7).float()
    batch = torch.cat([sample, 1 - sample, sample])
    warped = drawn.warp(batch)
    assert torch.equal(warped[0], warped[2])
    torch.testing.assert_close(warped[1], drawn.warp(1 - sample)[0])
    label = warp_label(batch, drawn, "bilinear")
    assert label.dtype == torch.float32
    fractional = ((label > 0.01) & (label < 0.99)).float().mean().item()
    assert fractional > 0.05
    assert set(warp_label(batch, drawn, "rebinarise").unique().tolist()) <= {0.0, 1.0}


def test_identity_grid_is_airlab_s_linspace_in_grid_sample_order() -> None:
    grid = identity_grid((4, 5, 6))
    assert grid.shape == (1, 4, 5, 6, 3)
    torch.testing.assert_close(grid[0, 0, 0, :, 0], torch.linspace(-1, 1, 6))
    torch.testing.assert_close(grid[0, 0, :, 0, 1], torch.linspace(-1, 1, 5))
    torch.testing.assert_close(grid[0, :, 0, 0, 2], torch.linspace(-1, 1, 4))


@functools.cache
def _terms(consistency_target: str) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = build_model("unetmss", init_features=2)
    image = torch.rand(2, 1, *PATCH)
    label = (torch.rand(2, 1, *PATCH) > 0.8).float()
    config = TrainingConfig(
        model="unetmss",
        init_features=2,
        patch_size=PATCH,
        deform=True,
        deformation=DeformationConfig(consistency_target=consistency_target),  # type: ignore[arg-type]
        loss=LossConfig(),
    )
    outputs = model(image)
    probabilities = level_probabilities(outputs, PATCH)
    total = deformation_terms(
        model, image, label, outputs[0], probabilities[0], config, torch.Generator().manual_seed(5)
    )
    drawn = random_released_deformation(
        PATCH, (5, 6, 7), (0.01, 0.015, 0.02, 0.025, 0.03), 2, torch.Generator().manual_seed(5)
    )
    warped = level_probabilities(model(drawn.warp(image)), PATCH)
    branch = sum(
        w * focal_tversky(p, warp_label(label, drawn, "bilinear"))
        for w, p in zip((1, 0.66, 0.34), warped, strict=True)
    )
    source = outputs[0] if consistency_target == "logits" else probabilities[0]
    expected = branch + focal_tversky(warped[0], drawn.warp(source))
    return total, expected


@pytest.mark.parametrize("consistency_target", ["logits", "probabilities"])
def test_ds6_terms_use_the_configured_consistency_target(consistency_target: str) -> None:
    total, expected = _terms(consistency_target)
    torch.testing.assert_close(total, expected, rtol=1e-5, atol=1e-6)


def test_logit_and_probability_targets_differ() -> None:
    assert not torch.isclose(_terms("logits")[0], _terms("probabilities")[0])


def test_warp_refuses_a_mismatched_volume() -> None:
    drawn = ReleasedDeformation(field=torch.zeros(8, 8, 8, 3), spacing=5, max_displacement=0.01)
    with pytest.raises(ValueError, match="does not match"):
        drawn.warp(torch.zeros(1, 1, 8, 8, 9))
    with pytest.raises(ValueError, match="control grid"):
        dense_velocity(torch.zeros(3, 3, 3, 3), 5, (8, 8, 8))
    assert np.isclose(bspline_kernel(5).sum(), 5)
