"""Whether the training input pipeline keeps up with a GPU step, measured on a CPU with a simulated GPU.

On a GPU the training process queues a step's kernels and the host is free until it must hand over the
next batch; batches cut meanwhile by loader workers cost the step nothing. This benchmark puts the
library's own pipeline (:class:`spockmip.data.sampling.EpochBatches` over
:class:`spockmip.data.subjects.BatchLoading`, as :func:`spockmip.training.trainer.train` builds it) in front
of a simulated step: the host waits ``--step`` seconds per batch (``time.sleep``, which, like waiting for a
GPU, leaves the cores to the workers).

Size: the published batch, 15 patches of 64³ with their whole-volume MIP crops on three axes (the
multi-axis MIP variant's released grid sampler), cut from two random 256 x 256 x 160 volumes; 40 steps per
epoch, epochs 2 and 3 timed (the workers start in epoch 1 and persist; each epoch boundary is included).

Baseline: the simulated step itself. Printed: the time to cut a batch with nothing else running, then,
for 0 (the batches cut in the training process, between steps) and more workers, the time per step, its
ratio to the simulated step, and the training process's own time per batch to take it (with workers: to
map the worker's shared memory) and to let it go (to unmap it). Target: <= 1.05 (the whole-loop GPU
row of docs/performance.md) with workers.

What it cannot show: on a GPU the loader pins batches (``pin_memory``), and a thread of the loader then
takes each batch from the workers' shared memory, copies it into page-locked memory and lets the shared
memory go, beside the training thread rather than in it. Pinning needs CUDA, so here the training thread
does that work itself, and the time it prints for it is what the GPU's pinning thread takes over.

Run: ``.venv/bin/python benchmarks/bench_loader_overlap.py`` (about a minute; ``--help`` for options).
Exit status 0 when the largest worker count meets the target.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy
import torch
from bench_gpu import random_subject
from machine import print_machine

from spockmip.data.sampling import EpochBatches
from spockmip.data.subjects import BatchLoading
from spockmip.objective.losses import LossConfig
from spockmip.training.trainer import TrainingConfig

TARGET = 1.05
VOLUME = (256, 256, 160)
STEPS_PER_EPOCH = 40
SEED = 2020


def epoch_seconds(batches: EpochBatches, epoch: int, step: float, host: list[float] | None = None) -> float:
    """Wall time of one epoch's batches, each followed by a simulated step of ``step`` seconds. ``host``
    collects, per batch, the training process's own time to take the batch and to let it go."""
    started = time.perf_counter()
    batch_iterator = iter(batches(SEED + epoch))
    while True:
        taking = time.perf_counter()
        batch = next(batch_iterator, None)
        if batch is None:
            break
        taken = time.perf_counter()
        time.sleep(step)
        releasing = time.perf_counter()
        del batch
        if host is not None:
            host.append(taken - taking + time.perf_counter() - releasing)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--step", type=float, default=0.100, help="simulated GPU step, s (default 0.100)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts (default 1 2)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print_machine(1, {"torch": torch.__version__, "numpy": numpy.__version__})
    config = TrainingConfig(loss=LossConfig(mip_axis="multi"))
    with tempfile.TemporaryDirectory() as folder:
        subjects = [random_subject(VOLUME, SEED + index, Path(folder)) for index in (1, 2)]

        def pipeline(workers: int) -> EpochBatches:
            return EpochBatches(
                subjects,
                config.sampler,
                config.patch_size,
                config.strides,
                STEPS_PER_EPOCH * config.batch_size,
                config.loss.volume_target_axes,
                BatchLoading(config.batch_size, workers),
            )

        alone = pipeline(0)
        epoch_seconds(alone, 0, 0.0)
        cut = statistics.median(epoch_seconds(alone, epoch, 0.0) for epoch in (1, 2, 3)) / STEPS_PER_EPOCH
        axes = ", ".join(config.loss.volume_target_axes)
        print(
            f"sampler {config.sampler}: {config.batch_size} patches of {config.patch_size[0]}^3 with MIP "
            f"crops on {axes}; cutting a batch alone: {cut * 1e3:.1f} ms"
        )
        print(f"simulated GPU step (the baseline): {args.step * 1e3:.1f} ms\n")
        ratio = float("inf")
        for workers in [0, *args.workers]:
            batches = pipeline(workers)
            epoch_seconds(batches, 1, args.step)
            host: list[float] = []
            timed = sum(epoch_seconds(batches, epoch, args.step, host) for epoch in (2, 3))
            per_step = timed / (2 * STEPS_PER_EPOCH)
            ratio = per_step / args.step
            print(
                f"{workers} worker(s): {per_step * 1e3:6.1f} ms per step = {ratio:.3f}x the simulated step; "
                f"taking and releasing a batch: median {statistics.median(host) * 1e3:.1f} ms"
            )
            del batches
    verdict = "PASS" if ratio <= TARGET else "FAIL"
    print(f"\n{verdict}: with {args.workers[-1]} worker(s), {ratio:.3f}x the step (target <= {TARGET})")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
