"""Subjects (image, label, their whole-volume label MIPs) and the patches training and inference cut.

Volumes are read and validated by :mod:`spockmip.volumes`, in the voxel order it names. Arrays are
(X, Y, Z) in that order; patches leave this module in network order (Z, X, Y) via
:func:`spockmip.axes.to_network`, each divided by its own maximum.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import nibabel as nib
import numpy as np
import torch

from spockmip.axes import VolumeAxis, to_network
from spockmip.mip import crop_mip, pad_centred, volume_mips
from spockmip.volumes import (
    DataError,
    Orientation,
    in_working_order,
    load_nifti,
    validate_image,
    validate_label,
    validate_pair,
    validate_size,
)

Triple = tuple[int, int, int]


@dataclass
class Subject:
    """One volume and its optional label, both (X, Y, Z) in the voxel order ``orientation`` names.

    ``reference`` is the image as read (orientation, affine, header): outputs are written back onto it;
    ``affine`` is the affine of the working grid (the stored one, or the canonical grid's).
    """

    name: str
    image: np.ndarray
    label: np.ndarray | None
    affine: np.ndarray
    image_path: Path
    reference: nib.Nifti1Image
    orientation: Orientation = "stored"
    label_mips: dict[VolumeAxis, np.ndarray] = field(default_factory=dict)


def load_subject(
    image_path: str | Path,
    label_path: str | Path | None = None,
    patch_size: Sequence[int] | None = None,
    mip_axes: Sequence[VolumeAxis] = (),
    name: str | None = None,
    orientation: Orientation = "stored",
) -> Subject:
    """Load and validate an image (and label) in ``orientation``'s voxel order; precompute label MIPs."""
    image_path = Path(image_path)
    image_nii = load_nifti(image_path)
    working = in_working_order(image_nii, orientation)
    image = working.get_fdata(dtype=np.float32)
    validate_image(image, image_path)
    if patch_size is not None:
        validate_size(image.shape, patch_size, image_path)
    label = None
    if label_path is not None:
        label_path = Path(label_path)
        label_nii = load_nifti(label_path)
        validate_pair(image_nii, label_nii, image_path, label_path)
        label = validate_label(np.asanyarray(in_working_order(label_nii, orientation).dataobj), label_path)
    subject = Subject(
        name=name or subject_name(image_path),
        image=image,
        label=label,
        affine=working.affine,
        image_path=image_path,
        reference=image_nii,
        orientation=orientation,
    )
    if label is not None and mip_axes:
        subject.label_mips = volume_mips(label, mip_axes)
    return subject


def subject_name(path: Path) -> str:
    """File name without its NIfTI extension(s)."""
    name = path.name
    for suffix in (".nii.gz", ".nii"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def grid_starts(size: int, patch: int, stride: int) -> list[int]:
    """Patch starts along one axis: every ``stride``, plus one flush with the far edge so all is covered."""
    if stride < 1:
        raise ValueError(f"stride must be positive, got {stride}")
    last = size - patch
    starts = list(range(0, last + 1, stride))
    if starts[-1] != last:
        starts.append(last)
    return starts


def released_grid_starts(size: int, patch: int, stride: int) -> list[int]:
    """Patch starts of the released MIP data set along one axis.

    Every ``stride`` while the patch fits, plus one more start a stride further whenever ``size`` is not
    a multiple of the *patch* size; that patch overhangs the far edge and is centre-padded
    (:func:`spockmip.mip.pad_centred`). When ``size`` is a multiple of the patch but not of the stride, the
    far edge stays uncovered: the released grid's own quirk, kept.
    """
    if stride < 1:
        raise ValueError(f"stride must be positive, got {stride}")
    count = (size - patch) // stride + 1 + (size % patch != 0)
    return [i * stride for i in range(count)]


GridLayout = Literal["flush", "released"]
_GRID_STARTS = {"flush": grid_starts, "released": released_grid_starts}


def grid_positions(
    shape: Sequence[int], patch_size: Sequence[int], strides: Sequence[int], layout: GridLayout = "flush"
) -> list[Triple]:
    """All (X, Y, Z) patch starts of the overlapping grid (overlap = patch − stride).

    ``flush``: the last patch of each axis ends on the far edge (inference, validation); ``released``: the
    released MIP data set's grid (:func:`released_grid_starts`).
    """
    starts = _GRID_STARTS[layout]
    axes = [starts(s, p, d) for s, p, d in zip(shape, patch_size, strides, strict=True)]
    return [(i, j, k) for i in axes[0] for j in axes[1] for k in axes[2]]


def uniform_positions(
    shape: Sequence[int], patch_size: Sequence[int], count: int, rng: np.random.Generator
) -> np.ndarray:
    """``count`` patch starts drawn uniformly so every voxel can be sampled; (count, 3) int array."""
    highs = np.array([s - p + 1 for s, p in zip(shape, patch_size, strict=True)])
    return (rng.random((count, 3)) * highs).astype(np.int64)


def normalise_patch(patch: np.ndarray) -> np.ndarray:
    """Divide by the patch's own maximum, as the published models expect; all-zero patches stay zero.

    The released code divides unconditionally and produces NaN on empty (or non-positive) patches.
    """
    peak = float(patch.max()) if patch.size else 0.0
    if peak <= 0.0:
        return np.zeros_like(patch, dtype=np.float32)
    return (patch / peak).astype(np.float32, copy=False)


def extract(volume: np.ndarray, start: Sequence[int], patch_size: Sequence[int]) -> np.ndarray:
    """The (X, Y, Z) block of ``volume`` at ``start``."""
    return volume[tuple(slice(s, s + p) for s, p in zip(start, patch_size, strict=True))]


@dataclass(frozen=True)
class PatchSpec:
    """Which subject and where: the unit an epoch's sampling plan is made of."""

    subject: int
    start: Triple


class PatchDataset(torch.utils.data.Dataset):
    """Training/validation patches from a fixed plan, in network order, with whole-volume MIP crops.

    The plan (a list of :class:`PatchSpec`) is built outside, from a seeded generator per epoch, so a
    resumed run draws exactly the patches an uninterrupted one would.
    """

    def __init__(
        self,
        subjects: Sequence[Subject],
        plan: Sequence[PatchSpec],
        patch_size: Sequence[int],
        mip_axes: Sequence[VolumeAxis] = (),
    ) -> None:
        missing = [s.name for s in subjects if s.label is None]
        if missing:
            raise DataError(f"training/validation subjects need labels; missing for {', '.join(missing)}")
        self.subjects, self.plan = list(subjects), list(plan)
        self.patch_size, self.mip_axes = tuple(patch_size), tuple(mip_axes)

    def __len__(self) -> int:
        return len(self.plan)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        spec = self.plan[index]
        subject = self.subjects[spec.subject]
        return patch_item(
            subject,
            spec,
            extract(subject.image, spec.start, self.patch_size),
            extract(subject.label, spec.start, self.patch_size),
            self.patch_size,
            self.mip_axes,
        )


def patch_item(
    subject: Subject,
    spec: PatchSpec,
    image: np.ndarray,
    label: np.ndarray,
    patch_size: Sequence[int],
    mip_axes: Sequence[VolumeAxis],
) -> dict[str, torch.Tensor]:
    """One training sample from a cropped image/label block: centre-padded to ``patch_size`` where it
    overhangs, normalised, in network order, with the whole-volume MIP crops of ``mip_axes``.

    Every sampler hands its blocks through here, so all of them produce identical samples for one place.
    """
    image = normalise_patch(pad_centred(image, patch_size))
    label = pad_centred(label.astype(np.float32), patch_size)
    item = {
        "image": to_network(torch.from_numpy(np.ascontiguousarray(image))[None]).contiguous(),
        "label": to_network(torch.from_numpy(np.ascontiguousarray(label))[None]).contiguous(),
        "start": torch.tensor(spec.start),
        "subject": torch.tensor(spec.subject),
    }
    for axis in mip_axes:
        target = crop_mip(subject.label_mips[axis], axis, spec.start, patch_size)
        item[f"mip_{axis}"] = torch.from_numpy(target.astype(np.float32))[None]
    return item


def grid_plan(
    subjects: Sequence[Subject],
    patch_size: Sequence[int],
    strides: Sequence[int],
    layout: GridLayout = "flush",
) -> list[PatchSpec]:
    """Every grid patch of every subject (validation, and the grid samplers of training)."""
    return [
        PatchSpec(index, start)
        for index, subject in enumerate(subjects)
        for start in grid_positions(subject.image.shape, patch_size, strides, layout)
    ]


def uniform_plan(
    subjects: Sequence[Subject], patch_size: Sequence[int], count: int, rng: np.random.Generator
) -> list[PatchSpec]:
    """``count`` patches from subjects chosen uniformly, at uniformly drawn positions."""
    owners = rng.integers(0, len(subjects), size=count)
    plan = []
    for index in range(len(subjects)):
        chosen = np.flatnonzero(owners == index)
        starts = uniform_positions(subjects[index].image.shape, patch_size, len(chosen), rng)
        plan.extend(PatchSpec(index, tuple(int(v) for v in s)) for s in starts)
    order = rng.permutation(len(plan))
    return [plan[i] for i in order]


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: numpy seeded from torch's per-worker seed (base seed + worker id)."""
    np.random.seed(torch.initial_seed() % 2**32)
