"""Time our sliding-window inference against MONAI's ``sliding_window_inference`` doing the same thing.

Baseline: ``monai.inferers.sliding_window_inference`` (install with ``pip install -e '.[bench]'``), given
a predictor equivalent to what :func:`spockmip.inference.windows.predict_probabilities` does per window:
divide the window by its own maximum (all-zero windows stay zero), permute to network order (Z, X, Y) with
:func:`spockmip.axes.to_network`, take the sigmoid of the first output and permute back with
:func:`spockmip.axes.to_volume`. Same model (UNetMSS, eval mode), same 64³ patch, the same window grid
(our strides 32/32/16 are MONAI overlaps (patch − stride)/patch = 0.5/0.5/0.75), same batch of windows
(``sw_batch_size`` = our ``InferenceConfig.batch_size``) and the same blending (our ``average`` is MONAI's
``constant``), on a fixed-seed random 192 × 192 × 96 volume.

Before timing, the script checks what it can without a network: the windows MONAI visits (recorded with
``with_coord=True``) and their batching must be ours exactly, and our Gaussian blend weights are compared
with MONAI's importance map. Then the two run interleaved (ours, MONAI, MONAI, ours, ...), the median
wall time of each is reported with the time spent inside the network (the same work in both; the rest is
the sliding-window machinery), and the outputs are compared.

Targets: time ours / MONAI ≤ 1.0 and max |Δ probability| ≤ 1e-5. With ``--gaussian`` the Gaussian blend
is also run: ours against MONAI's own ``mode="gaussian", sigma_scale=0.125`` and against MONAI given our
weight map (``roi_weight_map``), which separates a difference in the weights from one in the machinery.

Run: ``.venv/bin/python benchmarks/bench_sliding_window.py`` (``--help`` for options); exit status 0 on
PASS.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
import torch
from machine import print_machine

from spockmip.axes import to_network, to_volume
from spockmip.data.subjects import grid_positions
from spockmip.inference.windows import (
    CPU_WINDOWS_PER_BATCH,
    GAUSSIAN_SIGMA_FRACTION,
    InferenceConfig,
    blend_weights,
    predict_probabilities,
)
from spockmip.networks.unet import build_model

try:
    import monai
    from monai.data.utils import compute_importance_map
    from monai.inferers import sliding_window_inference
except ImportError:  # pragma: no cover - the baseline is an optional dependency
    sys.exit("this benchmark needs MONAI: pip install -e '.[bench]'")

VOLUME_SHAPE = (192, 192, 96)  # (X, Y, Z)
SEED = 2020
TARGET_RATIO = 1.0
TARGET_DIFFERENCE = 1e-5


class TimedModel(torch.nn.Module):
    """The network with a stopwatch: seconds spent in ``forward`` are the part both sides share."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model
        self.seconds = 0.0

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        start = time.perf_counter()
        outputs = self.model(x)
        self.seconds += time.perf_counter() - start
        return outputs


def monai_predictor(model: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """What our inference does to each window, as a MONAI predictor on (N, 1, X, Y, Z) windows."""

    def predict(windows: torch.Tensor) -> torch.Tensor:
        peak = windows.amax(dim=(1, 2, 3, 4), keepdim=True)
        scaled = torch.where(peak > 0, windows / torch.where(peak > 0, peak, 1.0), 0.0)
        return to_volume(torch.sigmoid(model(to_network(scaled))[0].float()))

    return predict


def overlaps(config: InferenceConfig) -> tuple[float, ...]:
    """MONAI's overlap fraction per axis for our strides: (patch − stride) / patch."""
    return tuple((p - s) / p for p, s in zip(config.patch_size, config.strides, strict=True))


def run_monai(
    model: torch.nn.Module,
    volume: np.ndarray,
    config: InferenceConfig,
    mode: str = "constant",
    roi_weight_map: torch.Tensor | None = None,
) -> np.ndarray:
    """MONAI's sliding window on the same volume, with our settings translated."""
    with torch.no_grad():
        output = sliding_window_inference(
            torch.from_numpy(volume)[None, None],
            roi_size=config.patch_size,
            sw_batch_size=config.batch_size,
            predictor=monai_predictor(model),
            overlap=overlaps(config),
            mode=mode,
            sigma_scale=GAUSSIAN_SIGMA_FRACTION,
            roi_weight_map=roi_weight_map,
        )
    return torch.as_tensor(output)[0, 0].numpy()


def check_windows(volume: np.ndarray, config: InferenceConfig) -> bool:
    """MONAI's windows, in visiting order and batching, against ours (no network needed)."""
    visited: list[tuple[int, ...]] = []
    batch_sizes: list[int] = []

    def record(windows: torch.Tensor, slices: Sequence[Sequence[slice]]) -> torch.Tensor:
        batch_sizes.append(windows.shape[0])
        visited.extend(tuple(s.start for s in window[2:]) for window in slices)
        return torch.zeros_like(windows)

    with torch.no_grad():
        sliding_window_inference(
            torch.from_numpy(volume)[None, None],
            config.patch_size,
            config.batch_size,
            record,
            overlap=overlaps(config),
            with_coord=True,
        )
    ours = grid_positions(volume.shape, config.patch_size, config.strides)
    our_batches = [min(config.batch_size, len(ours) - i) for i in range(0, len(ours), config.batch_size)]
    same_windows, same_batches = visited == ours, batch_sizes == our_batches
    print(
        f"windows: ours {len(ours)}, MONAI {len(visited)}; same positions in the same order: {same_windows}"
    )
    print(
        f"batches of windows: ours {len(our_batches)}, MONAI {len(batch_sizes)}; same sizes: {same_batches}"
    )
    return same_windows and same_batches


def compare_gaussian_weights(patch: Sequence[int]) -> None:
    """Our Gaussian blend weights against MONAI's importance map; only relative weights matter."""
    ours = blend_weights(patch, "gaussian").astype(np.float64)
    theirs = compute_importance_map(tuple(patch), mode="gaussian", sigma_scale=GAUSSIAN_SIGMA_FRACTION)
    theirs = theirs.numpy().astype(np.float64)
    ours, theirs = ours / ours.max(), theirs / theirs.max()
    floor = theirs.min()
    clamped = theirs <= floor * (1 + 1e-6)
    unclamped_diff = np.abs(ours - theirs)[~clamped].max()
    print(
        f"Gaussian weights (sigma = {GAUSSIAN_SIGMA_FRACTION} x patch, both centred at (size - 1)/2), "
        f"each scaled to max 1: MONAI clamps its map from below at {floor:.2e}, ours goes down to "
        f"{ours.min():.2e}; the clamp touches {clamped.mean():.1%} of the window (its corners). Elsewhere "
        f"max |difference| = {unclamped_diff:.1e}. Agree: {bool(np.abs(ours - theirs).max() <= 1e-6)}"
    )


def spread(times: Sequence[float]) -> str:
    """Median with the range: the range shows how much other processes disturbed the run."""
    return f"{statistics.median(times):7.2f} s [{min(times):.2f}-{max(times):.2f}]"


def timed_call(function: Callable[[], np.ndarray], model: TimedModel) -> tuple[np.ndarray, float, float]:
    """Result, wall seconds and seconds inside the network of one call."""
    model.seconds = 0.0
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start, model.seconds


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default: 2)")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs of each, interleaved (default: 2)")
    parser.add_argument(
        "--init-features", type=int, default=8, help="UNetMSS width; 64 is the published one (default: 8)"
    )
    parser.add_argument(
        "--gaussian", action="store_true", help="also compare the Gaussian blend (3 more runs)"
    )
    parser.add_argument("--seed", type=int, default=SEED, help=f"volume and weight seed (default: {SEED})")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    print_machine(
        args.threads, {"torch": torch.__version__, "numpy": np.__version__, "monai": monai.__version__}
    )
    torch.manual_seed(args.seed)
    model = TimedModel(build_model("unetmss", init_features=args.init_features).eval())
    volume = np.random.default_rng(args.seed).random(VOLUME_SHAPE, dtype=np.float32) * 300
    # MONAI needs the batch size spelt out: the CPU default of ours.
    config = InferenceConfig(blend="average", batch_size=CPU_WINDOWS_PER_BATCH)
    print(
        f"\nmodel: UNetMSS init_features={args.init_features}, eval; "
        f"volume {VOLUME_SHAPE} (seed {args.seed}); "
        f"patch {config.patch_size}, strides {config.strides} = MONAI overlap {overlaps(config)}, "
        f"batch {config.batch_size} windows"
    )
    windows_ok = check_windows(volume, config)
    compare_gaussian_weights(config.patch_size)

    with torch.no_grad():  # warm-up: first-call costs (allocator, kernel selection) hit neither side
        model(torch.zeros(config.batch_size, 1, *config.patch_size))

    runs: dict[str, tuple[Callable[[], np.ndarray], list[float], list[float]]] = {
        "ours": (lambda: predict_probabilities(model, volume, config), [], []),
        "MONAI": (lambda: run_monai(model, volume, config, mode="constant"), [], []),
    }
    outputs: dict[str, np.ndarray] = {}
    for repeat in range(args.repeats):
        for name in ("ours", "MONAI") if repeat % 2 == 0 else ("MONAI", "ours"):
            function, walls, inside = runs[name]
            outputs[name], wall, network = timed_call(function, model)
            walls.append(wall)
            inside.append(network)
            print(f"  run {repeat + 1} {name:5s}: {wall:6.2f} s, of which {network:6.2f} s in the network")

    print(f"\naverage blending ('constant' in MONAI), median of {args.repeats}, [min-max]:")
    for name, (_, walls, inside) in runs.items():
        outside = [w - n for w, n in zip(walls, inside, strict=True)]
        print(f"  {name:5s}: total {spread(walls)}; outside the network {spread(outside)}")
    ratio = statistics.median(runs["ours"][1]) / statistics.median(runs["MONAI"][1])
    difference = float(np.abs(outputs["ours"] - outputs["MONAI"]).max())
    time_ok, same_ok = ratio <= TARGET_RATIO, difference <= TARGET_DIFFERENCE
    print(
        f"time ratio ours / MONAI: {ratio:.3f}; target <= {TARGET_RATIO} -> {'PASS' if time_ok else 'FAIL'}"
    )
    print(
        f"max |probability difference|: {difference:.2e}; target <= {TARGET_DIFFERENCE:.0e} -> "
        f"{'PASS' if same_ok else 'FAIL'}"
    )

    if args.gaussian:
        gaussian = replace(config, blend="gaussian")
        ours, ours_wall, _ = timed_call(lambda: predict_probabilities(model, volume, gaussian), model)
        theirs, theirs_wall, _ = timed_call(
            lambda: run_monai(model, volume, gaussian, mode="gaussian"), model
        )
        our_map = torch.from_numpy(blend_weights(gaussian.patch_size, "gaussian"))
        given, given_wall, _ = timed_call(
            lambda: run_monai(model, volume, gaussian, roi_weight_map=our_map), model
        )
        print("\nGaussian blending, one run each:")
        print(f"  ours {ours_wall:.2f} s; MONAI mode='gaussian' {theirs_wall:.2f} s; ", end="")
        print(f"MONAI with our map {given_wall:.2f} s")
        print(f"  max |difference| ours vs MONAI mode='gaussian': {np.abs(ours - theirs).max():.2e}")
        print(f"  max |difference| ours vs MONAI given our weight map: {np.abs(ours - given).max():.2e}")

    verdict = windows_ok and time_ok and same_ok
    print(f"\noverall: {'PASS' if verdict else 'FAIL'}")
    return 0 if verdict else 1


if __name__ == "__main__":
    sys.exit(main())
