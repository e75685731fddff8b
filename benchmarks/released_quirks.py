"""Measure the facts behind each released-computation setting that docs/method.md quotes.

Not a timing benchmark: it prints what each quirk of the released code does to the numbers the training
sees, computed with the project's own implementation of both settings:

1. DS6 ``deformation: released``: peak displacement of the integrated field relative to the drawn bound
   ``m``, over many draws on 64³ patches, per control-point spacing.
2. ``mip_pairing``: the MIP loss of a *perfect* prediction on 64³ patches of a phantom, released pairing
   vs consistent pairing (patch targets, so a perfect prediction can reach zero).
3. ``sampling``: grid sizes on a SMILE-UHURA-shaped volume (480×640×163) for the released MIP data set's
   grid and the project's flush grid, and the torchio queue's patches per volume for 9 and 10 volumes.

    python benchmarks/released_quirks.py [--draws 50]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from spockmip.axes import to_network
from spockmip.data import grid_positions
from spockmip.losses import LossConfig, segmentation_loss
from spockmip.released_deformation import random_released_deformation
from spockmip.synthetic import PhantomConfig, generate_phantom

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=50, help="deformations drawn per spacing (default: 50)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    deformation_peaks(args.draws)
    pairing_losses()
    grid_sizes()


if __name__ == "__main__":
    main()
