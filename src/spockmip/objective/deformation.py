"""DS6 deformation settings and the project's smooth per-sample deformation (``deformation: smooth``).

DS6 warps each training batch with a random cubic B-spline deformation, runs the network on the warped
image as well, and adds a consistency loss between the prediction on the warped image and the warped
prediction on the original image. The released code draws one airlab-style field per batch
(:mod:`spockmip.objective.released_deformation`, ``deformation: released``); this module holds the settings of
both and the corrected alternative: an independent field per sample whose peak displacement is exactly the
drawn maximum, with every face of the patch fixed, built with separable per-axis interpolation matrices
and applied with :func:`torch.nn.functional.grid_sample`.

Conventions (every function here follows them; nothing outside this module needs grid_sample's order):

* **Field layout** ``(B, D, H, W, 3)`` for a patch whose last three dims are ``(D, H, W)``. Component ``k``
  is the displacement along spatial dim ``k`` (component 0 along D, 1 along H, 2 along W). grid_sample
  wants the reverse, ``(x, y, z) = (W, H, D)``; :func:`sampling_grid` does the flip.
* **Units**: normalised grid units with ``align_corners=True``: -1 and +1 are the *centres* of the first
  and last voxel of an axis, so a displacement ``u`` along an axis of ``n`` voxels is ``u * (n - 1) / 2``
  voxels (:func:`voxels_to_normalised` goes the other way). With this choice the identity grid hits voxel
  centres, so a zero field reproduces the input, and "the border is fixed" means the outermost voxels stay
  put. On a non-cubic patch the same normalised displacement is a different number of voxels per axis.
* **Direction** (pull / backward warp): ``warped[p] = volume[p + u(p)]``. A constant positive field along
  dim ``k`` therefore moves the content towards *lower* indices along dim ``k``.
* **Padding** ``"border"``: a sample that lands outside the patch takes the nearest edge value instead of
  a fabricated zero, so no dark rim or empty label band appears. Because the field vanishes on the faces
  (see :func:`random_bspline_field`), such samples only occur within about one maximum displacement of a
  face, where the field is already fading out.
* **Precision**: the field is computed in fp32 (or the requested wider dtype) with autocast off. Sampling
  runs in fp64 with autocast off, because grid_sample turns the normalised coordinate back into a voxel
  index, and in fp32 that index is off by up to an ulp (about 4e-6 at index 63): a zero field would then
  slightly blur the volume instead of reproducing it. On CPU fp64 interpolation runs as fast as fp32 and
  the wider grid adds about 15 ms per warp at batch 15 and 64^3; warped tensors keep their input dtype.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, Protocol

import torch
import torch.nn.functional as F

from spockmip.runtime.devices import on_device
from spockmip.settings.catalogue import LABEL_MODES
from spockmip.settings.lookup import check_fields, default

FieldKind = Literal["released", "smooth"]
LabelMode = Literal["bilinear", "nearest", "rebinarise"]
ConsistencyTarget = Literal["logits", "probabilities"]

ALIGN_CORNERS = True
PADDING_MODE = "border"
_SAMPLING_DTYPE = torch.float64


@dataclass(frozen=True)
class DeformationConfig:
    """How DS6 deforms; the defaults are the released code's.

    ``field``: ``released`` (one airlab-style diffeomorphic field per batch, third axis unlocked) or
    ``smooth`` (an independent field per sample, all faces fixed). ``spacings`` are control-point spacings
    in voxels and ``max_displacements`` bounds in normalised grid units: of the control values for
    ``released``, of the dense field itself for ``smooth``. ``locked_border_points``: control layers held
    at zero on each side. ``label_mode``: ``bilinear`` (released: fractional labels), ``nearest`` or
    ``rebinarise`` (bilinear, then >= 0.5). ``consistency_target``: what is warped into the target of the
    consistency term, the level-0 ``logits`` of the original branch (released) or their ``probabilities``.
    """

    field: FieldKind = default("training", "deformation")
    spacings: tuple[int, ...] = default("training", "deformation_spacings")
    max_displacements: tuple[float, ...] = default("training", "deformation_max_displacements")
    locked_border_points: int = 2
    label_mode: LabelMode = default("training", "deformation_label_mode")
    consistency_target: ConsistencyTarget = default("training", "consistency_target")
    consistency_weight: float = default("training", "consistency_weight")

    def __post_init__(self) -> None:
        # Accept lists (e.g. from a YAML config) but store tuples so the config stays hashable.
        object.__setattr__(self, "spacings", tuple(int(s) for s in self.spacings))
        object.__setattr__(self, "max_displacements", tuple(float(m) for m in self.max_displacements))
        check_fields(self, "deformation")
        if self.locked_border_points < 0:
            raise ValueError(f"locked_border_points must be >= 0, got {self.locked_border_points}")


@dataclass(frozen=True)
class Deformation:
    """A drawn batch of deformations: the dense field and, per sample, what was drawn (for logging).

    ``field`` is ``(B, D, H, W, 3)`` in normalised units, component k along spatial dim k. It is a view of
    a component-first buffer (so each component is contiguous for :func:`sampling_grid`); call
    ``.contiguous()`` before ``.view`` if you need one.
    """

    field: torch.Tensor
    spacing: tuple[int, ...]
    max_displacement: tuple[float, ...]

    def warp(self, volume: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
        """Resample ``volume`` (B, C, D, H, W) at identity + this field (fp64 sampling, border padding)."""
        return _resample(volume, self.field, mode)


def _cubic_bspline(t: torch.Tensor) -> torch.Tensor:
    """Uniform cubic B-spline basis function: support (-2, 2), peak 2/3 at 0."""
    a = t.abs()
    inner = 2.0 / 3.0 - a**2 + a**3 / 2.0
    outer = (2.0 - a).clamp_min(0.0) ** 3 / 6.0
    return torch.where(a < 1.0, inner, outer)


def _num_control_points(size: int, spacing: int) -> int:
    """Control points per axis: as many as fit, ``spacing`` apart, between the first and last voxel."""
    return (size - 1) // spacing + 1


@lru_cache(maxsize=64)
def _interpolation_matrix(size: int, spacing: int) -> torch.Tensor:
    """``(size, M)`` fp64 matrix: row ``x`` holds the B-spline weights of the M control points at voxel x.

    The control points sit at ``offset + j * spacing`` with the grid centred in the patch, so the
    outermost points lie on or just inside the first and last voxel (``offset < spacing / 2``). That
    placement is what makes two locked points per side fix the faces exactly: a cubic B-spline at ``x``
    only sees control points closer than ``2 * spacing``, and the nearest free point is
    ``offset + 2 * spacing`` from a face. Control points outside the patch would instead leak the third
    (free) point into the face with weight up to 1/6.
    """
    m = _num_control_points(size, spacing)
    offset = ((size - 1) - (m - 1) * spacing) / 2.0
    x = torch.arange(size, dtype=torch.float64)[:, None]
    knots = offset + spacing * torch.arange(m, dtype=torch.float64)[None, :]
    return _cubic_bspline((x - knots) / spacing)


def _check_shape(shape: tuple[int, int, int], config: DeformationConfig) -> None:
    """Refuse patches too small to leave a free control point, rather than silently never deforming.

    The field is a tensor product, so one axis without a free control point zeroes the whole field.
    """
    if len(shape) != 3:
        raise ValueError(f"shape must be (D, H, W), got {shape}")
    locked = config.locked_border_points
    for size in shape:
        for spacing in config.spacings:
            if _num_control_points(size, spacing) < 2 * locked + 1:
                raise ValueError(
                    f"patch axis of {size} voxels has no free control point at spacing {spacing} with "
                    f"{locked} locked per side; it needs at least {2 * locked * spacing + 1} voxels"
                )


def random_bspline_field(
    shape: tuple[int, int, int],
    batch: int,
    config: DeformationConfig,
    generator: torch.Generator,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Deformation:
    """Draw ``batch`` independent random cubic B-spline displacement fields over a ``shape`` patch.

    Per sample: a spacing ``s`` and a maximum ``m`` are drawn uniformly from the config's lists; a control
    grid of ``(size - 1) // s + 1`` points per axis (centred, see :func:`_interpolation_matrix`) gets
    uniform values in [-1, 1) for each of the 3 components; the ``locked_border_points`` outermost points
    on every side of every axis are zeroed; the B-spline is evaluated at every voxel as a tensor product of
    three per-axis interpolation matrices; and the dense field is scaled so that its largest absolute
    component equals ``m`` up to fp rounding, rounded *down*: it never exceeds ``m``.

    With ``locked_border_points >= 2`` the displacement is exactly zero on all six faces of the patch (and
    in the sub-voxel band between a face and the outermost control point), and so are its first and second
    derivatives across the face: the patch border stays fixed and the deformation fades in smoothly.

    All random numbers come from ``generator`` on its own device, so one seed gives one field on any
    target ``device`` (default: the generator's device). The field is computed in at least fp32 with
    autocast off and returned in ``dtype``.
    """
    _check_shape(shape, config)
    target = torch.device(device) if device is not None else generator.device
    work = torch.promote_types(dtype, torch.float32)
    locked = config.locked_border_points
    # Shrinking the scale by a few ulps guarantees fl(x * scale) <= m for every |x| <= peak.
    round_down = 1.0 - 4.0 * torch.finfo(work).eps

    source = generator.device
    spacing_idx = torch.randint(len(config.spacings), (batch,), generator=generator, device=source)
    max_idx = torch.randint(len(config.max_displacements), (batch,), generator=generator, device=source)
    spacings = tuple(config.spacings[i] for i in spacing_idx.tolist())
    maxima = tuple(config.max_displacements[i] for i in max_idx.tolist())

    matrices = {
        s: [on_device(_interpolation_matrix(size, s), target, work) for size in shape] for s in set(spacings)
    }
    field = torch.empty((batch, 3, *shape), device=target, dtype=work)
    with torch.autocast(target.type, enabled=False):
        for b, (spacing, maximum) in enumerate(zip(spacings, maxima, strict=True)):
            grid_shape = tuple(_num_control_points(size, spacing) for size in shape)
            coeffs = 2.0 * torch.rand((3, *grid_shape), generator=generator, device=source) - 1.0
            for axis in (1, 2, 3):
                coeffs.narrow(axis, 0, locked).zero_()
                coeffs.narrow(axis, coeffs.shape[axis] - locked, locked).zero_()
            mat_d, mat_h, mat_w = matrices[spacing]
            # Separable evaluation, cheapest contraction first: W, then H, then D.
            dense = torch.matmul(on_device(coeffs, target, work), mat_w.T)  # (3, Md, Mh, W)
            dense = torch.matmul(mat_h, dense)  # (3, Md, H, W)
            dense = torch.matmul(mat_d, dense.flatten(2)).view(3, *shape)  # (3, D, H, W)
            low, high = torch.aminmax(dense)
            peak = torch.maximum(-low, high).clamp_min(torch.finfo(work).tiny)
            torch.mul(dense, (maximum * round_down) / peak, out=field[b])
    return Deformation(
        field=field.to(dtype).permute(0, 2, 3, 4, 1), spacing=spacings, max_displacement=maxima
    )


def voxels_to_normalised(voxels: float, size: int) -> float:
    """A shift of ``voxels`` along an axis of ``size`` voxels in normalised units (align_corners=True)."""
    return 2.0 * voxels / (size - 1)


def sampling_grid(field: torch.Tensor, dtype: torch.dtype = _SAMPLING_DTYPE) -> torch.Tensor:
    """grid_sample grid ``(B, D, H, W, 3)`` in its ``(x, y, z) = (W, H, D)`` order: identity plus ``field``.

    The field is random data, not a parameter, so it is treated as a constant (no gradient flows to it).
    That lets each component be written straight into the output with a broadcast 1D identity axis: no
    identity grid, flipped copy or temporaries, which on CPU is several times faster than building the
    grid with autograd-tracked ops.
    """
    if field.dim() != 5 or field.shape[-1] != 3:
        raise ValueError(f"field must be (B, D, H, W, 3), got {tuple(field.shape)}")
    field = field.detach()
    grid = torch.empty(field.shape, device=field.device, dtype=dtype)
    for k in range(3):
        axis = torch.linspace(-1.0, 1.0, field.shape[1 + k], device=field.device, dtype=dtype)
        torch.add(field[..., k], axis.view(-1, *([1] * (2 - k))), out=grid[..., 2 - k])
    return grid


def _resample(volume: torch.Tensor, field: torch.Tensor, mode: str) -> torch.Tensor:
    """grid_sample ``volume`` (B, C, D, H, W) at identity + ``field``, in fp64 with autocast off."""
    if volume.dim() != 5:
        raise ValueError(f"volume must be (B, C, D, H, W), got {tuple(volume.shape)}")
    if field.shape[:4] != (volume.shape[0], *volume.shape[2:]):
        raise ValueError(f"field {tuple(field.shape)} does not match volume {tuple(volume.shape)}")
    with torch.autocast(volume.device.type, enabled=False):
        grid = sampling_grid(field.to(volume.device))
        return F.grid_sample(
            volume.to(grid.dtype), grid, mode=mode, padding_mode=PADDING_MODE, align_corners=ALIGN_CORNERS
        )


def warp_image(volume: torch.Tensor, field: torch.Tensor) -> torch.Tensor:
    """Trilinearly warp ``volume`` (B, C, D, H, W) by ``field`` (B, D, H, W, 3).

    Differentiable with respect to ``volume`` (the consistency loss needs that); the field is a constant.
    """
    return _resample(volume, field, "bilinear").to(volume.dtype)


class Warp(Protocol):
    """A drawn deformation that can resample a (B, C, D, H, W) volume: smooth or released."""

    def warp(self, volume: torch.Tensor, mode: str = "bilinear") -> torch.Tensor: ...


def warp_label(label: torch.Tensor, deformation: Warp, mode: LabelMode) -> torch.Tensor:
    """Warp a binary ``label`` (B, C, D, H, W) the way ``mode`` says.

    ``"bilinear"`` interpolates and keeps the fractions (the released code's soft labels, as float);
    ``"nearest"`` takes the nearest voxel's value; ``"rebinarise"`` interpolates and thresholds at 0.5
    (``>= 0.5`` is foreground), so a boundary follows the interpolated position instead of snapping to the
    nearest voxel. The last two keep the label binary and in its dtype.
    """
    if mode == "bilinear":
        return deformation.warp(label, "bilinear").to(torch.promote_types(label.dtype, torch.float32))
    if mode == "nearest":
        return deformation.warp(label, "nearest").to(label.dtype)
    if mode == "rebinarise":
        return (deformation.warp(label, "bilinear") >= 0.5).to(label.dtype)
    raise ValueError(f"mode must be one of {LABEL_MODES}, got {mode!r}")


def consistency_loss(
    prediction_warped: torch.Tensor,
    target_original: torch.Tensor,
    deformation: Warp,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """DS6's deformation consistency: ``loss_fn(p(warp(x)), warp(t(x)))``.

    ``prediction_warped`` is the network's (sigmoided) output on the warped image; ``target_original`` is
    what the original branch contributes: its level-0 logits (released) or probabilities (corrected),
    warped (bilinearly) by the same deformation into the target. Gradients flow through both arguments,
    as in DS6: the target is not detached, so the loss pulls the two branches towards each other.
    ``loss_fn`` is a callable (e.g. the Focal Tversky loss) so this module does not depend on the losses.
    """
    return loss_fn(prediction_warped, deformation.warp(target_original).to(target_original.dtype))


__all__ = [
    "ALIGN_CORNERS",
    "PADDING_MODE",
    "Deformation",
    "DeformationConfig",
    "LabelMode",
    "Warp",
    "consistency_loss",
    "random_bspline_field",
    "sampling_grid",
    "voxels_to_normalised",
    "warp_image",
    "warp_label",
]
