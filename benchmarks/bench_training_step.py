"""Time one full training step with the multi-axis MIP loss against the same step without it.

Baseline: a SPOCKMIP training step with ``LossConfig(mip_axis="none")`` (the deep-supervised Focal Tversky
loss alone); candidate: the same step with ``LossConfig(mip_axis="multi")`` (plus the MIP loss over x, y
and z with whole-volume MIP targets). A step is what :func:`spockmip.training.trainer.train` does per batch on
a
CPU: zero the gradients, :func:`spockmip.objective.batch.batch_loss` (forward of UNetMSS3D, level
probabilities, losses), backward, gradient clipping, Adam step.

The batch is made by the data pipeline itself: a synthetic phantom (:mod:`spockmip.datasets.synthetic`)
becomes a :class:`spockmip.data.subjects.Subject` with whole-volume label MIPs, and
:class:`spockmip.data.subjects.PatchDataset` through a ``DataLoader`` yields the dict training sees (image,
label, mip_x, mip_y, mip_z, ...).

Size: UNetMSS3D with ``init_features=8`` and batch 2 of 64³ patches, about 1 s a step on 2 cores. The
published width (64) and batch (15) are out of reach on a CPU; what matters for the ratio is that the
MIP loss costs a fixed amount per voxel while the network costs ~f² per voxel, so a narrow network is the
*hard* case for this target: at the published width the overhead would be far smaller. Batch size hardly
moves the ratio (both parts scale with it).

The variants are timed interleaved, the order rotating every round, to spread drift and load from other
processes over all of them; each trains its own copy of the same initial weights. A third variant, a
second copy of the baseline, is an A/A control: its ratio to the baseline is pure noise (other processes,
memory placement) and shows how small a difference this machine can resolve. Target: median step time
with / without ≤ 1.05. The MIP term is also timed alone (forward + backward), a quieter estimate of what
the step should show.

Run: ``.venv/bin/python benchmarks/bench_training_step.py`` (``--help`` for options); exit status 0 on
PASS.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from machine import print_machine

from spockmip.data.subjects import PatchDataset, PatchSpec, Subject, grid_positions
from spockmip.datasets.synthetic import PhantomConfig, generate_phantom
from spockmip.networks.unet import UNetBase, build_model
from spockmip.objective.batch import batch_loss
from spockmip.objective.losses import LossConfig, level_probabilities, mip_term
from spockmip.objective.mip import volume_mips
from spockmip.training.trainer import TrainingConfig

TARGET_RATIO = 1.05
PATCH = (64, 64, 64)
PHANTOM_SHAPE = (96, 96, 64)  # (X, Y, Z): large enough for 64³ patches, quick to generate
SEED = 2020
DEVICE = torch.device("cpu")


def make_batch(batch_size: int, seed: int, tube: bool = False) -> dict[str, torch.Tensor]:
    """One training batch exactly as PatchDataset + DataLoader produce it, from an in-memory phantom; with
    ``tube``, also the labels' skeleton tubes (Skeleton Recall's target)."""
    phantom = generate_phantom(seed, PhantomConfig(shape=PHANTOM_SHAPE))
    subject = Subject(
        name="phantom",
        image=phantom.image.astype(np.float32),
        label=phantom.label,
        affine=phantom.affine,
        image_path=Path("phantom.nii.gz"),
        reference=nib.Nifti1Image(phantom.image, phantom.affine),
        label_mips=volume_mips(phantom.label),
    )
    positions = grid_positions(PHANTOM_SHAPE, PATCH, (32, 32, 16))
    chosen = np.random.default_rng(seed).choice(len(positions), size=batch_size, replace=False)
    plan = [PatchSpec(0, positions[i]) for i in chosen]
    dataset = PatchDataset([subject], plan, PATCH, mip_axes=("x", "y", "z"), tube=tube)
    return next(iter(torch.utils.data.DataLoader(dataset, batch_size=batch_size)))


@dataclass
class Variant:
    """One loss setting with its own model copy and optimizer, so the variants do not share state."""

    name: str
    config: TrainingConfig
    model: UNetBase
    optimizer: torch.optim.Optimizer
    times: list[float]

    def step(self, batch: dict[str, torch.Tensor]) -> float:
        """One CPU training step as :func:`spockmip.training.trainer.train` takes it; returns its wall
        time."""
        start = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        terms = batch_loss(self.model, batch, self.config, DEVICE, None)
        terms.total.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.gradient_clip)
        self.optimizer.step()
        return time.perf_counter() - start


def mip_term_seconds(
    model: UNetBase, batch: dict[str, torch.Tensor], config: LossConfig, repeats: int
) -> list[float]:
    """Forward + backward of the MIP term alone on this batch's outputs: the overhead the step should show.

    A quieter estimate than the difference of two noisy step times; the probabilities are leaves, so only
    the MIP loss and its backward (down to the probabilities) are timed.
    """
    with torch.no_grad():
        outputs = model(batch["image"])
    label = batch["label"]
    probabilities = [p.requires_grad_(True) for p in level_probabilities(outputs, label.shape[2:])]
    targets = {axis: batch[f"mip_{axis}"] for axis in config.axes}
    times = []
    for _ in range(repeats + 1):  # the first is a warm-up
        start = time.perf_counter()
        mip_term(probabilities, label, config, targets).backward()
        times.append(time.perf_counter() - start)
    return times[1:]


def spread(times: Sequence[float]) -> str:
    """Median with the range: the range shows how much other processes disturbed the run."""
    return f"{statistics.median(times):6.3f} s [{min(times):.3f}-{max(times):.3f}]"


def add_step_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the measured step's setting, shared with the benchmarks that time other steps in it."""
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default: 2)")
    parser.add_argument("--init-features", type=int, default=8, help="UNetMSS3D width (default: 8)")
    parser.add_argument("--batch", type=int, default=2, help="patches per batch (default: 2)")
    parser.add_argument("--seed", type=int, default=SEED, help=f"phantom and weight seed (default: {SEED})")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_step_arguments(parser)
    parser.add_argument("--repeats", type=int, default=20, help="timed steps of each variant (default: 20)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps of each first (default: 2)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    print_machine(args.threads, {"torch": torch.__version__, "numpy": np.__version__})
    batch = make_batch(args.batch, args.seed)
    shapes = ", ".join(f"{k}: {tuple(v.shape)}" for k, v in batch.items() if v.dim() > 1)
    print(f"\nbatch (PatchDataset + DataLoader): {shapes}")
    torch.manual_seed(args.seed)
    initial = build_model("unetmss", init_features=args.init_features).to(DEVICE).train()
    variants = []
    for name, mip_axis in (
        ("without MIP (none)", "none"),
        ("with MIP (multi)", "multi"),
        ("A/A control (none)", "none"),
    ):
        config = TrainingConfig(
            model="unetmss",
            init_features=args.init_features,
            batch_size=args.batch,
            loss=LossConfig(mip_axis=mip_axis),
        )
        model = copy.deepcopy(initial)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
        variants.append(Variant(name, config, model, optimizer, []))
    print(
        f"model: UNetMSS3D init_features={args.init_features}, batch {args.batch} x {PATCH}, "
        f"Adam, clip {variants[0].config.gradient_clip}; "
        f"{args.warmup} warm-up + {args.repeats} timed steps each"
    )

    for _ in range(args.warmup):
        for variant in variants:
            variant.step(batch)
    for repeat in range(args.repeats):
        shift = repeat % len(variants)
        for variant in variants[shift:] + variants[:shift]:
            variant.times.append(variant.step(batch))

    baseline, candidate, control = variants
    print(f"\nstep time, median of {args.repeats} (interleaved), [min-max]:")
    for variant in variants:
        print(f"  {variant.name:19s}: {spread(variant.times)}")
    ratio = statistics.median(candidate.times) / statistics.median(baseline.times)
    paired = statistics.median(c / b for c, b in zip(candidate.times, baseline.times, strict=True))
    extra_ms = (statistics.median(candidate.times) - statistics.median(baseline.times)) * 1e3
    verdict = "PASS" if ratio <= TARGET_RATIO else "FAIL"
    noise = statistics.median(control.times) / statistics.median(baseline.times)
    print(f"median of the per-round ratios with / without (a drift-robust cross-check): {paired:.3f}")
    print(f"A/A control, second baseline copy / baseline (noise floor): {noise:.3f}")
    alone = statistics.median(mip_term_seconds(candidate.model, batch, candidate.config.loss, args.repeats))
    print(
        f"MIP term alone (forward + backward to the probabilities), median of {args.repeats}: "
        f"{alone * 1e3:.0f} ms = {alone / statistics.median(baseline.times):.1%} of a step without it"
    )
    print(f"ratio with / without MIP loss: {ratio:.3f} ({extra_ms:+.0f} ms a step); ", end="")
    print(f"target <= {TARGET_RATIO} -> {verdict}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
