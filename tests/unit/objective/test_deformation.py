"""Tests for the DS6 random B-spline deformation: conventions, bounds, determinism, gradients."""

from __future__ import annotations

import pytest
import torch

from spockmip.objective.deformation import (
    Deformation,
    DeformationConfig,
    _interpolation_matrix,
    consistency_loss,
    random_bspline_field,
    sampling_grid,
    voxels_to_normalised,
    warp_image,
    warp_label,
)

# Smallest patch axes that leave a free control point at spacing 7 with 2 locked per side are 29 voxels;
# these are a little larger and deliberately non-cubic so a swapped axis would show.
SHAPE = (32, 36, 40)
NON_CUBIC = (2, 1, 16, 20, 24)


def _field(seed: int, batch: int = 3, config: DeformationConfig | None = None) -> Deformation:
    generator = torch.Generator().manual_seed(seed)
    return random_bspline_field(SHAPE, batch, config or DeformationConfig(), generator)


def _given(field: torch.Tensor) -> Deformation:
    """A hand-made field as a drawn smooth deformation."""
    return Deformation(field=field, spacing=(), max_displacement=())


def _binary(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=generator) > 0.8).float()


@pytest.mark.parametrize("shape", [NON_CUBIC, (1, 3, 9, 7, 5)])
def test_zero_field_is_identity(shape: tuple[int, ...]) -> None:
    image = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    label = _binary(shape)
    zero = torch.zeros(shape[0], *shape[2:], 3)
    assert (warp_image(image, zero) - image).abs().max() <= 1e-6
    assert torch.equal(warp_label(label, _given(zero), "nearest"), label)
    assert torch.equal(warp_label(label, _given(zero), "rebinarise"), label)
    assert (warp_label(label, _given(zero), "bilinear") - label).abs().max() <= 1e-6


def test_displacement_reaches_but_never_exceeds_drawn_maximum() -> None:
    config = DeformationConfig()
    for seed in range(20):
        deformation = _field(seed, config=config)
        assert deformation.field.shape == (3, *SHAPE, 3)
        assert deformation.field.dtype == torch.float32
        for b, (spacing, maximum) in enumerate(
            zip(deformation.spacing, deformation.max_displacement, strict=True)
        ):
            assert spacing in config.spacings
            assert maximum in config.max_displacements
            peak = deformation.field[b].abs().max().item()
            assert peak <= maximum
            assert peak >= maximum * (1 - 1e-6)


def test_border_faces_do_not_move() -> None:
    # Two locked control points per side put the nearest free one >= 2 spacings from each face, beyond
    # the cubic B-spline's support, so the dense field is exactly zero on all six faces.
    for seed in range(10):
        field = _field(seed).field
        assert field.abs().amax(dim=(1, 2, 3, 4)).min() > 0
        for dim in (1, 2, 3):
            assert torch.all(field.select(dim, 0) == 0)
            assert torch.all(field.select(dim, -1) == 0)


def test_unlocked_border_faces_do_move() -> None:
    # Control that the zero faces above come from locking, not from the construction itself.
    field = _field(0, config=DeformationConfig(locked_border_points=0)).field
    for dim in (1, 2, 3):
        assert field.select(dim, 0).abs().max() > 0
        assert field.select(dim, -1).abs().max() > 0


@pytest.mark.parametrize("mode", ["nearest", "rebinarise"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.uint8, torch.bool])
def test_labels_stay_binary(mode: str, dtype: torch.dtype) -> None:
    label = _binary((3, 1, *SHAPE)).to(dtype)
    warped = warp_label(label, _field(1), mode)  # type: ignore[arg-type]
    assert warped.dtype == dtype
    assert set(warped.unique().tolist()) <= {0, 1}
    # A displacement of at most ~0.6 voxel moves few voxels: the foreground fraction barely changes.
    assert abs(warped.float().mean() - label.float().mean()) < 0.02


def test_seeded_generator_is_reproducible() -> None:
    first, second, other = _field(7), _field(7), _field(8)
    assert torch.equal(first.field, second.field)
    assert first.spacing == second.spacing
    assert first.max_displacement == second.max_displacement
    assert not torch.equal(first.field, other.field)


def test_samples_in_a_batch_differ() -> None:
    field = _field(3, batch=2).field
    assert not torch.equal(field[0], field[1])


def test_field_is_smooth() -> None:
    # Neighbouring voxels differ by well under the maximum (white noise scaled the same way would differ
    # by up to twice it); spacing 5 is the roughest setting.
    config = DeformationConfig(spacings=(5,))
    for seed in range(10):
        deformation = _field(seed, config=config)
        maximum = torch.tensor(deformation.max_displacement).view(-1, 1, 1, 1, 1)
        for dim in (1, 2, 3):
            assert (deformation.field.diff(dim=dim).abs() / maximum).max() < 0.5


@pytest.mark.parametrize("component", [0, 1, 2])
@pytest.mark.parametrize("shift", [3, -2])
def test_translation_moves_spatial_dim_of_component(component: int, shift: int) -> None:
    # Component k displaces spatial dim k; pull convention: warped[i] = volume[i + shift].
    image = torch.rand(NON_CUBIC, generator=torch.Generator().manual_seed(0))
    label = _binary(NON_CUBIC)
    dim = 2 + component
    size = NON_CUBIC[dim]
    field = torch.zeros(NON_CUBIC[0], *NON_CUBIC[2:], 3)
    field[..., component] = voxels_to_normalised(shift, size)
    kept = size - abs(shift)
    src_start, dst_start = max(shift, 0), max(-shift, 0)
    for warped, exact in (
        (warp_image(image, field), False),
        (warp_label(label, _given(field), "nearest"), True),
    ):
        source = label if exact else image
        moved = warped.narrow(dim, dst_start, kept)
        expected = source.narrow(dim, src_start, kept)
        assert torch.equal(moved, expected) if exact else torch.allclose(moved, expected, atol=1e-6)
    # Samples pushed past the patch take the edge value ("border" padding).
    edge = 0 if shift < 0 else size - 1
    padded = warp_image(image, field).narrow(dim, 0 if shift < 0 else kept, abs(shift))
    assert torch.allclose(padded, image.narrow(dim, edge, 1).expand_as(padded), atol=1e-6)


def test_sampling_grid_is_in_grid_sample_order() -> None:
    # grid_sample reads the last dim as (x, y, z) = (W, H, D): zero field gives linspace along each.
    depth, height, width = NON_CUBIC[2:]
    grid = sampling_grid(torch.zeros(1, depth, height, width, 3))
    assert torch.allclose(grid[0, 0, 0, :, 0], torch.linspace(-1, 1, width, dtype=grid.dtype))
    assert torch.allclose(grid[0, 0, :, 0, 1], torch.linspace(-1, 1, height, dtype=grid.dtype))
    assert torch.allclose(grid[0, :, 0, 0, 2], torch.linspace(-1, 1, depth, dtype=grid.dtype))


def test_gradient_flows_to_volume_not_field() -> None:
    image = torch.rand(2, 1, *SHAPE, requires_grad=True)
    field = _field(2, batch=2).field.clone().requires_grad_()
    warp_image(image, field).square().sum().backward()
    assert image.grad is not None
    assert torch.isfinite(image.grad).all()
    assert image.grad.abs().sum() > 0
    assert field.grad is None


def test_consistency_loss_gradient_reaches_both_inputs() -> None:
    shape = (2, 1, *SHAPE)
    prob_warped = torch.rand(shape, requires_grad=True)
    prob_original = torch.rand(shape, requires_grad=True)
    deformation = _field(4, batch=2)

    def mse(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (prediction - target).square().mean()

    loss = consistency_loss(prob_warped, prob_original, deformation, mse)
    loss.backward()
    for tensor in (prob_warped, prob_original):
        assert tensor.grad is not None
        assert tensor.grad.abs().sum() > 0
    expected = mse(prob_warped, warp_image(prob_original, deformation.field))
    assert torch.allclose(loss, expected)


def test_autocast_and_low_precision_inputs() -> None:
    image = torch.rand(2, 1, *SHAPE).to(torch.bfloat16)
    generator = torch.Generator().manual_seed(5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        deformation = random_bspline_field(SHAPE, 2, DeformationConfig(), generator)
        warped = warp_image(image, deformation.field)
    assert deformation.field.dtype == torch.float32
    assert torch.equal(deformation.field, _field(5, batch=2).field)
    assert warped.dtype == torch.bfloat16
    assert torch.isfinite(warped.float()).all()


def test_interpolation_matrix_is_a_cubic_bspline() -> None:
    size, spacing = 40, 6
    matrix = _interpolation_matrix(size, spacing)
    assert matrix.shape == (size, (size - 1) // spacing + 1)
    # Local support: at most 4 control points act on any voxel.
    assert ((matrix > 0).sum(dim=1) <= 4).all()
    # Partition of unity wherever a voxel has its full set of neighbours (one spacing inside the
    # outermost control points).
    offset = ((size - 1) - (matrix.shape[1] - 1) * spacing) / 2
    inside = torch.arange(size)
    inside = inside[(inside >= offset + spacing) & (inside <= size - 1 - offset - spacing)]
    assert torch.allclose(matrix[inside].sum(dim=1), torch.ones(len(inside), dtype=matrix.dtype))


def test_invalid_inputs_are_refused() -> None:
    generator = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="no free control point"):
        random_bspline_field((16, 20, 24), 1, DeformationConfig(), generator)
    with pytest.raises(ValueError, match="label_mode"):
        DeformationConfig(label_mode="linear")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mode"):
        warp_label(torch.zeros(1, 1, 4, 4, 4), _given(torch.zeros(1, 4, 4, 4, 3)), "linear")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="field: 'affine' is not one of released, smooth"):
        DeformationConfig(field="affine")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="consistency_target"):
        DeformationConfig(consistency_target="labels")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="does not match"):
        warp_image(torch.zeros(1, 1, 4, 4, 4), torch.zeros(1, 4, 4, 5, 3))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu() -> None:
    cpu = _field(6, batch=2)
    generator = torch.Generator().manual_seed(6)
    cuda = random_bspline_field(SHAPE, 2, DeformationConfig(), generator, device="cuda")
    assert cuda.field.device.type == "cuda"
    assert torch.allclose(cuda.field.cpu(), cpu.field, atol=1e-7)
    image = torch.rand(2, 1, *SHAPE)
    with torch.autocast("cuda", dtype=torch.float16):
        warped = warp_image(image.cuda().half(), cuda.field)
    assert warped.dtype == torch.float16
    reference = warp_image(image, cpu.field)
    assert torch.allclose(warped.float().cpu(), reference, atol=2e-3)
