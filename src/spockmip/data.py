"""Loading and validating image/label NIfTI pairs, their voxel order, patch sampling.

The released SPOCKMIP/DS6 code feeds its networks the file's *stored* voxel order: its MIP data set reads
the arrays as they lie, and its torchio path applies ``ToCanonical`` followed by a resampling onto the
original image's grid, which undoes the reorientation. ``orientation: stored`` (the default) therefore
reproduces what the published networks were trained on; ``canonical`` reorients to RAS+ (a pure axis
permutation/flip) for users who want one anatomical frame across differently stored files, and maps
predictions back with :func:`from_canonical`. Arrays are (X, Y, Z) in the chosen order; patches leave this
module in network order (Z, X, Y) via :func:`spockmip.axes.to_network`, as stored; the network sees each
divided by its own maximum (:func:`normalise_patches`, applied batch-wise where the batch is computed on).

Every problem with an input file raises :class:`DataError` naming the file, so the CLI and the workflow
can report it in one line and exit non-zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import nibabel as nib
import numpy as np
import torch
from nibabel.funcs import squeeze_image
from nibabel.orientations import apply_orientation, io_orientation, ornt_transform

from spockmip.axes import VolumeAxis, to_network
from spockmip.mip import crop_mip, pad_centred, volume_mips

AFFINE_TOLERANCE = 1e-4
# 2^31 voxels (8.6 GB as float32) is several times the largest TOF-MRA; beyond it a header is corrupt.
MAX_VOXELS = 2**31
# |det| of the affine's 3x3 part in mm^3 per voxel; real voxels are at least ~1e-3 mm^3.
SINGULAR_DETERMINANT = 1e-9
Triple = tuple[int, int, int]
Orientation = Literal["stored", "canonical"]
ORIENTATIONS: tuple[str, ...] = ("stored", "canonical")


class DataError(ValueError):
    """An input volume is unusable; the message names the file and what is wrong with it."""


def load_nifti(path: str | Path) -> nib.Nifti1Image:
    """Read a NIfTI file fully (so a truncated file fails here, not halfway through training).

    The header is checked before any voxel is read: a corrupt size would otherwise ask for terabytes, and a
    singular or non-finite affine would turn every later reorientation into nonsense. Trailing singleton
    dimensions (X, Y, Z, 1), common in exported scans, are dropped.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        image = nib.load(path)
    except Exception as error:  # nibabel raises many types for corrupt files; all mean "unreadable"
        raise DataError(f"{path}: not a readable NIfTI volume ({error})") from error
    _validate_header(image, path)
    try:
        image = squeeze_image(image)
        image.get_fdata(dtype=np.float32)
    except Exception as error:  # as above: a body that does not match its header
        raise DataError(f"{path}: not a readable NIfTI volume ({error})") from error
    if len(image.shape) != 3:
        raise DataError(f"{path}: expected a 3D volume, got shape {image.shape}")
    return image


def _validate_header(image: nib.Nifti1Image, path: Path) -> None:
    shape = tuple(int(s) for s in image.shape)
    voxels = int(np.prod(shape, dtype=np.float64)) if shape else 0
    if voxels < 1:
        raise DataError(f"{path}: header declares an empty volume of shape {shape}")
    if voxels > MAX_VOXELS:
        raise DataError(
            f"{path}: header declares {' x '.join(map(str, shape))} = {voxels:.3g} voxels, more than the "
            f"{MAX_VOXELS:.3g} of any plausible scan (reading it would need {voxels * 4 / 1e9:.3g} GB); "
            "the header is corrupt"
        )
    if path.name.endswith(".nii"):
        needed = int(image.header.get_data_offset()) + voxels * image.get_data_dtype().itemsize
        if needed > path.stat().st_size:
            raise DataError(
                f"{path}: header declares {shape} voxels ({needed} bytes) but the file holds only "
                f"{path.stat().st_size} bytes; the file is truncated or its header is corrupt"
            )
    affine = image.affine
    if affine is None or not np.all(np.isfinite(affine)):
        raise DataError(f"{path}: affine has NaN or infinite entries; the voxel-to-world mapping is broken")
    if abs(np.linalg.det(affine[:3, :3])) < SINGULAR_DETERMINANT:
        raise DataError(
            f"{path}: affine is singular (determinant {np.linalg.det(affine[:3, :3]):.3g}); its voxel axes "
            "do not span space, so the volume has no orientation"
        )


def to_canonical(image: nib.Nifti1Image) -> nib.Nifti1Image:
    """Closest canonical (RAS+) orientation: a pure axis permutation/flip, no resampling."""
    return nib.as_closest_canonical(image)


def from_canonical(array: np.ndarray, reference: nib.Nifti1Image) -> np.ndarray:
    """Undo :func:`to_canonical` for an array computed on the canonical grid of ``reference``."""
    original = io_orientation(reference.affine)
    canonical = io_orientation(nib.as_closest_canonical(reference).affine)
    return apply_orientation(array, ornt_transform(canonical, original))


def check_orientation(orientation: str) -> None:
    if orientation not in ORIENTATIONS:
        raise ValueError(f"unknown orientation {orientation!r}; expected one of {ORIENTATIONS}")


def in_working_order(image: nib.Nifti1Image, orientation: Orientation) -> nib.Nifti1Image:
    """The image whose voxel order the networks see: as stored, or reoriented to canonical RAS+."""
    check_orientation(orientation)
    return to_canonical(image) if orientation == "canonical" else image


def to_stored_order(array: np.ndarray, reference: nib.Nifti1Image, orientation: Orientation) -> np.ndarray:
    """Undo :func:`in_working_order` for an array computed in ``orientation``, so it fits ``reference``."""
    check_orientation(orientation)
    return from_canonical(array, reference) if orientation == "canonical" else array


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


def _validate_image(array: np.ndarray, path: Path) -> None:
    if not np.all(np.isfinite(array)):
        raise DataError(f"{path}: {int(np.size(array) - np.isfinite(array).sum())} non-finite intensities")


def _validate_label(array: np.ndarray, path: Path) -> np.ndarray:
    values = np.unique(array)
    if not np.all(np.isin(values, (0, 1))):
        shown = ", ".join(f"{v:g}" for v in values[:6])
        raise DataError(f"{path}: label must contain only 0 and 1, found values {shown}")
    return array.astype(np.uint8)


def _validate_pair(
    image: nib.Nifti1Image, label: nib.Nifti1Image, image_path: Path, label_path: Path
) -> None:
    if image.shape != label.shape:
        raise DataError(
            f"{label_path}: shape {label.shape} differs from image {image_path} shape {image.shape}"
        )
    if not np.allclose(image.affine, label.affine, atol=AFFINE_TOLERANCE):
        raise DataError(
            f"{label_path}: affine differs from image {image_path} by up to "
            f"{np.abs(image.affine - label.affine).max():.3g} (tolerance {AFFINE_TOLERANCE})"
        )


def _validate_size(shape: Sequence[int], patch_size: Sequence[int], path: Path) -> None:
    if any(s < p for s, p in zip(shape, patch_size, strict=True)):
        raise DataError(
            f"{path}: volume {tuple(shape)} is smaller than the patch {tuple(patch_size)} "
            "along at least one axis; choose a smaller patch size"
        )


def load_mask(
    path: str | Path, reference: str | Path | None = None, orientation: Orientation = "stored"
) -> np.ndarray:
    """A binary mask (prediction or label) in ``orientation``'s voxel order, checked against ``reference``."""
    path = Path(path)
    mask_nii = load_nifti(path)
    if reference is not None:
        reference = Path(reference)
        _validate_pair(load_nifti(reference), mask_nii, reference, path)
    return _validate_label(np.asanyarray(in_working_order(mask_nii, orientation).dataobj), path)


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
    _validate_image(image, image_path)
    if patch_size is not None:
        _validate_size(image.shape, patch_size, image_path)
    label = None
    if label_path is not None:
        label_path = Path(label_path)
        label_nii = load_nifti(label_path)
        _validate_pair(image_nii, label_nii, image_path, label_path)
        label = _validate_label(np.asanyarray(in_working_order(label_nii, orientation).dataobj), label_path)
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


def normalise_patches(patches: torch.Tensor) -> torch.Tensor:
    """Divide each patch of a batch (first dimension) by its own maximum, as the published models expect;
    patches whose maximum is not positive become zero.

    The released code divides unconditionally and produces NaN on empty (or non-positive) patches. This
    runs on whichever device holds the batch: on a GPU it is one cheap kernel over raw patches instead of
    a pass over every patch on the host. The division is IEEE float32 on every device, so the numbers are
    those of the per-patch numpy division earlier versions did on the host, bit for bit.
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
    crops: whichever patches a sampler names, in any epoch.

    Keyed by place rather than by position in a plan, one loader can serve every epoch: its worker
    processes start once, and each epoch's plan reaches them through the sampler, which runs in the
    training process (:class:`spockmip.sampling.EpochOrder`).
    """

    def __init__(
        self, subjects: Sequence[Subject], patch_size: Sequence[int], mip_axes: Sequence[VolumeAxis] = ()
    ) -> None:
        missing = [s.name for s in subjects if s.label is None]
        if missing:
            raise DataError(f"training/validation subjects need labels; missing for {', '.join(missing)}")
        self.subjects, self.patch_size, self.mip_axes = list(subjects), tuple(patch_size), tuple(mip_axes)

    def __getitem__(self, spec: PatchSpec) -> dict[str, torch.Tensor]:
        subject = self.subjects[spec.subject]
        return patch_item(
            subject,
            spec,
            extract(subject.image, spec.start, self.patch_size),
            extract(subject.label, spec.start, self.patch_size),
            self.patch_size,
            self.mip_axes,
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
    ) -> None:
        self.patches = SubjectPatches(subjects, patch_size, mip_axes)
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
) -> dict[str, torch.Tensor]:
    """One training sample from a cropped image/label block: centre-padded to ``patch_size`` where it
    overhangs, in network order, with the whole-volume MIP crops of ``mip_axes``.

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
