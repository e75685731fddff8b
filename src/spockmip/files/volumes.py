"""NIfTI volumes as the networks see them: read in full, validated, and in the chosen voxel order.

The released SPOCKMIP/DS6 code feeds its networks the file's *stored* voxel order: its MIP data set reads
the arrays as they lie, and its torchio path applies ``ToCanonical`` followed by a resampling onto the
original image's grid, which undoes the reorientation. ``orientation: stored`` (the default) therefore
reproduces what the published networks were trained on; ``canonical`` reorients to RAS+ (a pure axis
permutation/flip) for users who want one anatomical frame across differently stored files, and maps
predictions back with :func:`from_canonical`.

Every problem with an input file raises :class:`DataError` naming the file, so the CLI and the workflow
can report it in one line and exit non-zero. Nothing here needs torch, so evaluation jobs start fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import nibabel as nib
import numpy as np
from nibabel.affines import voxel_sizes
from nibabel.funcs import squeeze_image
from nibabel.orientations import apply_orientation, io_orientation, ornt_transform

from spockmip.errors import DataError
from spockmip.settings.catalogue import ORIENTATIONS

AFFINE_TOLERANCE = 1e-4
# 2^31 voxels (8.6 GB as float32) is several times the largest TOF-MRA; beyond it a header is corrupt.
MAX_VOXELS = 2**31
# |det| of the affine's 3x3 part in mm^3 per voxel; real voxels are at least ~1e-3 mm^3.
SINGULAR_DETERMINANT = 1e-9
# File names NIfTI discovery reads as volumes; the longer suffix first, so it is the one stripped.
NIFTI_SUFFIXES = (".nii.gz", ".nii")
Orientation = Literal["stored", "canonical"]


def subject_name(path: Path) -> str:
    """File name without its NIfTI extension(s): the subject id that pairs an image with its label."""
    name = path.name
    for suffix in NIFTI_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def nifti_files(folder: Path) -> dict[str, Path]:
    """The volumes of ``folder`` by subject id, sorted by id: every regular ``.nii``/``.nii.gz`` file in it.

    Hidden files are skipped: they are temporaries of a write in progress or belong to other tools. Two
    files naming one subject (``x.nii`` and ``x.nii.gz``) are refused rather than one silently chosen.
    """
    if not folder.exists():
        raise DataError(f"{folder}: folder not found")
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder")
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.name.endswith(NIFTI_SUFFIXES) or not path.is_file():
            continue
        subject = subject_name(path)
        if subject in found:
            raise DataError(
                f"{folder}: {found[subject].name} and {path.name} name the same subject {subject}; keep one"
            )
        found[subject] = path
    return dict(sorted(found.items()))


def labelled_volumes(volumes: Path, labels: Path | None = None) -> dict[str, tuple[Path, Path | None]]:
    """The volumes of the folder ``volumes`` by subject id, each with its label from the folder ``labels``
    (None when no labels folder is given, else every volume needs one): how prediction pairs images with
    references and evaluation pairs predictions with labels."""
    found = nifti_files(volumes)
    if not found:
        raise DataError(f"{volumes}: no .nii or .nii.gz files")
    references = nifti_files(labels) if labels else {}
    unlabelled = [str(found[s]) for s in found if labels and s not in references]
    if unlabelled:
        raise DataError(f"{labels}: no label for {', '.join(unlabelled)}")
    return {subject: (path, references.get(subject)) for subject, path in found.items()}


def find_volume(folder: Path, subject: str, hint: str) -> Path:
    """``folder/<subject>.nii.gz`` or ``.nii``; exactly one must exist. ``hint`` ends the message when none
    does, saying where the caller expected its data (a config key, a command-line option)."""
    found = [path for path in (folder / f"{subject}{suffix}" for suffix in NIFTI_SUFFIXES) if path.is_file()]
    if not found:
        raise DataError(f"{folder / (subject + NIFTI_SUFFIXES[0])}: not found (nor .nii); {hint}")
    if len(found) > 1:
        raise DataError(f"{folder}: both {found[0].name} and {found[1].name} exist for {subject}; keep one")
    return found[0]


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


def validate_image(array: np.ndarray, path: Path) -> None:
    if not np.all(np.isfinite(array)):
        raise DataError(f"{path}: {int(np.size(array) - np.isfinite(array).sum())} non-finite intensities")


def validate_label(array: np.ndarray, path: Path) -> np.ndarray:
    values = np.unique(array)
    if not np.all(np.isin(values, (0, 1))):
        shown = ", ".join(f"{v:g}" for v in values[:6])
        raise DataError(f"{path}: label must contain only 0 and 1, found values {shown}")
    return array.astype(np.uint8)


def validate_pair(image: nib.Nifti1Image, label: nib.Nifti1Image, image_path: Path, label_path: Path) -> None:
    if image.shape != label.shape:
        raise DataError(
            f"{label_path}: shape {label.shape} differs from image {image_path} shape {image.shape}"
        )
    if not np.allclose(image.affine, label.affine, atol=AFFINE_TOLERANCE):
        raise DataError(
            f"{label_path}: affine differs from image {image_path} by up to "
            f"{np.abs(image.affine - label.affine).max():.3g} (tolerance {AFFINE_TOLERANCE})"
        )


def validate_size(shape: Sequence[int], patch_size: Sequence[int], path: Path) -> None:
    if any(s < p for s, p in zip(shape, patch_size, strict=True)):
        raise DataError(
            f"{path}: volume {tuple(shape)} is smaller than the patch {tuple(patch_size)} "
            "along at least one axis; choose a smaller patch size"
        )


def load_mask(
    path: str | Path, reference: str | Path | None = None, orientation: Orientation = "stored"
) -> np.ndarray:
    """A binary mask (prediction or label) in ``orientation``'s voxel order, checked against ``reference``."""
    return load_mask_and_spacing(path, reference, orientation)[0]


def load_mask_and_spacing(
    path: str | Path, reference: str | Path | None = None, orientation: Orientation = "stored"
) -> tuple[np.ndarray, tuple[float, float, float]]:
    """:func:`load_mask` with the voxel size in mm along each of the returned array's axes.

    The sizes are read from the affine (the lengths of its columns) after the reorientation, so they
    follow the axes of the array whatever ``orientation`` permuted, and agree with what the file's
    voxel-to-world mapping says rather than with a header field that might not.
    """
    path = Path(path)
    mask_nii = load_nifti(path)
    if reference is not None:
        reference = Path(reference)
        validate_pair(load_nifti(reference), mask_nii, reference, path)
    working = in_working_order(mask_nii, orientation)
    x, y, z = (float(size) for size in voxel_sizes(working.affine))
    return validate_label(np.asanyarray(working.dataobj), path), (x, y, z)
