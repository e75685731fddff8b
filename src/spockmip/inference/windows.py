"""Sliding-window inference exactly as the published models expect it, with bounded memory.

Windows lie on the overlapping grid of :func:`spockmip.data.subjects.grid_positions` (overlap = patch −
stride), each divided by its own maximum and fed in network order; the sigmoid of the first output is blended
back (average, or Gaussian importance weights) into two float32 accumulators: the sum of weighted
probabilities and the sum of weights. Host memory holds the volume and the result (plus a running sum per
ensemble and per flip average, and one flipped copy of the input, when asked for); the device holds one
batch of windows, and on a GPU also the accumulators when they fit (else they stay in host memory).

On a GPU the host only cuts raw windows out of the volume into page-locked memory; copying, normalising,
the network and blending run on the GPU in stream order, and nothing waits for it until the volume is
done, so the host cuts the next batch while the GPU computes the last.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from tqdm import tqdm

from spockmip.axes import to_network, to_volume
from spockmip.data.subjects import extract, grid_positions, normalise_patches
from spockmip.networks.unet import Activation
from spockmip.networks.weights import load_weights
from spockmip.runtime.devices import autocast, compiled, memory_format
from spockmip.settings.lookup import check_fields, default
from spockmip.settings.rules import check_window

Blend = Literal["average", "gaussian"]
WeightsSource = torch.nn.Module | str | Path
GAUSSIAN_SIGMA_FRACTION = 0.125  # sigma = patch/8: the usual nnU-Net/MONAI importance map
# Flip test-time augmentation: every subset of the three volume axes, the identity first (8 flips).
FLIPS: tuple[tuple[int, ...], ...] = tuple(c for n in range(4) for c in combinations(range(3), n))
# Windows per forward pass unless the config says: on a CPU the released code's 4 (what every CPU result so
# far used); on a GPU 16, the batch the GPU benchmark's targets are set for (docs/performance.md).
CPU_WINDOWS_PER_BATCH = 4
GPU_WINDOWS_PER_BATCH = 16
# Share of the GPU's free memory the accumulators may take; the rest is left to the network's batches.
ACCUMULATOR_SHARE = 0.5


@dataclass(frozen=True)
class InferenceConfig:
    """Sliding-window settings: the window and its strides, always given (the released code's are
    :data:`spockmip.settings.catalogue.RELEASED_PATCH_SIZE` and ``RELEASED_STRIDES``); the other defaults are
    the released code's."""

    patch_size: tuple[int, int, int]
    strides: tuple[int, int, int]
    blend: Blend = default("inference", "blend")
    batch_size: int | None = default("inference", "batch_size")
    compile: bool = default("inference", "compile")

    def __post_init__(self) -> None:
        check_fields(self, "inference")
        check_window(self.patch_size, self.strides, str)

    def windows_per_batch(self, device: torch.device) -> int:
        """``batch_size``, else the default of ``device``'s kind (:data:`GPU_WINDOWS_PER_BATCH` on CUDA)."""
        if self.batch_size is not None:
            return self.batch_size
        return GPU_WINDOWS_PER_BATCH if device.type == "cuda" else CPU_WINDOWS_PER_BATCH


def blend_weights(patch_size: Sequence[int], blend: Blend) -> np.ndarray:
    """Per-voxel window weight: flat for averaging, a centred Gaussian that trusts window centres more."""
    if blend == "average":
        return np.ones(tuple(patch_size), dtype=np.float32)
    profiles = []
    for size in patch_size:
        centre, sigma = (size - 1) / 2, size * GAUSSIAN_SIGMA_FRACTION
        profiles.append(np.exp(-0.5 * ((np.arange(size) - centre) / sigma) ** 2))
    weights = np.einsum("i,j,k->ijk", *profiles)
    return (weights / weights.max()).astype(np.float32)


def _batches(
    positions: Sequence[tuple[int, int, int]], size: int
) -> Iterator[Sequence[tuple[int, int, int]]]:
    for first in range(0, len(positions), size):
        yield positions[first : first + size]


def accumulator_device(shape: Sequence[int], device: torch.device) -> torch.device:
    """Where a volume's accumulators live: on a GPU when they (and their quotient at the end, three float32
    volumes) take at most :data:`ACCUMULATOR_SHARE` of its free memory, so no window's probabilities
    travel back to the host; in host memory otherwise, and always for other devices."""
    if device.type != "cuda":
        return torch.device("cpu")
    free, _ = torch.cuda.mem_get_info(device)
    needed = 3 * 4 * math.prod(shape)
    return device if needed <= ACCUMULATOR_SHARE * free else torch.device("cpu")


def _raw_windows(
    volume: np.ndarray, starts: Sequence[tuple[int, int, int]], patch: Sequence[int], rows: int, pin: bool
) -> torch.Tensor:
    """The windows at ``starts`` as stored, in a (rows, X, Y, Z) float32 host tensor whose rows past them
    are empty; page-locked when ``pin``, so the copy to the GPU is queued without the host waiting."""
    windows = torch.empty((rows, *patch), dtype=torch.float32, pin_memory=pin)
    for window, start in zip(windows.numpy(), starts, strict=False):
        window[...] = extract(volume, start, patch)
    windows[len(starts) :] = 0
    return windows


@torch.no_grad()
def predict_probabilities(
    model: torch.nn.Module,
    volume: np.ndarray,
    config: InferenceConfig,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> np.ndarray:
    """Vessel probability for every voxel of an (X, Y, Z) float32 volume, in the voxel order it is given in.

    ``progress`` shows a bar over the windows (a long volume takes minutes on a CPU). ``model`` is moved
    to ``device`` in its memory format (:func:`spockmip.runtime.devices.memory_format`). With
    ``config.compile`` every batch has the full size (the last is padded with empty windows), so one compiled
    graph serves every volume.
    """
    device = torch.device(device)
    layout = memory_format(device)
    model = model.to(device, memory_format=layout).eval()
    network = compiled(model, config.compile)
    patch = config.patch_size
    if any(s < p for s, p in zip(volume.shape, patch, strict=True)):
        raise ValueError(f"volume {volume.shape} is smaller than the patch {patch}")
    size = config.windows_per_batch(device)
    weights = torch.from_numpy(blend_weights(patch, config.blend))
    weights_on_device = weights.to(device)
    # On the host the accumulators are torch CPU tensors (multi-threaded, and adding a window in network
    # layout to a volume region is one strided kernel); the sums and their order are those of plain numpy.
    keep = accumulator_device(volume.shape, device)
    weights_kept = weights.to(keep)
    summed = torch.zeros(volume.shape, dtype=torch.float32, device=keep)
    normaliser = torch.zeros(volume.shape, dtype=torch.float32, device=keep)
    positions = grid_positions(volume.shape, patch, config.strides)
    bar = tqdm(total=len(positions), desc="windows", unit="window", leave=False, disable=not progress)
    for batch in _batches(positions, size):
        rows = size if config.compile else len(batch)
        windows = _raw_windows(volume, batch, patch, rows, pin=device.type == "cuda")
        inputs = normalise_patches(windows.to(device, non_blocking=True))
        with autocast(device):
            logits = network(to_network(inputs[:, None]).contiguous(memory_format=layout))[0]
        probabilities = to_volume(torch.sigmoid(logits[: len(batch)].float()))[:, 0].mul_(weights_on_device)
        for start, probability in zip(batch, probabilities.to(keep), strict=True):
            region = tuple(slice(s, s + p) for s, p in zip(start, patch, strict=True))
            summed[region] += probability
            normaliser[region] += weights_kept
        bar.update(len(batch))
    bar.close()
    return (summed / normaliser).cpu().numpy()


def flip_averaged_probabilities(
    model: torch.nn.Module,
    volume: np.ndarray,
    config: InferenceConfig,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> np.ndarray:
    """Flip test-time augmentation: the mean over the 8 flips of :data:`FLIPS` of the probabilities of the
    flipped volume, each flipped back.

    Vessels have no preferred direction, so a network should not care which way an axis runs; averaging
    over the flips removes what it learnt of the (arbitrary) orientation of its training volumes and of
    where windows fall on the grid, at 8 times the cost of one prediction.
    """
    total = np.zeros(volume.shape, dtype=np.float32)
    for axes in FLIPS:
        flipped = np.ascontiguousarray(np.flip(volume, axes))
        total += np.flip(predict_probabilities(model, flipped, config, device, progress), axes)
    return total / np.float32(len(FLIPS))


def ensemble_probabilities(
    sources: Iterable[WeightsSource],
    volume: np.ndarray,
    config: InferenceConfig,
    device: torch.device | str = "cpu",
    activation: Activation | None = None,
    tta: bool = False,
    progress: bool = False,
) -> np.ndarray:
    """Mean vessel probability of several models (the k fold models of a variant: a fold ensemble).

    ``sources`` are models or anything :func:`spockmip.networks.weights.load_weights` reads; sources are
    loaded one at a time, so memory holds one model and one running sum whatever the ensemble's size.
    Averaging probabilities (not masks) before the one threshold keeps the ensemble's decision rule that of a
    single model; with one source the result is that model's probabilities exactly. ``tta`` replaces each
    model's probabilities by their flip average (:func:`flip_averaged_probabilities`).
    """
    predict = flip_averaged_probabilities if tta else predict_probabilities
    total: np.ndarray | None = None
    count = 0
    for source in sources:
        model = source if isinstance(source, torch.nn.Module) else load_weights(source, activation)
        probabilities = predict(model, volume, config, device, progress)
        total = probabilities if total is None else total + probabilities
        count += 1
    if total is None:
        raise ValueError("an ensemble needs at least one model")
    return total / np.float32(count)
