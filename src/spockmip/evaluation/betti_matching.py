"""The Betti matching error of a prediction against its label, from the authors' compiled implementation.

Betti numbers only count features: a prediction that misses one vessel and invents another elsewhere has
the label's Betti numbers and a Betti error of 0. The Betti matching error (Stucki et al., ICML 2023; in
3D, Stucki et al. 2024, arXiv 2407.04683) matches each feature (component, loop, cavity) of the prediction
with the feature of the label it spatially corresponds to, through the persistence barcode of the union
of both masks, and counts the features of either mask left without a partner: the example above scores 2.

The value is the one Betti-Matching-3D reports on the two binary masks (a superlevel filtration: the
masks are handed over as ``1 - mask`` to its sublevel filtration), counting every feature of both masks.
For binary masks every persistence interval is [0, 1), so a matched pair costs nothing (its intervals are
identical) and each unmatched feature costs exactly 1; :func:`_check` verifies both facts on every call.

Connectivity differs from :mod:`spockmip.evaluation.metrics`. Betti-Matching-3D builds the cubical
complex with voxels as vertices (V-construction), so its foreground is 6-connected and its background
26-connected; the Betti numbers and Betti errors of :mod:`~spockmip.evaluation.metrics` use 26-connected
foreground and 6-connected background. Two vessel voxels touching only along an edge or at a corner are
one component there and two components here.

The implementation never reports each mask's oldest component (its interval never ends). So that an empty
prediction against one vessel still scores 1, both masks are padded by one background voxel and given
one shared foreground voxel at the padded box's first corner: that voxel comes first in the
implementation's tie-breaking order, so it is the oldest component of both masks and the one left out,
and every real component is reported.

The implementation is the compiled ``betti_matching`` module that the ``topolosses`` wheel ships
(``pip install 'spockmip[topology]'``). It is loaded from its file, never through the ``topolosses``
package, whose losses import torch and torchvision: a torchvision wheel built for CUDA fails to import
beside a CPU torch, and the compiled module needs neither. Without it, :func:`betti_matching_available` is
False.

Cost and protocol: the implementation holds about 1.2 kB per voxel of the box it is given (a 128³ box
takes about 2.6 GiB and 6 s on two CPU cores; a whole 480×640×163 scan would need about 60 GB). Both masks
are therefore cropped to the bounding box of their union (which changes no value: the implementation's
order is lexicographic in the voxel indices, which cropping keeps). Volumes of at most
:attr:`BettiMatchingProtocol.max_whole_voxels` voxels are scored whole; larger ones patch-wise, as the sum
over patches of the error within each patch (see :class:`BettiMatchingProtocol`). Which of the two applies
depends on the volume's shape only, and patch locations on the label only, so every prediction of a
subject is scored on the same region and paired comparisons between variants stay paired.

Checks: the implementation computes parts of the matching in worker threads and ignores their failures
(out of memory, e.g. under an address-space limit): the result then silently lacks pairs, holds spurious
ones, or reports matched pairs as unmatched. Each call is therefore checked (:func:`_check`): the pairs
reported for each mask must add up to its Betti numbers computed here independently (same connectivity),
every interval must be [0, 1), and a small ring appended beside both masks, a loop they share, must come
back matched. Any mismatch raises :class:`~spockmip.errors.MetricError` instead of returning a wrong value.
"""

from __future__ import annotations

import functools
import importlib.machinery
import importlib.metadata
import importlib.util
import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

from spockmip.errors import MetricError, SettingsError
from spockmip.evaluation.metrics import BETTI_MATCHING_KEYS, _as_pair, _bounding_box
from spockmip.settings.catalogue import (
    BETTI_MATCHING_PATCH,
    BETTI_MATCHING_PATCHES,
    BETTI_MATCHING_SEED,
    BETTI_MATCHING_WHOLE_VOXELS,
)

# The implementation reports dimensions 0, 1 and 2 of a 3D volume; dimension 2 (cavities) is checked
# but not reported, as the Betti errors of spockmip.evaluation.metrics are not either.
_DIMENSIONS = 3
_DISTRIBUTION = "topolosses"
_EXTENSION = "betti_matching"
INSTALL_HINT = "pip install 'spockmip[topology]' (the topolosses package)"
_MEMORY_HINT = "raise the memory limit, or lower BettiMatchingProtocol.max_whole_voxels and patch_size"

_Box = tuple[slice, slice, slice]
Betti = tuple[int, int, int]
_FACE_NEIGHBOURS = ndi.generate_binary_structure(3, 1)
_ALL_NEIGHBOURS = np.ones((3, 3, 3), dtype=bool)


@dataclass(frozen=True)
class BettiMatchingProtocol:
    """Which region of a subject the Betti matching error is computed on.

    A volume of at most ``max_whole_voxels`` voxels is scored whole. A larger one is scored on
    ``n_patches`` patches of ``patch_size`` voxels (clipped to the volume), centred on distinct label
    voxels drawn by ``numpy.random.default_rng(seed)`` (on any voxels when the label is empty), and its
    value is the sum of the patches' errors; overlapping patches count a shared feature once each.

    Defaults, from measurements on two CPU cores (one call holds about 1.2 kB per voxel of its box):
    128³ voxels whole (2.6 GiB, 6 s) covers the demo phantoms (64×64×48: 0.4 GiB, 0.4 s) and crops of
    that size. Eight 96³ patches (at most 1.2 GiB and 2 s each, half the memory of the largest whole
    call) cover about 14 % of a 480×640×163 scan in under 20 s; a patch is larger than a whole demo
    volume, so it holds branches and the loops between them rather than fragments of one vessel.
    """

    max_whole_voxels: int = BETTI_MATCHING_WHOLE_VOXELS
    patch_size: tuple[int, int, int] = BETTI_MATCHING_PATCH
    n_patches: int = BETTI_MATCHING_PATCHES
    seed: int = BETTI_MATCHING_SEED

    def __post_init__(self) -> None:
        if len(self.patch_size) != 3 or any(int(s) != s or s < 1 for s in self.patch_size):
            raise SettingsError(f"patch_size must be three positive integers, got {self.patch_size!r}")
        if self.n_patches < 1:
            raise SettingsError(f"n_patches must be at least 1, got {self.n_patches}")
        if math.prod(self.patch_size) > self.max_whole_voxels:
            raise SettingsError(
                f"patch_size {self.patch_size} holds more than max_whole_voxels ({self.max_whole_voxels}) "
                "voxels: a patch would cost more memory than the largest volume scored whole"
            )

    def describe(self) -> str:
        """One sentence for a table note: when the volume is scored whole and how patches are drawn."""
        size = "×".join(map(str, self.patch_size))
        return (
            f"Betti matching error (6-connected foreground) on the whole volume up to "
            f"{self.max_whole_voxels:,} voxels, otherwise summed over {self.n_patches} patches of {size} "
            f"voxels centred on label voxels drawn with seed {self.seed}."
        )


def _extension_path() -> Path | None:
    """Where the installed ``topolosses`` keeps the compiled module, found from its file list so that
    nothing of ``topolosses`` (whose losses import torch) is imported."""
    try:
        files = importlib.metadata.files(_DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    names = {_EXTENSION + suffix for suffix in importlib.machinery.EXTENSION_SUFFIXES}
    paths = [Path(str(file.locate())) for file in files if file.name in names]
    return next((path for path in paths if path.is_file()), None)


@functools.cache
def _extension() -> ModuleType | None:
    """The compiled module, loaded from its file on first use and kept for every later call; None when
    it is not installed or does not load on this platform."""
    path = _extension_path()
    if path is None:
        return None
    loader = importlib.machinery.ExtensionFileLoader(_EXTENSION, str(path))
    spec = importlib.util.spec_from_file_location(_EXTENSION, path, loader=loader)
    if spec is None:
        return None
    module = importlib.util.module_from_spec(spec)
    try:
        loader.exec_module(module)
    except ImportError:
        return None
    return module


def betti_matching_available() -> bool:
    """Whether the compiled implementation is installed and loads, so a caller can leave the columns out
    instead of failing."""
    return _extension() is not None


def _required_extension() -> ModuleType:
    module = _extension()
    if module is None:
        raise MetricError(f"the Betti matching error needs the compiled Betti-Matching-3D: {INSTALL_HINT}")
    return module


def _euler(foreground: NDArray[np.bool_]) -> int:
    """Euler characteristic of the complex with the voxels as vertices: a cell (edge, square, cube) is in
    it when all its corner voxels are foreground, so AND-ing neighbours along the axes a cell spans
    marks the cells of that orientation."""
    characteristic = 0
    for spans in itertools.product((False, True), repeat=3):
        cells = foreground
        for axis in np.flatnonzero(spans):
            lower = [slice(None)] * 3
            upper = [slice(None)] * 3
            lower[axis], upper[axis] = slice(None, -1), slice(1, None)
            cells = cells[tuple(lower)] & cells[tuple(upper)]
        characteristic += (-1) ** sum(spans) * int(np.count_nonzero(cells))
    return characteristic


def betti_numbers_6(foreground: NDArray[np.bool_]) -> Betti:
    """(b0, b1, b2) with 6-connected foreground and 26-connected background, as Betti-Matching-3D counts.

    b0 counts the 6-connected components, b2 the 26-connected background regions that do not reach the
    volume's edge (a zero border joins those into one), and b1 = b0 + b2 - χ.
    """
    b0 = int(ndi.label(foreground, structure=_FACE_NEIGHBOURS)[1])
    b2 = int(ndi.label(np.pad(~foreground, 1, constant_values=True), structure=_ALL_NEIGHBOURS)[1]) - 1
    return b0, b0 + b2 - _euler(foreground), b2


def _sentinel_ring_position(shape: tuple[int, ...]) -> tuple[int, slice, slice]:
    """The last x-plane's 3×3 square at the low (y, z) corner, whose border is the sentinel ring."""
    return shape[0] - 1, slice(0, 3), slice(0, 3)


def _prepared(mask: NDArray[np.bool_]) -> NDArray[np.float64]:
    """``mask`` as the implementation's sublevel input (foreground 0.0, background 1.0), framed so that
    every real feature is reported and a lost matching shows.

    The frame: one background voxel around the mask; a foreground voxel at the first corner, which
    becomes the oldest component the implementation leaves out; and, past one more background plane along
    x, a sentinel ring of 8 voxels (a 3×3 square without its centre), one loop, identical in both masks.
    """
    framed = np.zeros((mask.shape[0] + 4, mask.shape[1] + 2, mask.shape[2] + 2), dtype=bool)
    framed[1 : mask.shape[0] + 1, 1:-1, 1:-1] = mask
    framed[0, 0, 0] = True
    ring = _sentinel_ring_position(framed.shape)
    framed[ring] = True
    framed[ring[0], 1, 1] = False
    return np.where(framed, 0.0, 1.0)


def _frame_betti(mask: NDArray[np.bool_]) -> Betti:
    """The Betti numbers the implementation must report for ``_prepared(mask)``: those of the mask plus
    the ring's component and loop, the corner voxel's component being the one it leaves out."""
    b0, b1, b2 = betti_numbers_6(mask)
    return b0 + 1, b1 + 1, b2


def _coordinates(result: Any, name: str, dimension: int) -> tuple[NDArray[np.intp], ...]:
    """The voxels of one of the result's coordinate lists in ``dimension``, as an index tuple."""
    voxels = np.asarray(getattr(result, name)[dimension], dtype=np.intp).reshape(-1, 3)
    return tuple(voxels.T)


def _check_counts(result: Any, expected: tuple[Betti, Betti]) -> None:
    """Each input's matched plus unmatched pairs, per dimension, must equal its Betti numbers: a worker
    that failed before reporting its pairs leaves fewer."""
    unmatched = (result.num_unmatched_input1, result.num_unmatched_input2)
    for side, (own, betti) in enumerate(zip(unmatched, expected, strict=True), start=1):
        reported = (np.asarray(result.num_matched) + np.asarray(own)).tolist()
        if reported != list(betti):
            raise MetricError(
                f"Betti matching: the implementation reported {reported} pairs in dimensions 0-2 for input "
                f"{side}, whose Betti numbers there are {list(betti)}"
            )


def _check_binary(result: Any, inputs: tuple[NDArray[np.float64], NDArray[np.float64]]) -> None:
    """Every interval must be [0, 1), born on a foreground voxel and dying on a background one; this is
    what makes a matched pair cost 0 and an unmatched one 1."""
    for side, image in enumerate(inputs, start=1):
        for kind, dimension in itertools.product(("matched", "unmatched"), range(_DIMENSIONS)):
            births = image[_coordinates(result, f"input{side}_{kind}_birth_coordinates", dimension)]
            deaths = image[_coordinates(result, f"input{side}_{kind}_death_coordinates", dimension)]
            if np.any(births != 0.0) or np.any(deaths != 1.0):
                raise MetricError(
                    f"Betti matching: a {kind} dimension-{dimension} interval of input {side} is not [0, 1)"
                )


def _check_sentinel(result: Any, shape: tuple[int, ...]) -> None:
    """The sentinel ring's loop, identical in both inputs, must be matched in both: a worker of the
    comparison that failed leaves it (and every other loop) unmatched."""
    plane = _sentinel_ring_position(shape)[0]
    for side in (1, 2):
        births = _coordinates(result, f"input{side}_matched_birth_coordinates", 1)
        if not np.any(births[0] == plane):
            raise MetricError(
                f"Betti matching: the loop shared by both inputs is not matched for input {side}"
            )


def _check(
    result: Any, inputs: tuple[NDArray[np.float64], NDArray[np.float64]], expected: tuple[Betti, Betti]
) -> None:
    """Raise :class:`~spockmip.errors.MetricError` unless ``result`` is complete and binary, so that a
    computation the implementation cut short is never reported as a value (see the module docstring)."""
    try:
        _check_counts(result, expected)
        _check_binary(result, inputs)
        _check_sentinel(result, inputs[0].shape)
    except MetricError as error:
        raise MetricError(
            f"{error}; the implementation most likely ran out of memory: {_MEMORY_HINT}"
        ) from None


def _matching_errors(
    module: ModuleType, prediction: NDArray[np.bool_], reference: NDArray[np.bool_]
) -> NDArray[np.int64]:
    """Unmatched features of both masks per dimension (0, 1, 2), from one checked call on the bounding
    box of their union; nothing to match when both are empty."""
    box = _bounding_box(prediction | reference)
    if box is None:
        return np.zeros(_DIMENSIONS, dtype=np.int64)
    pred, ref = prediction[box], reference[box]
    inputs = (_prepared(pred), _prepared(ref))
    try:
        result = module.compute_matching(*inputs)
    except MemoryError:
        raise MetricError(
            f"Betti matching: out of memory on a box of {inputs[0].size:,} voxels (about 1.2 kB each): "
            f"{_MEMORY_HINT}"
        ) from None
    _check(result, inputs, (_frame_betti(pred), _frame_betti(ref)))
    return np.asarray(result.num_unmatched_input1, dtype=np.int64) + np.asarray(
        result.num_unmatched_input2, dtype=np.int64
    )


def _window(centre: int, size: int, length: int) -> slice:
    """``size`` voxels around ``centre``, shifted to lie inside an axis of ``length`` voxels."""
    start = min(max(centre - size // 2, 0), max(length - size, 0))
    return slice(start, min(start + size, length))


def scored_regions(reference: NDArray[Any], protocol: BettiMatchingProtocol) -> list[_Box]:
    """The regions a subject is scored on: the whole volume, or the protocol's patches.

    Depends on the label, its shape and the protocol only, never on the prediction, so that every
    prediction of a subject is scored on the same regions.
    """
    ref = np.asarray(reference).astype(bool, copy=False)
    if ref.size <= protocol.max_whole_voxels:
        return [(slice(None), slice(None), slice(None))]
    rng = np.random.default_rng(protocol.seed)
    foreground = np.flatnonzero(ref)
    population = foreground.size or ref.size
    drawn = rng.choice(population, size=min(protocol.n_patches, population), replace=False)
    flat = foreground[drawn] if foreground.size else drawn
    centres = np.stack(np.unravel_index(flat, ref.shape), axis=1)
    return [
        tuple(_window(int(c), s, n) for c, s, n in zip(centre, protocol.patch_size, ref.shape, strict=True))
        for centre in centres
    ]


def betti_matching_errors(
    prediction: NDArray[Any],
    reference: NDArray[Any],
    protocol: BettiMatchingProtocol = BettiMatchingProtocol(),
) -> dict[str, float]:
    """Betti matching error in dimension 0 and 1, keyed as :data:`BETTI_MATCHING_KEYS`.

    Each is the number of features (components, loops) of the prediction and of the label that the
    other mask has no spatially matching feature for, with 6-connected foreground; summed over the
    protocol's patches when the volume is scored patch-wise. Raises
    :class:`~spockmip.errors.MetricError` when the compiled implementation is not installed
    (:func:`betti_matching_available`) or returns an incomplete result.
    """
    module = _required_extension()
    pred, ref = _as_pair(prediction, reference)
    total = np.zeros(_DIMENSIONS, dtype=np.int64)
    for box in scored_regions(ref, protocol):
        total += _matching_errors(module, pred[box], ref[box])
    return {key: float(total[dimension]) for dimension, key in enumerate(BETTI_MATCHING_KEYS)}
