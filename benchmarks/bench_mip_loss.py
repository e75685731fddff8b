"""Time the vectorised MIP loss against the released code's per-sample loop, forward + backward.

What is compared: :func:`spockmip.objective.losses.mip_loss` with ``mip_axis="multi"`` and consistent pairing
(every projection a single batched reduction) against a *per-sample loop formulation* written below the way
the released SPOCKMIP code computed it: a Python loop over the samples of the batch, and per sample, per
projection axis and per output level one projection and one Focal Tversky loss, accumulated and divided by
the batch size. Both get the same inputs: the three output levels of a UNetMSS-shaped network (full, half
and quarter resolution logits, made probabilities by :func:`spockmip.objective.losses.level_probabilities`,
i.e. sigmoid then nearest upsampling), batch 15, 64³ patches in network order (B, 1, Z, X, Y), and
whole-volume
MIP crops made by the data pipeline's own functions (:func:`spockmip.objective.mip.volume_mips`,
:func:`spockmip.objective.mip.crop_mip`), (B, 1, A, B') per axis.

The probabilities are leaf tensors, so the timed region is the loss alone (forward and backward), not the
sigmoid/upsampling both formulations share. Before timing, the two must agree: loss within 1e-5 and the
gradient on every level to float32 rounding.

The target is ≥ 10× over the loop. That figure is a GPU argument: the loop issues thousands of small
kernels (135 projections, each with its loss and backward), so on a GPU it is launch-bound while the
batched version is a few dozen bandwidth-bound kernels. On a CPU there is no launch cost to save; what the
loop wastes here is memory traffic (the backward of each ``p[b]`` writes a zero gradient the size of the
whole batch), and both versions must do the tie-aware max backward over every voxel, so expect ~4-7×, not
10×. The ratio printed is whatever this machine measures.

Run: ``.venv/bin/python benchmarks/bench_mip_loss.py`` (``--help`` for options); exit status 0 on PASS.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from machine import print_machine

from spockmip.axes import VolumeAxis, to_volume, volume_dim
from spockmip.data.subjects import grid_positions
from spockmip.objective.losses import LossConfig, level_probabilities, mip_loss
from spockmip.objective.mip import crop_mip, volume_mips

TARGET_SPEEDUP = 10.0
BATCH = 15
PATCH = (64, 64, 64)
VOLUME_SHAPE = (192, 192, 96)  # (X, Y, Z): the targets come from a whole volume, as in training
SEED = 2020


def timed(function: Callable[[], object], repeats: int, warmup: int) -> list[float]:
    """Wall-clock seconds of each of ``repeats`` runs after ``warmup`` untimed ones (allocator, caches)."""
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return times


def spread(times: Sequence[float]) -> str:
    """Median with the range, in ms: the range shows how much other processes disturbed the run."""
    return f"{statistics.median(times) * 1e3:8.1f} ms [{min(times) * 1e3:.1f}-{max(times) * 1e3:.1f}]"


def make_inputs(seed: int) -> tuple[list[torch.Tensor], dict[VolumeAxis, torch.Tensor]]:
    """UNetMSS-shaped probabilities (as leaves) and whole-volume MIP crops at 15 grid positions.

    The label volume is sparse (≈0.25 % foreground: random seeds grown to 3³ blobs by a max filter), so
    its MIPs are 5-15 % filled, roughly like vessel MIPs; the values matter only for the equality check.
    """
    generator = torch.Generator().manual_seed(seed)
    sizes = [tuple(s // 2**level for s in PATCH) for level in range(3)]
    logits = [torch.randn(BATCH, 1, *size, generator=generator) * 3 for size in sizes]
    probabilities = [p.detach().requires_grad_(True) for p in level_probabilities(logits, PATCH)]

    seeds = (torch.rand(1, 1, *VOLUME_SHAPE, generator=generator) < 1e-4).float()
    label = torch.nn.functional.max_pool3d(seeds, kernel_size=3, stride=1, padding=1)[0, 0].numpy()
    mips = volume_mips(label)
    positions = grid_positions(VOLUME_SHAPE, PATCH, (32, 32, 16))
    chosen = np.random.default_rng(seed).choice(len(positions), size=BATCH, replace=False)
    targets = {
        axis: torch.stack(
            [torch.from_numpy(crop_mip(mips[axis], axis, positions[i], PATCH))[None] for i in chosen]
        )
        for axis in mips
    }
    return probabilities, targets


def _ftl_one_sample(prediction: torch.Tensor, target: torch.Tensor, config: LossConfig) -> torch.Tensor:
    """Focal Tversky of one sample, written out independently of :mod:`spockmip.objective.losses` (a
    cross-check)."""
    tp = (prediction * target).sum()
    fn = ((1 - prediction) * target).sum()
    fp = (prediction * (1 - target)).sum()
    index = (tp + config.smooth) / (tp + config.alpha * fn + (1 - config.alpha) * fp + config.smooth)
    return (1 - index).abs().pow(config.gamma)


def loop_mip_loss(
    probabilities: Sequence[torch.Tensor], targets: Mapping[VolumeAxis, torch.Tensor], config: LossConfig
) -> torch.Tensor:
    """Baseline: the released code's formulation, one sample at a time in a Python loop."""
    batch = probabilities[0].shape[0]
    total = torch.zeros(())
    for axis in config.axes:
        for weight, probability in zip(config.level_weights, probabilities, strict=False):
            accumulated = torch.zeros(())
            for b in range(batch):
                projection = to_volume(probability[b]).amax(dim=volume_dim(axis))
                accumulated = accumulated + _ftl_one_sample(projection, targets[axis][b], config)
            total = total + weight * accumulated / batch
    return total


def forward_backward(
    loss_fn: Callable[..., torch.Tensor],
    probabilities: Sequence[torch.Tensor],
    targets: Mapping[VolumeAxis, torch.Tensor],
    config: LossConfig,
) -> torch.Tensor:
    """One training-style evaluation, what is timed: clear the gradients, loss, backward to every level."""
    for p in probabilities:
        p.grad = None
    loss = loss_fn(probabilities, targets, config)
    loss.backward()
    return loss.detach()


def loss_and_gradients(
    loss_fn: Callable[..., torch.Tensor],
    probabilities: Sequence[torch.Tensor],
    targets: Mapping[VolumeAxis, torch.Tensor],
    config: LossConfig,
) -> tuple[float, list[torch.Tensor]]:
    """The loss value and a copy of each level's gradient (copied outside the timed function)."""
    loss = forward_backward(loss_fn, probabilities, targets, config)
    return float(loss), [p.grad.clone() for p in probabilities]  # type: ignore[union-attr]


def check_agreement(
    probabilities: Sequence[torch.Tensor], targets: Mapping[VolumeAxis, torch.Tensor], config: LossConfig
) -> bool:
    """Same loss within 1e-5 and the same gradient (float32 rounding) — otherwise the timing is moot."""
    ours_loss, ours_grads = loss_and_gradients(mip_loss, probabilities, targets, config)
    loop_loss, loop_grads = loss_and_gradients(loop_mip_loss, probabilities, targets, config)
    loss_diff = abs(ours_loss - loop_loss)
    print(f"loss: vectorised {ours_loss:.8f}, loop {loop_loss:.8f}, |difference| {loss_diff:.2e}")
    agree = loss_diff <= 1e-5
    for level, (ours, loop) in enumerate(zip(ours_grads, loop_grads, strict=True)):
        scale = float(loop.abs().max())
        diff = float((ours - loop).abs().max())
        same = torch.allclose(ours, loop, rtol=1e-4, atol=1e-6 * scale)
        print(f"gradient level {level}: max |g| {scale:.3e}, max |difference| {diff:.3e} -> {same}")
        agree = agree and same
    return agree


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default: 2)")
    parser.add_argument(
        "--repeats", type=int, default=11, help="timed runs of each formulation (default: 11)"
    )
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs before timing (default: 2)")
    parser.add_argument("--seed", type=int, default=SEED, help=f"input seed (default: {SEED})")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    print_machine(args.threads, {"torch": torch.__version__, "numpy": np.__version__})
    config = LossConfig(mip_axis="multi", mip_pairing="consistent")
    probabilities, targets = make_inputs(args.seed)
    print(
        f"\ninputs: batch {BATCH}, patch {PATCH} in network order, levels "
        f"{[tuple(p.shape) for p in probabilities]} (after nearest upsampling), "
        f"targets {{{', '.join(f'{a}: {tuple(t.shape)}' for a, t in targets.items())}}}, "
        f"target fill {float(torch.cat([t.flatten() for t in targets.values()]).mean()):.1%}"
    )
    if not check_agreement(probabilities, targets, config):
        print("FAIL: the two formulations disagree; timing skipped")
        return 1

    # Interleave the two so that load from other processes hits both alike.
    ours_times: list[float] = []
    loop_times: list[float] = []
    timed(lambda: forward_backward(mip_loss, probabilities, targets, config), 0, args.warmup)
    timed(lambda: forward_backward(loop_mip_loss, probabilities, targets, config), 0, args.warmup)
    for _ in range(args.repeats):
        ours_times += timed(lambda: forward_backward(mip_loss, probabilities, targets, config), 1, 0)
        loop_times += timed(lambda: forward_backward(loop_mip_loss, probabilities, targets, config), 1, 0)
    ours, loop = statistics.median(ours_times), statistics.median(loop_times)
    speedup = loop / ours
    print(f"\nforward + backward, median of {args.repeats} (interleaved), [min-max]:")
    print(f"  vectorised mip_loss      : {spread(ours_times)}")
    print(f"  per-sample loop baseline : {spread(loop_times)}")
    verdict = "PASS" if speedup >= TARGET_SPEEDUP else "FAIL"
    print(f"speed-up (loop / vectorised): {speedup:.2f}x; target >= {TARGET_SPEEDUP:.0f}x -> {verdict}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
