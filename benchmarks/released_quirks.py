"""Measure the facts behind each released-computation setting that docs/method.md quotes.

Not a timing benchmark: it prints what each quirk of the released code does to the numbers the training
sees, computed with the project's own implementation of both settings:

1. DS6 ``deformation: released``: peak displacement of the integrated field relative to the drawn bound
   ``m``, over many draws on 64³ patches, per control-point spacing.
2. ``mip_pairing``: the MIP loss of a *perfect* prediction on 64³ patches of a phantom, released pairing
   vs consistent pairing (patch targets, so a perfect prediction can reach zero).
3. ``sampling``: grid sizes on a SMILE-UHURA-shaped volume (480×640×163) for the released MIP data set's
   grid and the project's flush grid, and the torchio queue's patches per volume for 9 and 10 volumes.
4. ``queue_workers``: torchio's queue built as the released code builds it for the variants without a MIP
   term, read through a DataLoader with W worker processes as the released code reads it (batches of 15,
   shuffled indices, the loader's generator seeded): patches drawn per volume in one epoch, for W = 0, 3
   and 8, and whether the one-process emulation (``QueuePatches(workers=W)``) draws the same patches in
   the same order.

    python benchmarks/released_quirks.py [--draws 50] [--queue-only]
"""

from __future__ import annotations

import argparse
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import torch
import torchio as tio

from spockmip.axes import to_network
from spockmip.data.sampling import QueuePatches
from spockmip.data.subjects import Subject, grid_positions
from spockmip.datasets.synthetic import PhantomConfig, generate_phantom
from spockmip.objective.losses import LossConfig, segmentation_loss
from spockmip.objective.released_deformation import random_released_deformation

SMILE_UHURA_SHAPE = (480, 640, 163)
PATCH = (64, 64, 64)
STRIDES = (32, 32, 16)
CONFIDENT = 30.0


def deformation_peaks(draws: int) -> None:
    print("1. DS6 released field: peak |displacement| / drawn bound m on 64³ patches")
    generator = torch.Generator().manual_seed(2020)
    for spacing in (5, 6, 7):
        ratios = []
        for _ in range(draws):
            drawn = random_released_deformation(PATCH, (spacing,), (0.01, 0.02, 0.03), 2, generator)
            ratios.append(drawn.field.abs().max().item() / drawn.max_displacement)
        low, median, high = np.percentile(ratios, [0, 50, 100])
        print(f"   spacing {spacing}: min {low:.3f}, median {median:.3f}, max {high:.3f} ({draws} draws)")


def pairing_losses() -> None:
    print("2. MIP loss of a perfect prediction (64³ patches of a 96×96×80 phantom, patch targets)")
    phantom = generate_phantom(3, PhantomConfig(shape=(96, 96, 80)))
    label = phantom.label.astype(np.float32)
    starts = [(0, 0, 0), (32, 32, 16), (16, 32, 8)]
    for axis in ("x", "y", "z", "multi"):
        values = {}
        for pairing in ("released", "consistent"):
            config = LossConfig(mip_axis=axis, mip_target="patch", mip_pairing=pairing)
            losses = []
            for start in starts:
                block = label[tuple(slice(s, s + p) for s, p in zip(start, PATCH, strict=True))]
                patch = to_network(torch.from_numpy(np.ascontiguousarray(block))[None, None])
                losses.append(segmentation_loss([(patch * 2 - 1) * CONFIDENT], patch, config).mip.item())
            values[pairing] = np.mean(losses)
        print(
            f"   mip_axis {axis:5s}: released {values['released']:.3f}, consistent {values['consistent']:.5f}"
        )


def grid_sizes() -> None:
    print(f"3. Training patches on a {SMILE_UHURA_SHAPE} volume, 64³ patches, strides {STRIDES}")
    for layout in ("released", "flush"):
        positions = grid_positions(SMILE_UHURA_SHAPE, PATCH, STRIDES, layout)
        overhanging = sum(
            any(s + p > n for s, p, n in zip(start, PATCH, SMILE_UHURA_SHAPE, strict=True))
            for start in positions
        )
        print(f"   {layout:8s} grid: {len(positions)} patches, {overhanging} overhang the far edge")
    for volumes in (9, 10):
        per_volume = 8000 // volumes
        total = per_volume * volumes
        print(f"   torchio queue, {volumes} training volumes: {per_volume} per volume, {total} per epoch")


QUEUE_VOLUME = (24, 24, 20)
QUEUE_PATCH = (8, 8, 8)
RELEASED_BATCH = 15


def _queue_subjects(n_volumes: int) -> list[Subject]:
    """``n_volumes`` small random volumes with labels, as spockmip subjects (only their count matters to
    how many patches each gives; small volumes and patches keep it fast)."""
    rng = np.random.default_rng(0)
    return [
        Subject(
            name=f"volume{i}",
            image=rng.random(QUEUE_VOLUME, dtype=np.float32),
            label=(rng.random(QUEUE_VOLUME) > 0.9).astype(np.float32),
            affine=np.eye(4),
            image_path=Path(f"volume{i}.nii.gz"),
            reference=None,  # type: ignore[arg-type]
        )
        for i in range(n_volumes)
    ]


def _where(patches: list[tio.Subject]) -> list[tuple[int, tuple[int, ...]]]:
    return [(int(patch["index"]), tuple(patch[tio.LOCATION][:3].tolist())) for patch in patches]


def released_queue_draws(
    subjects: list[Subject], patches_per_epoch: int, workers: int, seed: int
) -> list[tuple[int, tuple[int, ...]]]:
    """(volume, start) of every patch of one epoch, read as the released code reads the queue: a DataLoader
    with ``workers`` worker processes, batches of 15, shuffled indices; its generator seeded with ``seed``
    (the released code seeds torch's global generator instead, which the loader draws from alike)."""
    queue = QueuePatches(subjects, QUEUE_PATCH, patches_per_epoch, (), seed=0).queue  # not yet drawn from
    assert queue.max_length == 2 * queue.samples_per_volume and queue.num_workers == 0
    loader = torch.utils.data.DataLoader(
        queue,
        batch_size=RELEASED_BATCH,
        shuffle=True,
        num_workers=workers,
        generator=torch.Generator().manual_seed(seed),
        collate_fn=_where,
        multiprocessing_context="fork" if workers else None,
    )
    return [patch for batch in loader for patch in batch]


def emulated_queue_draws(
    subjects: list[Subject], patches_per_epoch: int, workers: int, seed: int
) -> list[tuple[int, tuple[int, ...]]]:
    queue = QueuePatches(
        subjects, QUEUE_PATCH, patches_per_epoch, (), seed, workers=workers, batch_size=RELEASED_BATCH
    )
    return _where([queue.draw(i) for i in range(len(queue))])


def _per_volume(draws: list[tuple[int, tuple[int, ...]]], n_volumes: int) -> list[int]:
    counts = Counter(volume for volume, _ in draws)
    return [counts[v] for v in range(n_volumes)]


def queue_workers(seed: int = 2020, epochs: int = 10) -> None:
    print(
        f"4. torchio's queue read through a DataLoader with W workers (batches of {RELEASED_BATCH}, shuffled "
        f"indices, seed {seed}): patches per volume in one epoch"
    )
    warnings.filterwarnings("ignore", message="This DataLoader will create")
    for n_volumes, patches_per_epoch, workers_tried in (
        (6, 600, (0, 3, 8)),
        (9, 8000, (8,)),
        (10, 8000, (8,)),
    ):
        subjects = _queue_subjects(n_volumes)
        for workers in workers_tried:
            draws = released_queue_draws(subjects, patches_per_epoch, workers, seed)
            same = (
                "-"
                if workers == 0
                else emulated_queue_draws(subjects, patches_per_epoch, workers, seed) == draws
            )
            print(
                f"   {n_volumes} volumes, {patches_per_epoch} patches, W={workers}: "
                f"{_per_volume(draws, n_volumes)} (total {len(draws)}; emulation identical: {same})"
            )
    subjects = _queue_subjects(10)
    counts = np.array(
        [_per_volume(released_queue_draws(subjects, 8000, 8, seed + e), 10) for e in range(epochs)]
    )
    print(
        f"   10 volumes, 8000 patches, W=8, seeds {seed}..{seed + epochs - 1}: per volume and epoch min "
        f"{counts.min()}, median {np.median(counts):g}, max {counts.max()}; {int((counts == 0).sum())} of "
        f"{counts.size} (epoch, volume) pairs drew nothing; W=0 draws 800 from each"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=50, help="deformations drawn per spacing (default: 50)")
    parser.add_argument("--queue-only", action="store_true", help="only section 4 (the queue's workers)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    if not args.queue_only:
        deformation_peaks(args.draws)
        pairing_losses()
        grid_sizes()
    queue_workers()


if __name__ == "__main__":
    main()
