"""Time :func:`spockmip.evaluation.metrics.all_metrics` on a full-size synthetic MRA segmentation.

The volume is 480 x 640 x 163 (a TOF-MRA slab) with about 1 % foreground made of curved tubes of varying
radius; the prediction is the reference with broken segments, spurious blobs and a noisy boundary, so
that every metric has work to do. The budget is 30 s for one ``all_metrics`` call on 2 cores.

For comparison the same metrics are computed the naive way (skimage/scipy on the whole uncropped volume,
the prediction labelled twice, no threads) in the same run, and both results are checked to agree.

Run: ``python benchmarks/bench_metrics.py``
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy
import skimage
from machine import print_machine
from numpy.typing import NDArray
from scipy import ndimage as ndi
from skimage.measure import euler_number
from skimage.morphology import skeletonize

from spockmip.evaluation import metrics

SHAPE = (480, 640, 163)
SEED = 20240613
N_TUBES = 140
BUDGET_S = 30.0
REPEATS = 3  # best of 3: other processes may share the cores


def _ball_offsets(radius: float) -> NDArray[np.int64]:
    reach = int(np.ceil(radius))
    grid = np.mgrid[-reach : reach + 1, -reach : reach + 1, -reach : reach + 1].reshape(3, -1).T
    return grid[(grid**2).sum(axis=1) <= radius**2]


def _stamp_balls(mask: NDArray[np.bool_], centres: NDArray[np.float64], radii: NDArray[np.float64]) -> None:
    """Set balls around ``centres``; radii are rounded to half voxels so each radius is one vector op."""
    shape = np.array(mask.shape)
    rounded = np.round(radii * 2) / 2
    for radius in np.unique(rounded):
        centre = np.round(centres[rounded == radius]).astype(np.int64)
        voxels = (centre[:, None, :] + _ball_offsets(radius)[None]).reshape(-1, 3)
        voxels = voxels[np.all((voxels >= 0) & (voxels < shape), axis=1)]
        mask[voxels[:, 0], voxels[:, 1], voxels[:, 2]] = True


def vessel_reference(rng: np.random.Generator) -> NDArray[np.bool_]:
    """Smoothly curving tubes that taper along their length, like vessels (not white noise)."""
    centres, radii = [], []
    for _ in range(N_TUBES):
        length = int(rng.integers(300, 900))
        heading = rng.normal(size=3)
        turns = ndi.gaussian_filter1d(rng.normal(scale=0.64, size=(length, 3)), 20, axis=0)
        directions = heading / np.linalg.norm(heading) + np.cumsum(turns, axis=0)
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        centres.append(rng.uniform(0, 1, 3) * SHAPE + np.cumsum(0.5 * directions, axis=0))
        radii.append(np.clip(rng.uniform(1.5, 4.0) * np.linspace(1.0, 0.6, length), 1.0, None))
    mask = np.zeros(SHAPE, dtype=bool)
    _stamp_balls(mask, np.concatenate(centres), np.concatenate(radii))
    return mask


def perturbed_prediction(reference: NDArray[np.bool_], rng: np.random.Generator) -> NDArray[np.bool_]:
    """A plausible network output: gaps in vessels, false-positive blobs, a ragged boundary."""
    prediction = reference.copy()
    boundary = ndi.binary_dilation(reference) & ~ndi.binary_erosion(reference)
    prediction ^= boundary & (rng.random(SHAPE) < 0.15)
    foreground = np.argwhere(reference)
    gaps = foreground[rng.choice(len(foreground), 40, replace=False)].astype(np.float64)
    gap_mask = np.zeros(SHAPE, dtype=bool)
    _stamp_balls(gap_mask, gaps, np.full(len(gaps), 5.0))
    prediction &= ~gap_mask
    blobs = rng.uniform(0, 1, (200, 3)) * SHAPE
    _stamp_balls(prediction, blobs, rng.uniform(1.0, 3.0, len(blobs)))
    return prediction


def naive_metrics(prediction: NDArray[np.bool_], reference: NDArray[np.bool_]) -> dict[str, float]:
    """Baseline: textbook skimage/scipy calls on the whole uncropped volume, one after the other."""
    full = np.ones((3, 3, 3), dtype=bool)

    def betti(mask: NDArray[np.bool_]) -> tuple[int, int]:
        b0 = ndi.label(mask, structure=full)[1]
        b2 = ndi.label(~np.pad(mask, 1))[1] - 1
        return b0, b0 + b2 - int(euler_number(mask, connectivity=3))

    inter = int((prediction & reference).sum())
    n_pred, n_ref = int(prediction.sum()), int(reference.sum())
    skel_pred, skel_ref = skeletonize(prediction), skeletonize(reference)
    t_prec = (skel_pred & reference).sum() / skel_pred.sum()
    t_sens = (skel_ref & prediction).sum() / skel_ref.sum()
    (b0_pred, b1_pred), (b0_ref, b1_ref) = betti(prediction), betti(reference)
    labels, count = ndi.label(prediction, structure=full)
    sizes = np.bincount(labels.ravel())[1:]
    result = {
        "dice": 2 * inter / (n_pred + n_ref),
        "iou": inter / (n_pred + n_ref - inter),
        "precision": inter / n_pred,
        "recall": inter / n_ref,
        "cl_dice": 2 * t_prec * t_sens / (t_prec + t_sens),
        "skeleton_precision": t_prec,
        "skeleton_recall": t_sens,
        "betti0_prediction": b0_pred,
        "betti0_reference": b0_ref,
        "betti0_error": abs(b0_pred - b0_ref),
        "betti1_prediction": b1_pred,
        "betti1_reference": b1_ref,
        "betti1_error": abs(b1_pred - b1_ref),
        "n_components_prediction": count,
        "largest_component_fraction_prediction": sizes.max() / sizes.sum(),
    }
    for axis, index in (("x", 0), ("y", 1), ("z", 2)):
        mip_pred, mip_ref = prediction.max(axis=index), reference.max(axis=index)
        both = int((mip_pred & mip_ref).sum())
        result[f"mip_dice_{axis}"] = 2 * both / (int(mip_pred.sum()) + int(mip_ref.sum()))
    return {key: float(value) for key, value in result.items()}


@dataclass(frozen=True)
class Timing:
    """Wall-clock and CPU seconds (all threads) of the fastest of several runs, and every wall time."""

    wall_s: float
    cpu_s: float
    walls: tuple[float, ...]

    def __str__(self) -> str:
        runs = ", ".join(f"{wall:.2f}" for wall in self.walls)
        return f"{self.wall_s:6.2f} s wall, {self.cpu_s:6.2f} s CPU (best of {len(self.walls)}: {runs})"


def _run(function: Callable[[], Any]) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = function()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def timed(*functions: Callable[[], Any]) -> list[tuple[Any, Timing]]:
    """Run the functions in turn, REPEATS rounds, so that they share the same background load; return each
    one's last result and the timing of its fastest run."""
    rounds = [[_run(function) for function in functions] for _ in range(REPEATS)]
    out = []
    for runs in zip(*rounds, strict=True):
        _, best_wall, best_cpu = min(runs, key=lambda run: run[1])
        out.append((runs[-1][0], Timing(best_wall, best_cpu, tuple(run[1] for run in runs))))
    return out


def main() -> None:
    print_machine(
        None, {"numpy": np.__version__, "scipy": scipy.__version__, "scikit-image": skimage.__version__}
    )

    rng = np.random.default_rng(SEED)
    start = time.perf_counter()
    reference = vessel_reference(rng)
    prediction = perturbed_prediction(reference, rng)
    build_s = time.perf_counter() - start
    print(f"\nvolume {SHAPE}, seed {SEED}, built in {build_s:.1f} s")
    print(
        f"reference foreground: {reference.sum():,} voxels ({reference.mean():.2%}); "
        f"prediction foreground: {prediction.sum():,} voxels ({prediction.mean():.2%})"
    )

    for name, mask in (("reference", reference), ("prediction", prediction)):
        extents = [np.flatnonzero(mask.any(axis=tuple({0, 1, 2} - {axis}))) for axis in range(3)]
        box = np.prod([hits[-1] - hits[0] + 1 for hits in extents])
        print(f"{name} bounding box: {box / mask.size:.0%} of the volume (what cropping can save)")
    print(f"load average before timing (other processes share these cores): {os.getloadavg()[0]:.2f}")

    print(f"\ntiming all_metrics and the baseline in alternation, {REPEATS} rounds ...")
    (scores, ours), (baseline, theirs) = timed(
        lambda: metrics.all_metrics(prediction, reference), lambda: naive_metrics(prediction, reference)
    )
    verdict = "PASS" if max(ours.walls) <= BUDGET_S else "FAIL"
    print(f"all_metrics: {ours}")
    print(f"budget: slowest run {max(ours.walls):.2f} s vs {BUDGET_S:.0f} s -> {verdict}")

    print(f"baseline:    {theirs}")
    print("  (naive skimage/scipy on the full uncropped volume, one thread, all metrics, no subset)")
    # The baseline computes the voxel and topology metrics; the surface distances have no naive twin here.
    agree = all(np.isclose(scores[key], baseline[key], rtol=0, atol=1e-12) for key in baseline)
    print(
        f"baseline values agree with all_metrics on the {len(baseline)} metrics both compute: "
        f"{'yes' if agree else 'NO'}"
    )
    print(
        f"speed-up vs uncropped skimage baseline: {theirs.wall_s / ours.wall_s:.1f}x wall-clock, "
        f"{theirs.cpu_s / ours.cpu_s:.1f}x less CPU time (best run vs best run)"
    )
    print(
        "note: all_metrics also computes the surface distances (hd95, assd, nsd; timed alone below), "
        "which the baseline does not. skimage's thinning scans its whole input box on every pass, so while "
        "vessels span the volume (bounding box ~100 %) cropping cannot shorten it; the gain comes from the "
        "Euler characteristic, one labelling per mask, and thinning prediction and reference in parallel."
    )

    print("\ncomponents alone (public functions, each on its own):")
    components: dict[str, Callable[[], Any]] = {
        "dice+iou+precision+recall": lambda: [
            f(prediction, reference) for f in (metrics.dice, metrics.iou, metrics.precision, metrics.recall)
        ],
        "cl_dice (2 skeletons)": lambda: metrics.cl_dice(prediction, reference),
        "betti_numbers(prediction)": lambda: metrics.betti_numbers(prediction),
        "betti_numbers(reference)": lambda: metrics.betti_numbers(reference),
        "largest_component_fraction(prediction)": lambda: metrics.largest_component_fraction(prediction),
        "mip_dice x, y, z": lambda: [metrics.mip_dice(prediction, reference, a) for a in ("x", "y", "z")],
        "surface_scores (hd95, assd, nsd)": lambda: metrics.surface_scores(prediction, reference),
        "euler_characteristic(prediction)": lambda: metrics.euler_characteristic(prediction),
        "vs skimage euler_number(prediction, 3)": lambda: euler_number(prediction, connectivity=3),
    }
    for name, function in components.items():
        print(f"  {name:<40s} {timed(function)[0][1]}")

    print(f"load average after timing: {os.getloadavg()[0]:.2f}")

    print("\nscores:")
    for key in metrics.METRIC_KEYS:
        print(f"  {key:<40s} {scores[key]:.6g}")


if __name__ == "__main__":
    main()
