"""This checkout's CPU speed and results against an earlier revision's, on the same work in the same process.

Candidate: the library in this checkout's ``src/``. Baseline: the library at ``--baseline REV`` (any git
revision, required; docs/performance.md reports runs against ``b03600f``), extracted with ``git archive``.
A third entry, the candidate's files imported a second time, is an A/A control: its ratio to the
candidate is pure noise and shows how small a difference this machine can resolve.

All three copies live in one process, each with its own module objects (:class:`Library` swaps them in
and out of ``sys.modules``, so even an import inside a function finds its own copy), and take turns:
every round runs each copy's workloads, the order of the copies rotating from round to round. Timing
copies in separate processes on a shared machine does not resolve differences below about 20 % (an A/A
ratio of 1.19 over six rounds); taking turns in one process shares memory placement, clock and load.
The first round warms up (imports, allocator, thread pool) and is not timed.

- ``train``: :func:`spockmip.training.trainer.train` of a UNetMSS3D (width 4) with the multi-axis MIP loss on
two
  synthetic phantoms, validated on a third, in batches of 4 patches of 32³. One epoch of 4 steps and one
  of 20 steps: their difference over the 16 extra steps is the cost of a step as the loop runs it
  (loading, normalisation, the network, loss bookkeeping), free of what a run pays once (start-up,
  validation, saving), which is printed apart. The network is narrow so that the loop around it weighs as
  much as it can.
- ``train_ds6``: the same with DS6's deformation branch (released field) and no MIP loss.
- ``predict``: :func:`spockmip.inference.windows.predict_probabilities` of a seeded UNetMSS3D (width 4) over a
  128 x 128 x 96 phantom in 64³ windows at strides 32/32/16 (27 windows, the CPU's default batch).

Every run is fingerprinted (history and final weights of both trainings; the probabilities). Printed per
workload: each copy's median time (per step for training, per call for prediction); candidate / baseline
and A/A copy / candidate as the median of per-round ratios (the two copies of a pair ran in the same
round); the quartiles of the A/A ratios (the noise); and whether all copies computed the same bits. A
ratio above ``--tolerance`` (default 1.05) counts as slower only when it is also above the A/A ratios'
upper quartile; below that it is reported as within noise. Exit status 0 when every result is identical
and no workload is slower.

Run: ``.venv/bin/python benchmarks/bench_cpu_versions.py --baseline b03600f`` (about 12 minutes on 2 cores
at the default 6 rounds; ``--help``).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
from machine import print_machine
from revisions import ROOT, commit, extract, uncommitted_changes

PACKAGE = "spockmip"
WORKLOADS = ("train", "train_ds6", "predict")
TRAINING_PHANTOM_SHAPE = (64, 64, 48)
PREDICTION_PHANTOM_SHAPE = (128, 128, 96)
SEED = 7
BATCH = 4
SHORT_STEPS, LONG_STEPS = 4, 20


def _ours(name: str) -> bool:
    return name == PACKAGE or name.startswith(f"{PACKAGE}.")


class Library:
    """One copy of the package, imported from ``source`` and kept apart from every other copy."""

    def __init__(self, source: Path) -> None:
        self.source = source
        self.modules: dict[str, ModuleType] = {}
        with self.active():
            package = importlib.import_module(PACKAGE)
            if not Path(package.__file__).resolve().is_relative_to(source.resolve()):
                raise SystemExit(f"imported {package.__file__}, not the copy in {source}")

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """This copy's modules in ``sys.modules`` (and its folder first on ``sys.path``) for the block."""
        others = {name: module for name, module in sys.modules.items() if _ours(name)}
        for name in others:
            del sys.modules[name]
        sys.modules.update(self.modules)
        sys.path.insert(0, str(self.source))
        try:
            yield
        finally:
            sys.path.remove(str(self.source))
            self.modules = {name: module for name, module in sys.modules.items() if _ours(name)}
            for name in self.modules:
                del sys.modules[name]
            sys.modules.update(others)

    def module(self, *names: str) -> ModuleType:
        """The first of the modules ``names`` that this copy has: code that moved between modules is found
        in an older copy and in this checkout alike."""
        for name in names:
            try:
                return importlib.import_module(f"{PACKAGE}.{name}")
            except ModuleNotFoundError as error:
                wanted = f"{PACKAGE}.{name}"
                if error.name is None or not f"{wanted}.".startswith(f"{error.name}."):
                    raise
        raise SystemExit(f"{self.source}: none of the modules {', '.join(names)}")


def _make_data(library: Library, folder: Path) -> None:
    """The phantoms every copy reads, written once by the candidate's generator."""
    synthetic = library.module("datasets.synthetic", "synthetic")
    for index, shape in enumerate([TRAINING_PHANTOM_SHAPE] * 3 + [PREDICTION_PHANTOM_SHAPE]):
        phantom = synthetic.generate_phantom(SEED + index, synthetic.PhantomConfig(shape=shape))
        images, labels = folder / "images" / f"p{index}.nii.gz", folder / "labels" / f"p{index}.nii.gz"
        synthetic.write_phantom(phantom, images, labels)


def _digest(arrays) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(memoryview(np.ascontiguousarray(array)).cast("B"))
    return digest.hexdigest()[:16]


def _workloads(
    library: Library, data: Path, threads: int, scratch: Path, window: tuple[tuple, tuple]
) -> dict[str, tuple]:
    """One turn of ``library``: per workload (seconds, per-run seconds or None, fingerprint). ``window`` is
    the sliding window (patch, strides) every copy predicts with."""
    load_subject = library.module("data.subjects", "data").load_subject
    training_module, losses = (
        library.module("training.trainer", "training"),
        library.module("objective.losses", "losses"),
    )
    windows, models = (
        library.module("inference.windows", "windows", "inference"),
        library.module("networks.unet", "models"),
    )

    def subject(index: int, mip_axes=("x", "y", "z")):
        image, label = data / "images" / f"p{index}.nii.gz", data / "labels" / f"p{index}.nii.gz"
        return load_subject(image, label, mip_axes=mip_axes)

    training, validation = [subject(0), subject(1)], [subject(2)]
    small = dict(
        model="unetmss",
        init_features=4,
        patch_size=(32, 32, 32),
        strides=(16, 16, 16),
        batch_size=BATCH,
        epochs=1,
        seed=SEED,
    )
    configs = {
        "train": training_module.TrainingConfig(**small, loss=losses.LossConfig(mip_axis="multi")),
        "train_ds6": training_module.TrainingConfig(
            **small, deform=True, loss=losses.LossConfig(mip_axis="none")
        ),
    }

    def run_training(name: str, steps: int) -> tuple[float, str]:
        folder = Path(tempfile.mkdtemp(dir=scratch))
        paths = training_module.TrainingPaths(folder / "best.pt", folder / "history.csv", folder / "state")
        config = replace(configs[name], patches_per_epoch=steps * BATCH)
        started = time.perf_counter()
        history = training_module.train(training, validation, config, paths, threads=threads, progress=False)
        seconds = time.perf_counter() - started
        weights = torch.load(paths.checkpoint, weights_only=True)["model"]
        losses_seen = np.array([[row["train_loss"], row["validation_ftl"]] for row in history])
        return seconds, _digest([losses_seen, *(weights[key].numpy() for key in sorted(weights))])

    results: dict[str, tuple] = {}
    for name in configs:
        short, short_digest = run_training(name, SHORT_STEPS)
        long, long_digest = run_training(name, LONG_STEPS)
        per_step = (long - short) / (LONG_STEPS - SHORT_STEPS)
        results[name] = (per_step, short - SHORT_STEPS * per_step, f"{short_digest} {long_digest}")
    volume = subject(3, mip_axes=()).image
    torch.manual_seed(SEED)
    model = models.build_model("unetmss", 4)
    started = time.perf_counter()
    probabilities = windows.predict_probabilities(model, volume, windows.InferenceConfig(*window), "cpu")
    results["predict"] = (time.perf_counter() - started, None, _digest([probabilities]))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument(
        "--baseline", required=True, metavar="REV", help="git revision to compare against (e.g. b03600f)"
    )
    parser.add_argument("--rounds", type=int, default=6, help="timed turns of each copy (default: 6)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default: 2)")
    parser.add_argument("--tolerance", type=float, default=1.05, help="largest passing ratio (default 1.05)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print_machine(args.threads, {"torch": torch.__version__, "numpy": np.__version__})
    head, baseline = (commit(name) for name in ("HEAD", args.baseline))
    dirty = uncommitted_changes("src")
    print(
        f"candidate: this checkout's src/ (HEAD {head}{' with uncommitted changes' if dirty else ''}); "
        f"baseline: {args.baseline} (commit {baseline})"
    )
    turns: dict[str, list[dict[str, tuple]]] = {"candidate": [], "baseline": [], "A/A copy": []}
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        (scratch / "baseline").mkdir()
        copies = {
            "candidate": Library(ROOT / "src"),
            "baseline": Library(extract(baseline, scratch / "baseline", "src") / "src"),
            "A/A copy": Library(ROOT / "src"),
        }
        with copies["candidate"].active():
            _make_data(copies["candidate"], scratch / "data")
            catalogue = copies["candidate"].module("settings.catalogue")
            window = (catalogue.RELEASED_PATCH_SIZE, catalogue.RELEASED_STRIDES)
        names = list(copies)
        for round_index in range(args.rounds + 1):
            order = names[round_index % len(names) :] + names[: round_index % len(names)]
            for name in order:
                with copies[name].active():
                    results = _workloads(copies[name], scratch / "data", args.threads, scratch, window)
                if round_index:  # round 0 warms up
                    turns[name].append(results)
            label = "warm-up" if round_index == 0 else f"round {round_index}/{args.rounds}"
            print(f"{label} done (order: {', '.join(order)})", flush=True)
    return _report(turns, args.tolerance, args.baseline)


def _paired(numerator: list[dict[str, tuple]], denominator: list[dict[str, tuple]], workload: str) -> list:
    """Per-round ratios of two copies' times: each pair ran in the same round, under the same load."""
    return [a[workload][0] / b[workload][0] for a, b in zip(numerator, denominator, strict=True)]


def _report(turns: dict[str, list[dict[str, tuple]]], tolerance: float, baseline_name: str) -> int:
    passed = True
    candidate, baseline, control = turns["candidate"], turns["baseline"], turns["A/A copy"]
    print(f"\nbaseline: {baseline_name}")
    print(
        f"{'workload':10s} {'candidate':>10s} {'baseline':>10s} {'cand/base':>10s} {'A/A':>6s} "
        f"{'A/A quartiles':>14s}  results"
    )
    for workload in WORKLOADS:
        medians = {name: statistics.median(t[workload][0] for t in runs) for name, runs in turns.items()}
        digests = {turn[workload][2] for runs in turns.values() for turn in runs}
        identical = len(digests) == 1
        ratio = statistics.median(_paired(candidate, baseline, workload))
        noise = _paired(control, candidate, workload)
        low, _, high = statistics.quantiles(noise, n=4) if len(noise) > 1 else (noise[0],) * 3
        slower = ratio > tolerance and ratio > high
        passed &= identical and not slower
        unit = "per call" if workload == "predict" else "per step"
        speed = "SLOWER" if slower else "within noise" if ratio > tolerance else "not slower"
        print(
            f"{workload:10s} {medians['candidate']:9.3f}s {medians['baseline']:9.3f}s {ratio:10.3f} "
            f"{statistics.median(noise):6.3f} {low:6.3f}-{high:<7.3f}  "
            f"{'identical' if identical else 'DIFFERENT'}, {speed} ({unit})"
        )
    for workload in ("train", "train_ds6"):
        fixed = {name: statistics.median(turn[workload][1] for turn in runs) for name, runs in turns.items()}
        print(
            f"{workload:10s} per run (start-up, validation, saving; not judged): "
            + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in fixed.items())
        )
    print(
        f"\n{'PASS' if passed else 'FAIL'}: identical results, and no candidate / baseline ({baseline_name}) "
        f"ratio both above {tolerance} and above the A/A ratios' upper quartile"
    )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
