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
from spockmip.settings.catalogue import MIP_AXES


def projection_axes(mip_axis: str) -> tuple[VolumeAxis, ...]:
    """Axes a ``mip_axis`` setting projects over; ``none`` means no MIP term."""
    if mip_axis == "none":
        return ()
    if mip_axis == "multi":
        return VOLUME_AXES
    if mip_axis in VOLUME_AXES:
        return (mip_axis,)  # type: ignore[return-value]
    raise ValueError(f"unknown mip_axis {mip_axis!r}; expected one of {MIP_AXES}")


def volume_mips(label: np.ndarray, axes: Iterable[VolumeAxis] = VOLUME_AXES) -> dict[VolumeAxis, np.ndarray]:
    """Whole-volume MIPs of an (X, Y, Z) label, computed once per volume before training."""
    if label.ndim != 3:
        raise ValueError(f"expected a 3D (X, Y, Z) label volume, got shape {label.shape}")
    # float32: they are loss targets, and padding must be able to hold PAD_VALUE (a uint8 MIP cannot).
    return {axis: label.max(axis=volume_dim(axis) + 3).astype(np.float32) for axis in axes}


# The released MIP data set completes overhanging patches with float64's machine epsilon rather than 0;
# the value is kept so released-grid patches are reproduced to the last bit (it is 0 to any tolerance).
PAD_VALUE = float(np.finfo(np.float64).eps)


def pad_centred(array: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """``array`` padded to ``shape``, the padding split evenly before and after (one more after if odd).

    This is how the released data set completes a grid patch that overhangs the far edge of the volume,
    for the image, the label and the MIP target alike. An array already of ``shape`` is returned as is.
    """
    missing = [target - size for target, size in zip(shape, array.shape, strict=True)]
    if not any(missing):
        return array
    if min(missing) < 0:
        raise ValueError(f"array {array.shape} is larger than {tuple(shape)}")
    widths = [(m // 2, m - m // 2) for m in missing]
    return np.pad(array, widths, constant_values=np.asarray(PAD_VALUE, dtype=array.dtype))


def crop_mip(
    mip: np.ndarray, axis: VolumeAxis, start: Sequence[int], patch_size: Sequence[int]
) -> np.ndarray:
    """The part of a whole-volume MIP over ``axis`` that lies under a patch, centre-padded where it overhangs.

    ``start`` and ``patch_size`` are (X, Y, Z) triples in volume order; the result has the patch's extent
    along the two remaining axes, padded like the patch itself (:func:`pad_centred`).
    """
    kept = [volume_dim(a) + 3 for a in remaining_axes(axis)]
    region = tuple(slice(start[d], start[d] + patch_size[d]) for d in kept)
    return pad_centred(mip[region], [patch_size[d] for d in kept])


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


# The network dim the released training step projects the prediction over, per ``mip_axis`` name, on a
# tensor in network order (..., Z, X, Y): ``z`` reduces the last dim (Y), ``y`` the X dim, ``x`` the Z dim.
_RELEASED_PREDICTION_DIMS: dict[VolumeAxis, int] = {"z": -1, "y": -2, "x": -3}


def released_patch_mips(
    network_ordered: torch.Tensor, axes: Sequence[VolumeAxis]
) -> dict[VolumeAxis, torch.Tensor]:
    """The prediction MIPs the released training step compares with the targets of ``axes``.

    The released code permutes each patch to (Z, X, Y) and then projects over the dim that the volume axis
    occupied *before* the permutation, so the target over Z meets a prediction over Y (``z``), X meets Z
    (``x``) and Y meets X (``y``). The 2D results are left as they lie, (Z, X), (X, Y) and (Z, Y), and are
    compared with the targets element by element (``mip_pairing: released``). Same fused max as
    :func:`network_patch_mips`.
    """
    if not axes:
        return {}
    dims = tuple(_RELEASED_PREDICTION_DIMS[a] for a in axes)
    maxima = _AxisMaxima.apply(network_ordered, dims)
    return {axis: m.squeeze(d) for axis, d, m in zip(axes, dims, maxima, strict=True)}


def network_patch_mip(network_ordered: torch.Tensor, axis: VolumeAxis) -> torch.Tensor:
    """MIP over a volume axis of a tensor in network order (…, Z, X, Y), in the volume's 2D order.

    Projecting over the *volume* axis (not the network dim at the same position) is what makes prediction
    and target project over the same axis (the released code projects the permuted prediction over the
    wrong one). Equal to ``patch_mip(to_volume(network_ordered), axis)``; see :func:`network_patch_mips`.
    """
    return network_patch_mips(network_ordered, (axis,))[axis]
