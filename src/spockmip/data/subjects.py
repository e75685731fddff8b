"""Subjects (image, label, their whole-volume label MIPs) and the patches training and inference cut.

Volumes are read and validated by :mod:`spockmip.files.volumes`, in the voxel order it names. Arrays are
(X, Y, Z) in that order; patches leave this module in network order (Z, X, Y) via
:func:`spockmip.axes.to_network`, as stored; the network sees each divided by its own maximum
(:func:`normalise_patches`, applied batch-wise where the batch is computed on).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import nibabel as nib
import numpy as np
import torch
from scipy import ndimage
from skimage.morphology import skeletonize

from spockmip.axes import VolumeAxis, to_network
from spockmip.errors import DataError
from spockmip.files.volumes import (
    Orientation,
    in_working_order,
    load_nifti,
    subject_name,
    validate_image,
    validate_label,
    validate_pair,
    validate_size,
)
from spockmip.objective.mip import crop_mip, pad_centred, volume_mips

Triple = tuple[int, int, int]


@dataclass
class Subject:
    """One volume and its optional label, both (X, Y, Z) in the voxel order ``orientation`` names.

    ``reference`` is the image as read (orientation, affine, header): outputs are written back onto it;
    ``affine`` is the affine of the working grid (the stored one, or the canonical grid's). The file paths
    name the data a training run was made from (:func:`spockmip.training.runs.data_identity`).
    """

    name: str
    image: np.ndarray
    label: np.ndarray | None
    affine: np.ndarray
    image_path: Path
    reference: nib.Nifti1Image
    orientation: Orientation = "stored"
    label_path: Path | None = None
    label_mips: dict[VolumeAxis, np.ndarray] = field(default_factory=dict)


def load_subject(
    image_path: str | Path,
    label_path: str | Path | None = None,
    patch_size: Sequence[int] | None = None,
    mip_axes: Sequence[VolumeAxis] = (),
    name: str | None = None,
    orientation: Orientation = "stored",
) -> Subject:
    """Load and validate an image (and label) in ``orientation``'s voxel order; precompute label MIPs.

    Reorienting to canonical order flips axes as numpy views with negative strides, which
    ``torch.from_numpy`` (and so torchio's patch queue) refuses; such arrays are copied into C order here,
    once, so every consumer of a :class:`Subject` gets arrays torch can take.
    """
    image_path = Path(image_path)
    image_nii = load_nifti(image_path)
    working = in_working_order(image_nii, orientation)
    image = working.get_fdata(dtype=np.float32)
    if orientation == "canonical":
        image = np.ascontiguousarray(image)
    validate_image(image, image_path)
    if patch_size is not None:
        validate_size(image.shape, patch_size, image_path)
    label = None
    if label_path is not None:
        label_path = Path(label_path)
        label_nii = load_nifti(label_path)
        validate_pair(image_nii, label_nii, image_path, label_path)
        label = validate_label(np.asanyarray(in_working_order(label_nii, orientation).dataobj), label_path)
        if orientation == "canonical":
            label = np.ascontiguousarray(label)
    subject = Subject(
        name=name or subject_name(image_path),
        image=image,
        label=label,
        affine=working.affine,
        image_path=image_path,
        reference=image_nii,
        orientation=orientation,
        label_path=label_path,
    )
    if label is not None and mip_axes:
        subject.label_mips = volume_mips(label, mip_axes)
    return subject


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
    (:func:`spockmip.objective.mip.pad_centred`). When ``size`` is a multiple of the patch but not of the
    stride, the far edge stays uncovered: the released grid's own quirk, kept.
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


def normalise_patches(patches: torch.Tensor) -> torch.Tensor:
    """Divide each patch of a batch (first dimension) by its own maximum, as the published models expect;
    patches whose maximum is not positive become zero.

    The released code divides unconditionally and produces NaN on empty (or non-positive) patches. This
    runs on whichever device holds the batch: on a GPU it is one cheap kernel over raw patches instead of
    a pass over every patch on the host. The division is IEEE float32 on every device, so the numbers are
    those of a per-patch numpy division on the host, bit for bit.
    """
    peaks = patches.amax(dim=tuple(range(1, patches.dim())), keepdim=True)
    return (patches / peaks).masked_fill_(peaks <= 0, 0.0)


def extract(volume: np.ndarray, start: Sequence[int], patch_size: Sequence[int]) -> np.ndarray:
    """The (X, Y, Z) block of ``volume`` at ``start``."""
    return volume[tuple(slice(s, s + p) for s, p in zip(start, patch_size, strict=True))]


@dataclass(frozen=True)
class PatchSpec:
    """Which subject and where: the unit an epoch's sampling plan is made of."""

    subject: int
    start: Triple


class SubjectPatches(torch.utils.data.Dataset):
    """Training/validation samples keyed by :class:`PatchSpec`, in network order, with whole-volume MIP
    crops (and, with ``tube``, the label's skeleton tube): whichever patches a sampler names, in any epoch.

    Keyed by place rather than by position in a plan, one loader can serve every epoch: its worker
    processes start once, and each epoch's plan reaches them through the sampler, which runs in the
    training process (:class:`spockmip.data.sampling.EpochOrder`).
    """

    def __init__(
        self,
        subjects: Sequence[Subject],
        patch_size: Sequence[int],
        mip_axes: Sequence[VolumeAxis] = (),
        tube: bool = False,
    ) -> None:
        missing = [s.name for s in subjects if s.label is None]
        if missing:
            raise DataError(f"training/validation subjects need labels; missing for {', '.join(missing)}")
        self.subjects, self.patch_size, self.mip_axes = list(subjects), tuple(patch_size), tuple(mip_axes)
        self.tube = tube

    def __getitem__(self, spec: PatchSpec) -> dict[str, torch.Tensor]:
        subject = self.subjects[spec.subject]
        return patch_item(
            subject,
            spec,
            extract(subject.image, spec.start, self.patch_size),
            extract(subject.label, spec.start, self.patch_size),
            self.patch_size,
            self.mip_axes,
            self.tube,
        )


class PatchDataset(torch.utils.data.Dataset):
    """The samples of a fixed plan (a list of :class:`PatchSpec`), by position: the validation grid.

    The plan is built outside, from a seeded generator per epoch, so a resumed run draws exactly the
    patches an uninterrupted one would.
    """

    def __init__(
        self,
        subjects: Sequence[Subject],
        plan: Sequence[PatchSpec],
        patch_size: Sequence[int],
        mip_axes: Sequence[VolumeAxis] = (),
        tube: bool = False,
    ) -> None:
        self.patches = SubjectPatches(subjects, patch_size, mip_axes, tube)
        self.plan = list(plan)

    def __len__(self) -> int:
        return len(self.plan)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.patches[self.plan[index]]


def patch_item(
    subject: Subject,
    spec: PatchSpec,
    image: np.ndarray,
    label: np.ndarray,
    patch_size: Sequence[int],
    mip_axes: Sequence[VolumeAxis],
    tube: bool = False,
) -> dict[str, torch.Tensor]:
    """One training sample from a cropped image/label block: centre-padded to ``patch_size`` where it
    overhangs, in network order, with the whole-volume MIP crops of ``mip_axes`` and, with ``tube``, the
    padded label's skeleton tube (:func:`skeleton_tube`) as ``tube``.

    The image is left as stored (float32): the network's inputs are normalised batch-wise where the batch
    is computed on (:func:`normalise_patches`). Every sampler hands its blocks through here, so all of them
    produce identical samples for one place.
    """
    image = pad_centred(image.astype(np.float32, copy=False), patch_size)
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
    if tube:
        item["tube"] = to_network(torch.from_numpy(skeleton_tube(label))[None]).contiguous()
    return item


# The released Skeleton Recall transform thickens the skeleton by two dilations with skimage's default
# footprint, the 6-neighbourhood cross.
_TUBE_FOOTPRINT = ndimage.generate_binary_structure(3, 1)


def skeleton_tube(label: np.ndarray) -> np.ndarray:
    """Skeleton Recall's target for one (X, Y, Z) label block, as float32 0/1: the skeleton of the label
    binarised at 0.5 (``skimage.morphology.skeletonize``), dilated twice with the 6-neighbourhood cross
    and masked by the binarised label. An empty label gives an empty tube.

    A binary dilation with a symmetric footprint and a zero border is the released grey dilation of a 0/1
    array, whose reflected border adds nothing to a maximum.
    """
    binary = np.asarray(label) >= 0.5
    if not binary.any():
        return np.zeros(binary.shape, dtype=np.float32)
    tube = ndimage.binary_dilation(skeletonize(binary), structure=_TUBE_FOOTPRINT, iterations=2)
    return (tube & binary).astype(np.float32)


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


# Batches each worker keeps ready: enough to cover a slow batch (a patch near a large MIP crop, a busy
# host) without holding many pinned copies of the published 15 x 64^3 batch.
PREFETCH_BATCHES = 4


@dataclass(frozen=True)
class BatchLoading:
    """How batches reach the network: their size, the worker processes that make them, and whether they
    are made in page-locked host memory (for a GPU: the copy then runs without blocking the host)."""

    batch_size: int
    num_workers: int = 0
    pin_memory: bool = False

    def loader(
        self,
        dataset: torch.utils.data.Dataset,
        sampler: torch.utils.data.Sampler | None = None,
        *,
        in_process: bool = False,
    ) -> torch.utils.data.DataLoader:
        """Batches of ``dataset`` in ``sampler``'s order (default: the dataset's own).

        Worker processes, when there are any, persist for the loader's life, so a loader built once
        serves every epoch without restarting them. ``in_process`` datasets (torchio's queue) are read
        without workers. The loader draws its workers' base seed from a generator of its own, so
        torch's global generator, which a resumed run restores, never moves.
        """
        workers = 0 if in_process else self.num_workers
        return torch.utils.data.DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=workers,
            persistent_workers=workers > 0,
            prefetch_factor=PREFETCH_BATCHES if workers > 0 else None,
            pin_memory=self.pin_memory,
            worker_init_fn=seed_worker,
            generator=torch.Generator(),
        )
