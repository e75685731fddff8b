"""Training and inference at the published size on a GPU: each GPU row of docs/performance.md vs its baseline.

Each row is a ratio against a baseline measured in the same run, and each training step also a fraction
of the card's peak, also measured in the same run (a large fp16 matmul); the FLOPs of a step are counted
with ``torch.utils.flop_counter.FlopCounterMode`` (forward and backward of every convolution and matmul).

| row | candidate | baseline (same run) | target | earlier revision (H200, torch 2.11) |
|---|---|---|---|---|
| step_mip | UNetMSS3D + multi-axis MIP loss, a step | card's fp16 peak | <= 100 ms | 162 ms, 24 % |
| step_unet | UNet3D, no MIP | card's fp16 peak | <= 90 ms | 147 ms |
| step_ds6 | DS6 (UNetMSS3D + deformation branch) | card's fp16 peak | <= 190 ms | 308 ms |
| loop | ``train()`` per step | the bare step_mip | <= 1.05x | 1.40x |
| mip_share | step_mip - step without MIP | step_mip | <= 3 % | 5.3 % |
| skelrec | step_skelrec: + Skeleton Recall (weight 1) | step without MIP (FTL only) | <= 1.10x | not run |
| cldice | step_cldice: + soft-clDice (0.5, 10 iterations) | the same | stated (<= 1.9x expected) | not run |
| inference | ``predict_probabilities``, 2,128 windows | MONAI's sliding window | <= 0.75x | 1.14x |
| inference | the same | the network alone, same windows | <= 1.1x | 1.34x |

A step is :meth:`spockmip.training.trainer.Trainer.step`, what ``train()`` runs per batch: the batch (pinned,
as the loader makes it) copied to the GPU and normalised there, fp16 autocast, backward, clipping, fused Adam.
Size: width 64, batch 15 of 64³ (the published), default losses and DS6 settings (the released ones).
``loop`` times ``train()`` on random volumes with ``--workers`` loader workers (default: the library's,
up to 4 on a GPU) at two epoch lengths: the difference over the extra steps is the loop's cost per step,
free of start-up, validation and saving.
``inference``: a random 480 x 640 x 163 volume (a SMILE-UHURA scan's size: 2,128 windows of 64³ at strides
32/32/16), batch 16, average blending; MONAI gets the same predictor (normalise, network order, network,
sigmoid), the volume on the GPU and the same batch and overlap; "the network alone" is the forward passes
over 2,128 windows already on the GPU.

Settings: ``--channels-last`` and ``--compile`` (each on, off or both) choose the memory layout and
``torch.compile`` of the steps; with both at "both" the settings are default layout, channels_last, and
channels_last + compile (compile without channels_last only when asked). ``loop`` and ``inference`` run
the library's own layout (channels_last on CUDA), with compile off and on. The library's defaults come
first, so the key rows are in even if ``--budget`` (seconds) cuts the rest short. Every measurement is
guarded: a failure (out of memory, a compile error) is printed and the script goes on. The CUDA host
syncs of a step and of a whole ``train()`` are counted (``torch.cuda.set_sync_debug_mode``).

Run: ``.venv/bin/python benchmarks/bench_gpu.py`` (about 5 minutes on an H100; ``--quick``: the library's
defaults only, fewer steps, about 1-2 minutes). Exit status 0 when every row meets its target. Without a
GPU it stops at once with status 2; ``--smoke`` runs every code path at a tiny size on the CPU instead
(width 4, 32³, a few steps; ``torch.compile`` through dynamo's eager backend, skipping code generation),
to check the script itself works: status 0 when every measurement ran.
"""

from __future__ import annotations

import argparse
import functools
import gc
import math
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from spockmip.axes import to_network, to_volume
from spockmip.data.subjects import PatchDataset, PatchSpec, Subject, grid_positions, normalise_patches
from spockmip.inference.windows import InferenceConfig, predict_probabilities
from spockmip.networks.unet import build_model
from spockmip.objective.losses import LossConfig
from spockmip.objective.mip import volume_mips
from spockmip.runtime.devices import autocast, compiled, memory_format
from spockmip.training.trainer import Trainer, TrainingConfig, TrainingPaths, train

SEED = 2020


@dataclass(frozen=True)
class Size:
    """How big and how long: the published size, or tiny for ``--smoke``."""

    width: int
    batch: int
    patch: int
    strides: tuple[int, int, int]
    volume: tuple[int, int, int]  # inference (X, Y, Z)
    windows_per_batch: int
    training_volume: tuple[int, int, int]
    warmup: int
    steps: int
    sync_steps: int  # steps run under CUDA's sync debug mode, apart from the timed ones
    loop_steps: tuple[int, int]
    repeats: int
    matmul: int


PUBLISHED = Size(
    width=64,
    batch=15,
    patch=64,
    strides=(32, 32, 16),
    volume=(480, 640, 163),
    windows_per_batch=16,
    training_volume=(192, 192, 128),
    warmup=5,
    steps=15,
    sync_steps=3,
    loop_steps=(10, 60),
    repeats=2,
    matmul=8192,
)
QUICK = replace(PUBLISHED, warmup=3, steps=6, loop_steps=(5, 25), repeats=1)
SMOKE = Size(
    width=4,
    batch=2,
    patch=32,
    strides=(16, 16, 8),
    volume=(64, 64, 48),
    windows_per_batch=4,
    training_volume=(64, 64, 48),
    warmup=1,
    steps=1,
    sync_steps=1,
    loop_steps=(2, 4),
    repeats=1,
    matmul=256,
)
VARIANTS = {
    "step_mip": TrainingConfig(model="unetmss", loss=LossConfig(mip_axis="multi")),
    "step_nomip": TrainingConfig(model="unetmss"),
    "step_unet": TrainingConfig(model="unet"),
    "step_ds6": TrainingConfig(model="unetmss", deform=True),
    "step_cldice": TrainingConfig(
        model="unetmss", loss=LossConfig(skeleton_loss="cldice", cldice_iterations=10)
    ),
    "step_skelrec": TrainingConfig(model="unetmss", loss=LossConfig(skeleton_loss="skeleton_recall")),
}
TARGETS = {"step_mip": 0.100, "step_unet": 0.090, "step_ds6": 0.190}
LOOP_TARGET, SHARE_TARGET, MONAI_TARGET, NETWORK_TARGET = 1.05, 0.03, 0.75, 1.1
SKELREC_TARGET, CLDICE_EXPECTED = 1.10, 1.9  # ratios to step_nomip; soft-clDice's is stated, not a target


@dataclass(frozen=True)
class Setting:
    channels_last: bool
    compile: bool

    def __str__(self) -> str:
        layout = "channels_last" if self.channels_last else "default layout"
        return f"{layout}{' + compile' if self.compile else ''}"


@dataclass
class Run:
    """What the run found: printed rows, the verdicts of the targets and any failed measurement."""

    device: torch.device
    size: Size
    folder: Path
    budget: float
    started: float
    smoke: bool
    peak: float = math.nan
    verdicts: list[bool] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def attempt(self, name: str, measure: Callable[..., Any], *arguments: Any) -> Any:
        """``measure(*arguments)``, or None after printing why it failed or was skipped; frees GPU memory
        after."""
        elapsed = time.perf_counter() - self.started
        if elapsed > self.budget:
            print(f"  {name}: skipped, the time budget ({self.budget:.0f} s) is spent", flush=True)
            return None
        try:
            return measure(*arguments)
        except Exception as error:  # a benchmark reports every failure and goes on to the next row
            print(f"  {name}: FAILED {type(error).__name__}: {str(error).splitlines()[0][:200]}", flush=True)
            self.failures.append(name)
            return None
        finally:
            gc.collect()
            if self.device.type == "cuda":
                torch.cuda.empty_cache()

    def verdict(self, value: float, target: float) -> str:
        """PASS/FAIL against ``target`` (recorded for the exit status), or n/a at the smoke size."""
        if self.smoke:
            return "n/a (smoke size)"
        self.verdicts.append(value <= target)
        return f"target <= {target:g} -> {'PASS' if value <= target else 'FAIL'}"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def call_times(call: Callable[[], object], count: int, device: torch.device) -> list[float]:
    """Seconds of each of ``count`` calls. On CUDA, events around each call time the GPU's timeline with no
    wait between calls, as in training; elsewhere, the host's clock."""
    if device.type != "cuda":
        times = []
        for _ in range(count):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
        return times
    events = [
        (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(count)
    ]
    for start, end in events:
        start.record()
        call()
        end.record()
    torch.cuda.synchronize(device)
    return [start.elapsed_time(end) / 1e3 for start, end in events]


def wall_seconds(call: Callable[[], object], device: torch.device) -> float:
    """Wall time of one call, from an idle device to an idle device."""
    synchronize(device)
    start = time.perf_counter()
    call()
    synchronize(device)
    return time.perf_counter() - start


@contextmanager
def counted_syncs(device: torch.device) -> Iterator[list[warnings.WarningMessage]]:
    """The CUDA operations inside that made the host wait for the GPU (none counted off CUDA)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if device.type == "cuda":
            torch.cuda.set_sync_debug_mode("warn")
        try:
            yield caught
        finally:
            if device.type == "cuda":
                torch.cuda.set_sync_debug_mode("default")
    caught[:] = [w for w in caught if "synchroniz" in str(w.message)]


def random_subject(shape: tuple[int, int, int], seed: int, folder: Path) -> Subject:
    """A random volume with a sparse random label and its MIPs (the loop's cost does not depend on
    content), its image written into ``folder``: a run's identity fingerprints the file."""
    rng = np.random.default_rng(seed)
    image = rng.random(shape, dtype=np.float32) * 300
    label = (rng.random(shape) > 0.95).astype(np.uint8)
    reference = nib.Nifti1Image(image, np.eye(4))
    path = folder / f"random{seed}.nii"
    nib.save(reference, path)
    return Subject(
        name=f"random{seed}",
        image=image,
        label=label,
        affine=np.eye(4),
        image_path=path,
        reference=reference,
        label_mips=volume_mips(label),
    )


def host_batch(size: Size, device: torch.device, folder: Path) -> dict[str, torch.Tensor]:
    """One batch as the training loader makes it: raw patches with MIP crops and skeleton tubes (Skeleton
    Recall's target; the other variants ignore them), pinned for a GPU."""
    subject = random_subject(size.training_volume, SEED, folder)
    patch = (size.patch,) * 3
    positions = grid_positions(subject.image.shape, patch, size.strides)
    chosen = np.random.default_rng(SEED).choice(len(positions), size=size.batch, replace=False)
    plan = [PatchSpec(0, positions[i]) for i in chosen]
    dataset = PatchDataset([subject], plan, patch, ("x", "y", "z"), tube=True)
    loader = torch.utils.data.DataLoader(dataset, batch_size=size.batch, pin_memory=device.type == "cuda")
    return next(iter(loader))


def shaped(config: TrainingConfig, size: Size, **changes: Any) -> TrainingConfig:
    patch = (size.patch,) * 3
    return replace(
        config,
        init_features=size.width,
        batch_size=size.batch,
        patch_size=patch,
        strides=size.strides,
        **changes,
    )


def step_flops(
    config: TrainingConfig, size: Size, device: torch.device, batch: dict[str, torch.Tensor]
) -> int:
    """FLOPs of one training step (forward and backward of convolutions and matmuls), counted."""
    torch.manual_seed(SEED)
    trainer = Trainer.build(shaped(config, size), device)
    with FlopCounterMode(display=False) as counter:
        trainer.step(batch, torch.Generator().manual_seed(SEED))
    return counter.get_total_flops()


def time_steps(
    run: Run, name: str, setting: Setting, batch: dict[str, torch.Tensor], flops: dict[str, int]
) -> float:
    """Median seconds of a training step of variant ``name`` under ``setting``; prints it."""
    size, device = run.size, run.device
    if name not in flops:
        flops[name] = step_flops(VARIANTS[name], size, device, batch)
    config = shaped(VARIANTS[name], size, compile=setting.compile)
    torch.manual_seed(SEED)
    layout = torch.channels_last_3d if setting.channels_last else torch.contiguous_format
    trainer = Trainer.build(config, device, layout)
    generator = torch.Generator().manual_seed(SEED)
    call_times(lambda: trainer.step(batch, generator), size.warmup, device)
    times = call_times(lambda: trainer.step(batch, generator), size.steps, device)
    with counted_syncs(device) as syncs:
        for _ in range(size.sync_steps):
            trainer.step(batch, generator)
    synchronize(device)
    seconds = statistics.median(times)
    share = flops[name] / seconds / run.peak
    if name in TARGETS:
        target = run.verdict(seconds, TARGETS[name])
    else:
        target = "(baseline of mip_share, skelrec, cldice)" if name == "step_nomip" else "(see its ratio row)"
    spread = f"[{min(times) * 1e3:.1f}-{max(times) * 1e3:.1f}]"
    print(
        f"  {name:10s} [{setting}]: {seconds * 1e3:7.1f} ms {spread}, {flops[name] / 1e12:.2f} TFLOP = "
        f"{share:.1%} of peak; host syncs {len(syncs) / size.sync_steps:.1f}/step; {target}",
        flush=True,
    )
    return seconds


def time_loop(run: Run, setting: Setting, bare: float, workers: int | None) -> None:
    """``train()``'s cost per step (the difference of two epoch lengths) against the bare step."""
    size, device = run.size, run.device
    subjects = [random_subject(size.training_volume, SEED + i, run.folder) for i in (1, 2)]
    validation = [random_subject((size.patch,) * 3, SEED + 3, run.folder)]  # one validation window
    base = shaped(VARIANTS["step_mip"], size, compile=setting.compile, epochs=1, num_workers=workers)

    def seconds(steps: int) -> tuple[float, int]:
        """Wall time of a whole ``train()`` of one epoch of ``steps`` steps, and its host syncs."""
        config = replace(base, patches_per_epoch=steps * size.batch)
        with tempfile.TemporaryDirectory() as folder:
            paths = TrainingPaths(
                Path(folder) / "best.pt", Path(folder) / "history.csv", Path(folder) / "state"
            )
            synchronize(device)
            start = time.perf_counter()
            with counted_syncs(device) as syncs:
                train(subjects, validation, config, paths, device, progress=False)
            synchronize(device)
            return time.perf_counter() - start, len(syncs)

    seconds(size.loop_steps[0])  # warm-up: allocator, cuDNN's choices, compilation
    (short, short_syncs), (long, long_syncs) = (seconds(steps) for steps in size.loop_steps)
    extra = size.loop_steps[1] - size.loop_steps[0]
    per_step, ratio = (long - short) / extra, (long - short) / extra / bare
    lengths = f"{long:.1f} s for {size.loop_steps[1]} steps - {short:.1f} s for {size.loop_steps[0]}"
    used = "the library's default" if workers is None else str(workers)
    print(
        f"  loop       [{setting}]: {per_step * 1e3:7.1f} ms/step ({lengths}; loader workers: {used}) = "
        f"{ratio:.3f}x the bare step; "
        "host syncs per extra step "
        f"{(long_syncs - short_syncs) / extra:.1f} ({long_syncs} in the longer run, saving included); "
        f"{run.verdict(ratio, LOOP_TARGET)}",
        flush=True,
    )


def monai_predictor(
    network: torch.nn.Module, layout: torch.memory_format
) -> Callable[[torch.Tensor], torch.Tensor]:
    """What ours does to each batch of windows, as a MONAI predictor on (N, 1, X, Y, Z) windows."""

    def predict(windows: torch.Tensor) -> torch.Tensor:
        inputs = to_network(normalise_patches(windows)).contiguous(memory_format=layout)
        return to_volume(torch.sigmoid(network(inputs)[0].float()))

    return predict


def time_inference(run: Run, setting: Setting) -> None:
    """Ours against MONAI's sliding window and against the network alone, interleaved, medians."""
    from monai.inferers import sliding_window_inference

    size, device = run.size, run.device
    layout = memory_format(device)
    patch = (size.patch,) * 3
    config = InferenceConfig(
        patch_size=patch, strides=size.strides, batch_size=size.windows_per_batch, compile=setting.compile
    )
    torch.manual_seed(SEED)
    model = build_model("unetmss", init_features=size.width).to(device, memory_format=layout).eval()
    network = compiled(model, setting.compile)
    volume = np.random.default_rng(SEED).random(size.volume, dtype=np.float32) * 300
    count = len(grid_positions(size.volume, patch, size.strides))
    windows = torch.rand((size.windows_per_batch, 1, *patch), device=device).contiguous(memory_format=layout)
    overlap = tuple((p - s) / p for p, s in zip(patch, size.strides, strict=True))
    on_device = torch.from_numpy(volume)[None, None].to(device)
    outputs: dict[str, np.ndarray] = {}

    @torch.no_grad()
    def network_alone() -> None:
        with autocast(device):
            for _ in range(math.ceil(count / size.windows_per_batch)):
                network(windows)

    def ours() -> None:
        outputs["ours"] = predict_probabilities(model, volume, config, device)

    @torch.no_grad()
    def monai() -> None:
        with autocast(device):
            result = sliding_window_inference(
                on_device,
                patch,
                size.windows_per_batch,
                monai_predictor(network, layout),
                overlap,
                "constant",
            )
        outputs["MONAI"] = torch.as_tensor(result)[0, 0].float().cpu().numpy()

    runs: dict[str, tuple[Callable[[], None], list[float]]] = {
        "network": (network_alone, []),
        "ours": (ours, []),
        "MONAI": (monai, []),
    }
    for call, _ in runs.values():  # warm-up: compilation, cuDNN's choices, the caching allocator
        call()
    for repeat in range(size.repeats):
        for name in list(runs) if repeat % 2 == 0 else list(runs)[::-1]:
            call, walls = runs[name]
            walls.append(wall_seconds(call, device))
    medians = {name: statistics.median(walls) for name, (_, walls) in runs.items()}
    difference = float(np.abs(outputs["ours"] - outputs["MONAI"]).max())
    print(
        f"  inference  [{setting}]: {count} windows, batch {size.windows_per_batch}: "
        f"ours {medians['ours']:.2f} s, MONAI {medians['MONAI']:.2f} s, network alone "
        f"{medians['network']:.2f} s (median of {size.repeats}); max |ours - MONAI| {difference:.1e}",
        flush=True,
    )
    to_monai, alone = medians["ours"] / medians["MONAI"], medians["ours"] / medians["network"]
    print(f"  inference  ours / MONAI {to_monai:.3f}; {run.verdict(to_monai, MONAI_TARGET)}")
    print(f"  inference  ours / network alone {alone:.3f}; {run.verdict(alone, NETWORK_TARGET)}")


def measure_peak(run: Run) -> float:
    """FLOP/s of a large square matmul: fp16 on a GPU (the tensor cores), fp32 on a CPU (the smoke)."""
    n, device = run.size.matmul, run.device
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    a, b = (torch.randn((n, n), device=device, dtype=dtype) for _ in range(2))
    call_times(lambda: a @ b, 3, device)
    seconds = statistics.median(call_times(lambda: a @ b, 10, device))
    peak = 2 * n**3 / seconds
    print(f"peak: {n} x {n} {dtype} matmul, {peak / 1e12:.1f} TFLOP/s (median of 10)", flush=True)
    return peak


def print_versions(device: torch.device) -> None:
    """Card, driver, torch, CUDA and cuDNN: numbers from different stacks are not comparable."""
    if device.type == "cuda":
        try:
            driver = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=20,
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError) as error:
            driver = f"unknown ({error})"
        card = f"{torch.cuda.get_device_name(device)}; driver {driver or 'unknown'}"
    else:
        card = "none (CPU smoke run)"
    print(f"card: {card}")
    print(
        f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, "
        f"python {sys.version.split()[0]}",
        flush=True,
    )


def settings(channels_last: str, compile_: str) -> list[Setting]:
    """The step settings asked for, the library's default (channels_last, no compile) first."""
    layouts = {"on": [True], "off": [False], "both": [True, False]}[channels_last]
    compiles = {"on": [True], "off": [False], "both": [False, True]}[compile_]
    chosen = [Setting(layout, compiled) for compiled in compiles for layout in layouts]
    if channels_last == compile_ == "both":
        chosen.remove(Setting(False, True))
    return chosen


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--channels-last", choices=("on", "off", "both"), default="both")
    parser.add_argument("--compile", choices=("on", "off", "both"), default="both")
    parser.add_argument(
        "--workers", type=int, help="loader workers of the loop row (default: the library's, up to 4)"
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=330,
        help="seconds after which no new measurement starts (default: 330)",
    )
    parser.add_argument("--quick", action="store_true", help="library defaults only, fewer steps")
    parser.add_argument("--smoke", action="store_true", help="every code path at a tiny size, on the CPU")
    args = parser.parse_args()
    if not torch.cuda.is_available() and not args.smoke:
        print(
            "bench_gpu.py: no CUDA device; this benchmark needs a GPU (--smoke checks it on the CPU)",
            file=sys.stderr,
        )
        return 2
    device = torch.device("cpu" if args.smoke else "cuda")
    if args.smoke:
        # Dynamo traces and guards as with any backend; inductor's code generation would take minutes here.
        torch.compile = functools.partial(torch.compile, backend="eager")  # type: ignore[assignment]
        # One thread: a shared CPU's other load stalls multi-threaded tiny ops by orders of magnitude. The
        # smoke run checks that every path works, with no time limit.
        torch.set_num_threads(1)
        args.workers, args.budget = min(args.workers or 2, 2), math.inf
    size = SMOKE if args.smoke else QUICK if args.quick else PUBLISHED
    if args.smoke:  # every combination, the CPU's own layout (the default one) first
        chosen = [Setting(layout, compiled) for layout in (False, True) for compiled in (False, True)]
    else:
        chosen = [Setting(True, False)] if args.quick else settings(args.channels_last, args.compile)
    with tempfile.TemporaryDirectory() as folder:
        run = Run(device, size, Path(folder), args.budget, time.perf_counter(), args.smoke)
        return measure_all(run, chosen, args.workers)


def measure_all(run: Run, chosen: list[Setting], workers: int | None) -> int:
    """Every row under every setting in ``chosen``, the library's defaults first; the exit status."""
    device, size = run.device, run.size
    print_versions(device)
    run.peak = run.attempt("peak", measure_peak, run) or math.nan
    batch = host_batch(size, device, run.folder)
    library_layout = memory_format(device) == torch.channels_last_3d
    flops: dict[str, int] = {}
    for setting in chosen:
        print(f"\n[{setting}], width {size.width}, batch {size.batch} of {size.patch}^3:", flush=True)
        steps = {name: run.attempt(name, time_steps, run, name, setting, batch, flops) for name in VARIANTS}
        if steps["step_mip"] is not None and steps["step_nomip"] is not None:
            share = (steps["step_mip"] - steps["step_nomip"]) / steps["step_mip"]
            print(f"  mip_share  [{setting}]: {share:.1%} of step_mip; {run.verdict(share, SHARE_TARGET)}")
        if steps["step_skelrec"] is not None and steps["step_nomip"] is not None:
            ratio = steps["step_skelrec"] / steps["step_nomip"]
            verdict = run.verdict(ratio, SKELREC_TARGET)
            print(f"  skelrec    [{setting}]: {ratio:.3f}x step_nomip (paper: about +8 %); {verdict}")
        if steps["step_cldice"] is not None and steps["step_nomip"] is not None:
            ratio = steps["step_cldice"] / steps["step_nomip"]
            print(
                f"  cldice     [{setting}]: {ratio:.3f}x step_nomip (paper: about +88 %); expected <= "
                f"{CLDICE_EXPECTED}x -> {'within' if ratio <= CLDICE_EXPECTED else 'ABOVE'} (not a target)"
            )
        if setting.channels_last == library_layout:
            if steps["step_mip"] is not None:
                run.attempt("loop", time_loop, run, setting, steps["step_mip"], workers)
            run.attempt("inference", time_inference, run, setting)
    total = time.perf_counter() - run.started
    failed = f"; failed: {', '.join(run.failures)}" if run.failures else ""
    if run.smoke:
        print(f"\nsmoke run done in {total:.0f} s{failed}")
        return 1 if run.failures else 0
    passed = sum(run.verdicts)
    print(f"\n{passed} of {len(run.verdicts)} targets met in {total:.0f} s{failed}")
    return 0 if run.verdicts and passed == len(run.verdicts) and not run.failures else 1


if __name__ == "__main__":
    sys.exit(main())
