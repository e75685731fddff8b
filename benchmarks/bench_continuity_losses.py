"""What each optional loss term costs a training step: the MIP term, soft-clDice and Skeleton Recall.

Baseline: the training step of :mod:`bench_training_step` (same batch, model, optimizer and step) with
the deep-supervised Focal Tversky loss alone (``LossConfig(mip_axis="none")``, ``skeleton_loss="none"``).
Candidates, each term added to that baseline alone:

- +MIP: ``mip_axis="multi"`` (the MIP loss over x, y and z with whole-volume MIP targets);
- +soft-clDice: ``skeleton_loss="cldice"`` at its weight 0.5, ``cldice_iterations=10`` (the soft skeleton of
  every level);
- +Skeleton Recall: ``skeleton_loss="skeleton_recall"`` at its weight 1 (soft recall on the label's skeleton
  tube, which the data pipeline makes: :func:`spockmip.data.subjects.skeleton_tube`, in the loader, outside
  the step).

Size: UNetMSS3D with ``init_features=8``, batch 2 of 64³ patches of a synthetic phantom, on the CPU (see
:mod:`bench_training_step` for why a narrow network is the hard case for a per-voxel loss term).

Printed, per loss:

- step time: the median over ``--rounds`` interleaved rounds (the order rotating every round), relative
  to the FTL-only step of the same run; an A/A control (a second copy of the baseline) gives the noise
  band: the interquartile range of its per-round ratios to the baseline;
- peak memory: one fresh process per loss builds the same batch and model, restarts its peak RSS there
  (Linux ``/proc/self/clear_refs``: the phantom's generation alone peaks far above a step), takes
  ``--memory-steps`` steps and reports ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` (tracemalloc does not
  see torch's allocations), relative to the FTL-only process; also the increment over a process that
  takes no step, since the interpreter, torch, the batch and the model are most of a process's peak. The
  processes run before this one makes its batch, so none inherits a larger peak from it;
- for Skeleton Recall, the time of :func:`spockmip.data.subjects.skeleton_tube` per 64³ phantom label patch,
as a
  fraction of the FTL-only step, and for the batch's patches together (what the loader must make per
  step) as a fraction of the step: the verdict is on the latter.

Targets: +Skeleton Recall step <= 1.10x; its tubes for a batch <= 10 % of a step; +MIP step <= 1.05x.
soft-clDice is measured and stated, not a target (expected <= 1.9x). Anchors: the Skeleton Recall paper
(Kirchhoff et al., ECCV 2024) reports, over plain nnU-Net training, about +8 % time and +2 % memory for
Skeleton Recall and about +88 % time and +52 % memory for soft-clDice (on a GPU, at nnU-Net's sizes).

Run: ``.venv/bin/python benchmarks/bench_continuity_losses.py`` (about 3-4 minutes on 2 cores; ``--help``
for options); exit status 0 when every target is met.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from bench_training_step import DEVICE, PATCH, Variant, add_step_arguments, make_batch, spread
from machine import print_machine

from spockmip.axes import to_volume
from spockmip.data.subjects import skeleton_tube
from spockmip.networks.unet import build_model
from spockmip.objective.losses import LossConfig
from spockmip.training.trainer import TrainingConfig

BASELINE = "FTL only"
CONTROL = "A/A control (FTL only)"
LOSSES = {
    BASELINE: LossConfig(mip_axis="none"),
    "+MIP (multi)": LossConfig(mip_axis="multi"),
    "+soft-clDice": LossConfig(mip_axis="none", skeleton_loss="cldice", cldice_iterations=10),
    "+Skeleton Recall": LossConfig(mip_axis="none", skeleton_loss="skeleton_recall"),
}
TARGETS = {"+MIP (multi)": 1.05, "+Skeleton Recall": 1.10}
EXPECTED = {"+soft-clDice": 1.9}  # stated, not a target
TUBE_TARGET = 0.10
# The Skeleton Recall paper's overheads over plain nnU-Net: (time, memory).
ANCHORS = {"+Skeleton Recall": ("+8 %", "+2 %"), "+soft-clDice": ("+88 %", "+52 %")}
SETUP = "setup only (no step)"


def training_config(loss: LossConfig, init_features: int, batch: int) -> TrainingConfig:
    return TrainingConfig(model="unetmss", init_features=init_features, batch_size=batch, loss=loss)


def variant(name: str, loss: LossConfig, initial: torch.nn.Module, init_features: int, batch: int) -> Variant:
    config = training_config(loss, init_features, batch)
    model = copy.deepcopy(initial)
    return Variant(name, config, model, torch.optim.Adam(model.parameters(), lr=config.learning_rate), [])


def reset_peak() -> None:
    """Restart the process's peak RSS at its current RSS (Linux: ``clear_refs`` 5), so ru_maxrss leaves
    out what came before: the phantom's generation alone peaks far above a training step."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


def child_peak(name: str, steps: int, args: argparse.Namespace) -> None:
    """In a fresh process: the batch and the model, the peak reset, then ``steps`` steps of loss ``name``;
    prints the peak RSS since the reset (KiB, as Linux gives ru_maxrss) as JSON."""
    torch.set_num_threads(args.threads)
    batch = make_batch(args.batch, args.seed, tube=True)
    torch.manual_seed(args.seed)
    initial = build_model("unetmss", init_features=args.init_features).to(DEVICE).train()
    loss = LOSSES[BASELINE if name == SETUP else name]
    runner = variant(name, loss, initial, args.init_features, args.batch)
    del initial
    gc.collect()
    reset_peak()
    for _ in range(steps):
        runner.step(batch)
    print(json.dumps({"maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))


def peak_kib(name: str, args: argparse.Namespace) -> int:
    """Peak RSS of a fresh process running loss ``name`` (see :func:`child_peak`)."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", name]
    command += ["--memory-steps", str(0 if name == SETUP else args.memory_steps)]
    command += ["--threads", str(args.threads), "--batch", str(args.batch), "--seed", str(args.seed)]
    command += ["--init-features", str(args.init_features)]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])["maxrss_kib"]


def tube_seconds(batch: dict[str, torch.Tensor], repeats: int) -> list[float]:
    """Seconds of :func:`skeleton_tube` per patch, each of the batch's phantom label patches ``repeats``
    times (after one untimed call each); checks it makes the batch's own tubes."""
    labels = [to_volume(batch["label"][b, 0]).numpy() for b in range(batch["label"].shape[0])]
    for b, label in enumerate(labels):
        if not np.array_equal(skeleton_tube(label), to_volume(batch["tube"][b, 0]).numpy()):
            raise AssertionError("skeleton_tube of a label patch differs from the batch's tube")
    times = []
    for _ in range(repeats):
        for label in labels:
            start = time.perf_counter()
            skeleton_tube(label)
            times.append(time.perf_counter() - start)
    return times


def quartiles(values: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(values, n=4)
    return q[0], q[2]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_step_arguments(parser)
    parser.add_argument("--rounds", type=int, default=4, help="interleaved timed rounds (default: 4)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first (default: 1)")
    parser.add_argument(
        "--memory-steps", type=int, default=1, help="steps of each memory process (default: 1)"
    )
    parser.add_argument("--child", choices=[*LOSSES, SETUP], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rounds < 2:
        parser.error("--rounds must be 2 or more (the A/A band needs quartiles)")
    if args.child is not None:
        child_peak(args.child, args.memory_steps, args)
        return 0

    started = time.perf_counter()
    torch.set_num_threads(args.threads)
    print_machine(args.threads, {"torch": torch.__version__, "numpy": np.__version__})
    print(
        f"\npeak memory, one process per loss (ru_maxrss over {args.memory_steps} step(s), "
        "counted from the RSS with the batch and the model made; run before this process makes its own):"
    )
    peaks = {name: peak_kib(name, args) for name in [SETUP, *LOSSES]}
    setup, base_peak = peaks[SETUP], peaks[BASELINE]
    print(f"  {SETUP:24s}: {setup / 1024:7.1f} MiB (the RSS the steps start from)")
    memory = {}
    for name in LOSSES:
        above = (peaks[name] - setup) / max(base_peak - setup, 1)
        memory[name] = peaks[name] / base_peak
        print(
            f"  {name:24s}: {peaks[name] / 1024:7.1f} MiB = {memory[name]:.3f}x the FTL-only process; "
            f"above setup {(peaks[name] - setup) / 1024:6.1f} MiB = {above:.2f}x FTL-only's"
        )

    batch = make_batch(args.batch, args.seed, tube=True)
    shapes = ", ".join(f"{k}: {tuple(v.shape)}" for k, v in batch.items() if v.dim() > 1)
    print(f"\nbatch (PatchDataset + DataLoader, with tubes): {shapes}")
    torch.manual_seed(args.seed)
    initial = build_model("unetmss", init_features=args.init_features).to(DEVICE).train()
    variants = [variant(name, loss, initial, args.init_features, args.batch) for name, loss in LOSSES.items()]
    variants.append(variant(CONTROL, LOSSES[BASELINE], initial, args.init_features, args.batch))
    print(
        f"model: UNetMSS3D init_features={args.init_features}, batch {args.batch} x {PATCH}, CPU, "
        f"Adam, clip {variants[0].config.gradient_clip}; {args.warmup} warm-up + {args.rounds} timed "
        f"rounds, interleaved, order rotating"
    )

    print(f"load average before the timed rounds: {os.getloadavg()[0]:.2f}")
    for _ in range(args.warmup):
        for runner in variants:
            runner.step(batch)
    for round_ in range(args.rounds):
        shift = round_ % len(variants)
        for runner in variants[shift:] + variants[:shift]:
            runner.times.append(runner.step(batch))

    baseline = variants[0]
    base = statistics.median(baseline.times)
    control = variants[-1]
    aa_rounds = [c / b for c, b in zip(control.times, baseline.times, strict=True)]
    aa_low, aa_high = quartiles(aa_rounds)
    print(f"\nstep time, median of {args.rounds} rounds, [min-max]:")
    for runner in variants:
        print(f"  {runner.name:24s}: {spread(runner.times)}")
    print(
        f"A/A control / baseline: median {statistics.median(control.times) / base:.3f}; per-round ratios "
        f"interquartile {aa_low:.3f}-{aa_high:.3f} (the noise band)"
    )

    tube = statistics.median(tube_seconds(batch, max(3, args.rounds // 2)))
    tube_share = tube / base
    batch_share = tube * args.batch / base
    tube_verdict = "PASS" if batch_share <= TUBE_TARGET else "FAIL"

    verdicts = []
    print("\nsummary, relative to the FTL-only step / process of this run:")
    print(f"  {'loss':24s}  step   (per-round median)  within A/A band?  memory  target / expectation")
    for runner in variants[1:-1]:
        name = runner.name
        ratio = statistics.median(runner.times) / base
        paired = statistics.median(c / b for c, b in zip(runner.times, baseline.times, strict=True))
        noise = "yes (noise)" if aa_low <= ratio <= aa_high else "no"
        if name in TARGETS:
            passed = ratio <= TARGETS[name]
            verdicts.append(passed)
            judged = f"target <= {TARGETS[name]:.2f}x -> {'PASS' if passed else 'FAIL'}"
        else:
            within = "within" if ratio <= EXPECTED[name] else "ABOVE"
            judged = f"expected <= {EXPECTED[name]}x -> {within} (stated, not a target)"
        print(
            f"  {name:24s}  {ratio:.3f}x ({paired:.3f}x)          {noise:16s}  {memory[name]:.3f}x  {judged}"
        )
    verdicts.append(tube_verdict == "PASS")
    print(
        f"  Skeleton Recall tube (skeleton_tube, 64^3 phantom label patch): {tube * 1e3:.1f} ms a patch = "
        f"{tube_share:.1%} of an FTL-only step; x{args.batch} patches = {batch_share:.1%} of a step; "
        f"target <= {TUBE_TARGET:.0%} -> {tube_verdict}"
    )
    print("anchors (Skeleton Recall paper, over plain nnU-Net, GPU):")
    for name, (time_, memory_) in ANCHORS.items():
        print(f"  {name:24s}: time {time_}, memory {memory_}")
    passed = sum(verdicts)
    print(f"\n{passed} of {len(verdicts)} targets met in {time.perf_counter() - started:.0f} s")
    return 0 if passed == len(verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
