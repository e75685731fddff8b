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

from spockmip.axes import VOLUME_AXES, VolumeAxis, remaining_axes, to_volume, volume_dim

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


def network_patch_mip(network_ordered: torch.Tensor, axis: VolumeAxis) -> torch.Tensor:
    """MIP over a volume axis of a tensor in network order (…, Z, X, Y), in the volume's 2D order.

    Going back to volume order first is what makes prediction and target project over the same axis (the
    released code projects the permuted prediction over the wrong one).
    """
    return patch_mip(to_volume(network_ordered), axis)
