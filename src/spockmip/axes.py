"""The one place that knows how volume axes map to network axes.

Volumes are arrays ``(X, Y, Z)`` with Z the slice axis (how nibabel reads TOF-MRA slabs). The published
SPOCKMIP/DS6 networks were trained on patches permuted to ``(Z, X, Y)`` (slice axis first), so every
patch is permuted on the way into the network and back on the way out. Projection axes (MIP loss) are
named after the *volume* axes, whatever order the network sees; this module turns such a name into the
tensor dimension to reduce over, in either layout.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # the permutations use tensor methods only, so modules that need axis names skip torch
    import torch

VolumeAxis = Literal["x", "y", "z"]
VOLUME_AXES: tuple[VolumeAxis, ...] = ("x", "y", "z")

# Position of each volume axis among the last three dims of a volume-ordered tensor.
_VOLUME_POSITION: dict[VolumeAxis, int] = {"x": 0, "y": 1, "z": 2}


def to_network(volume_patch: torch.Tensor) -> torch.Tensor:
    """Permute the last three dims from volume order (X, Y, Z) to network order (Z, X, Y)."""
    lead = volume_patch.dim() - 3
    return volume_patch.permute(*range(lead), lead + 2, lead, lead + 1)


def to_volume(network_patch: torch.Tensor) -> torch.Tensor:
    """Exact inverse of :func:`to_network`: (Z, X, Y) back to (X, Y, Z)."""
    lead = network_patch.dim() - 3
    return network_patch.permute(*range(lead), lead + 1, lead + 2, lead)


def volume_dim(axis: str) -> int:
    """Negative tensor dim of volume axis ``axis`` in a volume-ordered tensor (batch/channel dims vary)."""
    if axis not in _VOLUME_POSITION:
        raise ValueError(f"unknown axis {axis!r}; expected one of {VOLUME_AXES}")
    return _VOLUME_POSITION[axis] - 3  # type: ignore[index]


def remaining_axes(axis: VolumeAxis) -> tuple[VolumeAxis, VolumeAxis]:
    """The two volume axes left after projecting over ``axis``, in volume order.

    A MIP over ``axis`` of an (X, Y, Z) array is a 2D array over these two axes, in this order.
    """
    return tuple(a for a in VOLUME_AXES if a != axis)  # type: ignore[return-value]
