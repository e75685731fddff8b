"""Maximum intensity projections of label volumes and their per-patch crops (the MIP-loss targets).

SPOCKMIP's target for a patch is *not* the MIP of the label patch: it is the crop of the MIP of the whole
label volume, taken at the patch's position in the two axes that survive the projection. That target
carries vessels the patch cannot see along the ray, which is the paper's point (and its caveat).
Projections are named after volume axes (X, Y, Z); a MIP over axis ``a`` keeps the other two in volume
order (:func:`spockmip.axes.remaining_axes`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch
from torch.autograd.function import FunctionCtx, once_differentiable

from spockmip.axes import VOLUME_AXES, VolumeAxis, remaining_axes, to_network, to_volume, volume_dim

MIP_AXES = ("x", "y", "z", "multi")


def projection_axes(mip_axis: str) -> tuple[VolumeAxis, ...]:
    """Axes a ``mip_axis`` setting projects over; ``none`` means no MIP term."""
    if mip_axis == "none":
        return ()
    if mip_axis == "multi":
        return VOLUME_AXES
    if mip_axis in VOLUME_AXES:
        return (mip_axis,)  # type: ignore[return-value]
    raise ValueError(f"unknown mip_axis {mip_axis!r}; expected 'none' or one of {MIP_AXES}")


def volume_mips(label: np.ndarray, axes: Iterable[VolumeAxis] = VOLUME_AXES) -> dict[VolumeAxis, np.ndarray]:
    """Whole-volume MIPs of an (X, Y, Z) label, computed once per volume before training."""
    if label.ndim != 3:
        raise ValueError(f"expected a 3D (X, Y, Z) label volume, got shape {label.shape}")
    return {axis: label.max(axis=volume_dim(axis) + 3) for axis in axes}


def crop_mip(
    mip: np.ndarray, axis: VolumeAxis, start: Sequence[int], patch_size: Sequence[int]
) -> np.ndarray:
    """The part of a whole-volume MIP over ``axis`` that lies under a patch, zero-padded where it overhangs.

    ``start`` and ``patch_size`` are (X, Y, Z) triples in volume order; the result has the patch's extent
    along the two remaining axes.
    """
    kept = [volume_dim(a) + 3 for a in remaining_axes(axis)]
    crop = np.zeros([patch_size[d] for d in kept], dtype=mip.dtype)
    region = tuple(slice(start[d], min(start[d] + patch_size[d], mip.shape[i])) for i, d in enumerate(kept))
    inside = mip[region]
    crop[tuple(slice(0, n) for n in inside.shape)] = inside
    return crop


def patch_mip(volume_ordered: torch.Tensor, axis: VolumeAxis) -> torch.Tensor:
    """MIP of a batch of (…, X, Y, Z) tensors over ``axis``; differentiable (max routes the gradient)."""
    return volume_ordered.amax(dim=volume_dim(axis))


def network_dim(axis: VolumeAxis) -> int:
    """Negative tensor dim of volume axis ``axis`` in a network-ordered tensor (…, Z, X, Y).

    Read off :func:`spockmip.axes.to_network` itself (sizes 1, 2, 3 label x, y, z), so it cannot drift
    from the one place that defines the layout.
    """
    probe = to_network(torch.empty(1, 2, 3)).shape
    return probe.index(volume_dim(axis) + 4) - 3


class _AxisMaxima(torch.autograd.Function):
    """Max over several dims of one tensor (keepdim), with one fused backward for all of them.

    The gradient is exactly :func:`torch.amax`'s: each projection's gradient is shared equally among the
    voxels that attain the maximum (ties are the rule, not the exception: the side outputs are nearest-
    upsampled, so every value repeats 2 or 4 times along a ray). ``amax``'s own backward, once per axis,
    builds a boolean mask, converts it to int64 to count ties and to float to multiply, and autograd then
    adds the per-axis gradients; here one float mask buffer serves every axis and the per-axis terms are
    accumulated in place. Together with reducing in network order this took ``mip_loss`` from 1.9× to
    4.5-7× faster than the per-sample loop on a 2-core CPU (``benchmarks/bench_mip_loss.py``,
    ``docs/performance.md``).
    """

    @staticmethod
    def forward(ctx: FunctionCtx, tensor: torch.Tensor, dims: tuple[int, ...]) -> tuple[torch.Tensor, ...]:
        maxima = tuple(tensor.amax(dim=d, keepdim=True) for d in dims)
        ctx.save_for_backward(tensor, *maxima)
        ctx.dims = dims  # type: ignore[attr-defined]
        ctx.set_materialize_grads(False)
        return maxima

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, *grads: torch.Tensor | None) -> tuple[torch.Tensor | None, None]:
        tensor, *maxima = ctx.saved_tensors  # type: ignore[attr-defined]
        gradient: torch.Tensor | None = None
        mask = torch.empty_like(tensor)
        for dim, maximum, grad in zip(ctx.dims, maxima, grads, strict=True):  # type: ignore[attr-defined]
            if grad is None:
                continue
            torch.eq(tensor, maximum, out=mask)
            share = grad / mask.sum(dim=dim, keepdim=True)
            if gradient is None:
                gradient = mask * share
            else:
                gradient.addcmul_(mask, share)
        return gradient, None


def network_patch_mips(
    network_ordered: torch.Tensor, axes: Sequence[VolumeAxis]
) -> dict[VolumeAxis, torch.Tensor]:
    """MIPs over several volume axes of one tensor in network order (…, Z, X, Y), each in volume 2D order.

    Each maximum is taken over the network-ordered tensor as it lies in memory and only the small 2D
    result is put in volume order; reducing a permuted view instead walks memory across the grain (up to
    ~30× slower on a CPU for the middle axis). Values and gradients are those of
    ``patch_mip(to_volume(network_ordered), axis)``; the backward of all axes is fused.
    """
    if not axes:
        return {}
    maxima = _AxisMaxima.apply(network_ordered, tuple(network_dim(a) for a in axes))
    return {axis: to_volume(m).squeeze(volume_dim(axis)) for axis, m in zip(axes, maxima, strict=True)}


def network_patch_mip(network_ordered: torch.Tensor, axis: VolumeAxis) -> torch.Tensor:
    """MIP over a volume axis of a tensor in network order (…, Z, X, Y), in the volume's 2D order.

    Projecting over the *volume* axis (not the network dim at the same position) is what makes prediction
    and target project over the same axis (the released code projects the permuted prediction over the
    wrong one). Equal to ``patch_mip(to_volume(network_ordered), axis)``; see :func:`network_patch_mips`.
    """
    return network_patch_mips(network_ordered, (axis,))[axis]
