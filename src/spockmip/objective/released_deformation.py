"""DS6's elastic deformation as the released code computes it (``deformation: released``), in pure torch.

The released training step builds, once per batch, a random diffeomorphic cubic B-spline transformation
with the airlab library (not on PyPI) and warps image and label with it. This module reproduces that
computation from its description, so the paper's DS6 numbers can be rebuilt without airlab:

* **Control grid.** For a patch axis of ``n`` voxels and spacing ``s``: ``ceil(n / s) + 2`` control points
  (one beyond each side), ``s`` voxels apart; the patch is centred between them, so the outermost points
  lie outside the patch.
* **Draw.** Control displacements uniform in ``[-m, m)`` per component; two layers on each side are set
  to zero along the *first two* spatial axes of the control grid only (the third axis stays free, a quirk
  of the released code).
* **Dense velocity.** Each control value is spread by a discrete cubic B-spline kernel of stride ``s``
  (the box of ``s`` ones convolved with itself four times, divided by ``s³``: support ``4s − 3`` voxels,
  peak ≈ 2/3) — a transposed convolution, evaluated here as a product of three per-axis matrices.
* **Diffeomorphic integration.** The dense field is a stationary velocity: divided by 2¹⁰ and composed
  with itself ten times (scaling and squaring), each composition a bilinear ``grid_sample`` with zero
  padding. The peak displacement that results is well below ``m``.
* **Warp.** identity grid + displacement through ``grid_sample`` (bilinear, zero padding,
  ``align_corners=False``), the same field for every sample of the batch, image and label alike.

Conventions are airlab's and grid_sample's, unlike :mod:`spockmip.objective.deformation`: the field is
``(D, H, W, 3)`` with its last dim in grid_sample's ``(x, y, z) = (W, H, D)`` order, and the identity grid
is ``linspace(-1, 1, n)`` per axis read with ``align_corners=False``. That pairing is not an exact identity
(it shrinks the volume by a fraction of a voxel towards its centre), and the released computation keeps it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from spockmip.runtime.devices import on_device

SQUARINGS = 10  # airlab's Diffeomorphic default: the velocity is divided by 2**10 and squared 10 times.
LOCKED_SPATIAL_AXES = 2  # the released code zeroes border layers along the first two control axes only
Triple = tuple[int, int, int]


@lru_cache(maxsize=16)
def bspline_kernel(spacing: int) -> np.ndarray:
    """The discrete cubic B-spline kernel of stride ``spacing`` (1D; the 3D kernel is its outer product)."""
    box = np.ones(spacing)
    kernel = box
    for _ in range(3):
        kernel = np.convolve(kernel, box) / spacing
    return kernel


def control_grid_size(size: int, spacing: int) -> int:
    """Control points along an axis of ``size`` voxels: those covering it plus one beyond each side."""
    return math.ceil(size / spacing) + 2


@lru_cache(maxsize=64)
def _spread_matrix(size: int, spacing: int) -> torch.Tensor:
    """``(size, points)`` fp64 matrix: row ``x`` holds the kernel weight of each control point at voxel x.

    Control point ``i`` sits at voxel ``i·s − s + ceil(gap / 2)``, where ``gap`` is how much shorter the
    span of the inner control points is than the axis: the patch is centred between the control points.
    """
    points = control_grid_size(size, spacing)
    gap = size - (spacing * (points - 2) - (spacing - 1))
    first = -spacing + (gap + 1) // 2
    kernel = bspline_kernel(spacing)
    half = len(kernel) // 2
    matrix = np.zeros((size, points))
    for point in range(points):
        centre = first + point * spacing
        for voxel in range(max(centre - half, 0), min(centre + half + 1, size)):
            matrix[voxel, point] = kernel[voxel - centre + half]
    return torch.from_numpy(matrix)


def identity_grid(shape: Triple, device: torch.device | str | None = None) -> torch.Tensor:
    """``(1, D, H, W, 3)`` grid, last dim ``(x, y, z)``: ``linspace(-1, 1)`` along W, H and D."""
    depth, height, width = (torch.linspace(-1.0, 1.0, n, device=device) for n in shape)
    grid_d, grid_h, grid_w = torch.meshgrid(depth, height, width, indexing="ij")
    return torch.stack((grid_w, grid_h, grid_d), dim=-1)[None]


def dense_velocity(control: torch.Tensor, spacing: int, shape: Triple) -> torch.Tensor:
    """Control displacements ``(3, Cd, Ch, Cw)`` → dense field ``(D, H, W, 3)`` before integration.

    Component ``c`` of ``control`` becomes component ``c`` of the last dim (grid_sample's x, y, z order).
    Evaluated in fp64 and returned in fp32, the released code's precision.
    """
    expected = tuple(control_grid_size(n, spacing) for n in shape)
    if tuple(control.shape) != (3, *expected):
        raise ValueError(f"control grid {tuple(control.shape)} does not fit {shape} at spacing {spacing}")
    m_d, m_h, m_w = (on_device(_spread_matrix(n, spacing), control.device) for n in shape)
    dense = torch.einsum("cijk,zi,yj,xk->zyxc", control.to(torch.float64), m_d, m_h, m_w)
    return dense.to(torch.float32)


def integrate(velocity: torch.Tensor) -> torch.Tensor:
    """Scaling and squaring of a ``(D, H, W, 3)`` velocity field into a diffeomorphic displacement."""
    grid = identity_grid(tuple(velocity.shape[:3]), velocity.device)
    field = (velocity / 2**SQUARINGS).permute(3, 0, 1, 2)[None]
    for _ in range(SQUARINGS):
        field = field + F.grid_sample(field, field.permute(0, 2, 3, 4, 1) + grid, align_corners=False)
    return field[0].permute(1, 2, 3, 0)


def displacement_from_control(control: torch.Tensor, spacing: int, shape: Triple) -> torch.Tensor:
    """The released dense displacement ``(D, H, W, 3)`` for given control displacements (fp32)."""
    with torch.autocast(control.device.type, enabled=False):
        return integrate(dense_velocity(control, spacing, shape))


@dataclass(frozen=True)
class ReleasedDeformation:
    """One drawn field, shared by the whole batch; ``warp`` applies it as the released code does."""

    field: torch.Tensor
    spacing: int
    max_displacement: float

    def warp(self, volume: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
        """Resample ``volume`` (B, C, D, H, W) at identity + field, zero padding, fp32, autocast off."""
        if tuple(volume.shape[2:]) != tuple(self.field.shape[:3]):
            raise ValueError(f"field {tuple(self.field.shape)} does not match volume {tuple(volume.shape)}")
        with torch.autocast(volume.device.type, enabled=False):
            grid = identity_grid(tuple(self.field.shape[:3]), volume.device) + self.field.to(volume.device)
            grid = grid.expand(volume.shape[0], -1, -1, -1, -1)
            return F.grid_sample(volume.float(), grid, mode=mode, align_corners=False)


def random_control(
    shape: Triple,
    spacing: int,
    max_displacement: float,
    locked_border_points: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """Control displacements uniform in [−m, m), border layers zeroed along the first two axes only."""
    grid = tuple(control_grid_size(n, spacing) for n in shape)
    control = (torch.rand((3, *grid), generator=generator, device=generator.device) - 0.5) * (
        2 * max_displacement
    )
    for axis in range(1, 1 + LOCKED_SPATIAL_AXES):
        control.narrow(axis, 0, locked_border_points).zero_()
        control.narrow(axis, control.shape[axis] - locked_border_points, locked_border_points).zero_()
    return control


def random_released_deformation(
    shape: Triple,
    spacings: tuple[int, ...],
    max_displacements: tuple[float, ...],
    locked_border_points: int,
    generator: torch.Generator,
    device: torch.device | str | None = None,
) -> ReleasedDeformation:
    """Draw one batch's deformation: a spacing and a bound from the lists, then the control values."""
    source = generator.device
    spacing = spacings[int(torch.randint(len(spacings), (1,), generator=generator, device=source))]
    maximum = max_displacements[
        int(torch.randint(len(max_displacements), (1,), generator=generator, device=source))
    ]
    control = random_control(shape, spacing, maximum, locked_border_points, generator)
    target = torch.device(device) if device is not None else generator.device
    field = displacement_from_control(on_device(control, target), spacing, shape)
    return ReleasedDeformation(field=field, spacing=spacing, max_displacement=maximum)
