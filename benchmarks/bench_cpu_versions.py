"""This checkout's CPU speed and results against an earlier revision's, on the same work in the same run.

Candidate: the library in this checkout's ``src/``. Baseline: the library at ``--baseline`` (a git
revision; default ``b03600f``, the last commit before the GPU work of issue 12), extracted with
``git archive``. A third entry, a second copy of the candidate, is an A/A control: its ratio to the
candidate is pure noise (other processes, memory placement, the cores' clock) and shows how small a
difference this machine can resolve.

Each entry runs in processes of its own (``PYTHONPATH`` pointing at its ``src/``; the process checks that
it imported that copy), one process per round, the order of the entries rotating every round so drift
and load spread over all of them. A process runs every workload once untimed (imports, allocator, thread
pool), then ``--repeats`` times timed, and fingerprints what each run computed:

- ``train``: :func:`spockmip.training.train` of a UNetMSS3D (width 4) with the multi-axis MIP loss on two
  synthetic phantoms, validated on a third, in batches of 4 patches of 32³. One epoch of 4 steps and one
  of 20 steps: their difference over the 16 extra steps is the cost of a step as the loop runs it
  (loading, normalisation, the network, loss bookkeeping), free of what a run pays once (start-up,
  validation, saving), which is printed apart. The network is narrow so that the loop around it weighs as
  much as it can. The fingerprint covers the history and the final weights of both runs.
- ``train_ds6``: the same with DS6's deformation branch (released field) and no MIP loss.
- ``predict``: :func:`spockmip.inference.predict_probabilities` of a seeded UNetMSS3D (width 4) over a
  128 x 128 x 96 phantom in 64³ windows at strides 32/32/16 (27 windows, the CPU's default batch); the
  fingerprint covers the probabilities.

Printed per workload: the median time of each entry (per step for training, per call for prediction),
candidate / baseline and the A/A ratio, and whether every entry computed the same bits. Exit status 0
when every candidate / baseline ratio stays within ``--tolerance`` (default 1.10) and every result is
identical.

Run: ``.venv/bin/python benchmarks/bench_cpu_versions.py`` (about 5 minutes on 2 cores; ``--help``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from machine import print_machine

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BASELINE = "b03600f"
WORKLOADS = ("train", "train_ds6", "predict")
TRAINING_PHANTOM_SHAPE = (64, 64, 48)
PREDICTION_PHANTOM_SHAPE = (128, 128, 96)
SEED = 7
BATCH = 4
SHORT_STEPS, LONG_STEPS = 4, 20


def _extract(revision: str, folder: Path) -> Path:
    """``src/`` of ``revision`` written under ``folder``; returns that ``src``."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", revision, "src"],
        capture_output=True,
        check=False,
    )
    if archive.returncode != 0:
        raise SystemExit(f"git archive {revision}: {archive.stderr.decode().strip()}")
    tar = folder / "src.tar"
    tar.write_bytes(archive.stdout)
    with tarfile.open(tar) as handle:
        handle.extractall(folder, filter="data")
    return folder / "src"


def _make_data(folder: Path) -> None:
    """The phantoms every entry reads, written once by this checkout's generator."""
    from spockmip.synthetic import PhantomConfig, generate_phantom, write_phantom

    for index, shape in enumerate([TRAINING_PHANTOM_SHAPE] * 3 + [PREDICTION_PHANTOM_SHAPE]):
        phantom = generate_phantom(SEED + index, PhantomConfig(shape=shape))
        write_phantom(phantom, folder / "images" / f"p{index}.nii.gz", folder / "labels" / f"p{index}.nii.gz")


def _digest(arrays) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()[:16]


def _worker(source: Path, data: Path, repeats: int, threads: int) -> dict[str, dict]:
    """Time and fingerprint every workload with the library in ``source``."""
    import numpy as np
    import torch

    import spockmip

    if not Path(spockmip.__file__).resolve().is_relative_to(source.resolve()):
        raise SystemExit(f"imported {spockmip.__file__}, not the copy in {source}")
    from spockmip.data import load_subject
    from spockmip.inference import InferenceConfig, predict_probabilities
    from spockmip.losses import LossConfig
    from spockmip.models import build_model
    from spockmip.training import TrainingConfig, TrainingPaths, train

    torch.set_num_threads(threads)

    def subject(index: int, mip_axes=("x", "y", "z")):
        return load_subject(
            data / "images" / f"p{index}.nii.gz", data / "labels" / f"p{index}.nii.gz", mip_axes=mip_axes
        )

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
        "train": TrainingConfig(**small, loss=LossConfig(mip_axis="multi")),
        "train_ds6": TrainingConfig(**small, deform=True, loss=LossConfig(mip_axis="none")),
    }
    volume = subject(3, mip_axes=()).image

    def run_training(name: str, steps: int, folder: Path) -> tuple[float, str]:
        """Seconds of a whole ``train()`` of ``steps`` steps, and the fingerprint of what it computed."""
        paths = TrainingPaths(folder / "best.pt", folder / "history.csv", folder / "state")
        config = replace(configs[name], patches_per_epoch=steps * BATCH)
        started = time.perf_counter()
        history = train(training, validation, config, paths, threads=threads, progress=False)
        seconds = time.perf_counter() - started
        weights = torch.load(paths.checkpoint, weights_only=True)["model"]
        losses = np.array([[row["train_loss"], row["validation_ftl"]] for row in history])
        return seconds, _digest([losses, *(weights[key].numpy() for key in sorted(weights))])

    def run_prediction() -> tuple[float, str]:
        torch.manual_seed(SEED)
        model = build_model("unetmss", 4)
        started = time.perf_counter()
        probabilities = predict_probabilities(model, volume, InferenceConfig(), "cpu")
        return time.perf_counter() - started, _digest([probabilities])

    results: dict[str, dict] = {name: {"times": [], "fixed": [], "digests": set()} for name in WORKLOADS}
    with tempfile.TemporaryDirectory() as scratch:
        for repeat in range(repeats + 1):  # the first round warms up (imports, allocator, thread pool)
            for name in WORKLOADS:
                result = results[name]
                if name == "predict":
                    seconds, digest = run_prediction()
                    result["digests"].add(digest)
                    if repeat:
                        result["times"].append(seconds)
                    continue
                folder = Path(scratch) / f"{name}{repeat}"
                short, short_digest = run_training(name, SHORT_STEPS, folder / "short")
                long, long_digest = run_training(name, LONG_STEPS, folder / "long")
                result["digests"] |= {short_digest, long_digest}
                if repeat:
                    per_step = (long - short) / (LONG_STEPS - SHORT_STEPS)
                    result["times"].append(per_step)
                    result["fixed"].append(short - SHORT_STEPS * per_step)
    return {name: {**result, "digests": sorted(result["digests"])} for name, result in results.items()}


def _run_entry(source: Path, data: Path, repeats: int, threads: int) -> dict[str, dict]:
    environment = {
        **os.environ,
        "PYTHONPATH": str(source),
        "OMP_NUM_THREADS": str(threads),
        "PYTHONWARNINGS": "ignore",
    }
    command = [sys.executable, __file__, "--worker", str(source), "--data", str(data)]
    command += ["--repeats", str(repeats), "--threads", str(threads)]
    result = subprocess.run(command, env=environment, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{source}: the worker failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--baseline", default=DEFAULT_BASELINE, help="git revision to compare against")
    parser.add_argument("--rounds", type=int, default=4, help="processes per entry (default: 4)")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per process (default: 2)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default: 2)")
    parser.add_argument("--tolerance", type=float, default=1.10, help="largest passing ratio (default 1.10)")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        print(json.dumps(_worker(args.worker, args.data, args.repeats, args.threads)))
        return 0

    import numpy
    import torch

    print_machine(args.threads, {"torch": torch.__version__, "numpy": numpy.__version__})
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "src"], capture_output=True, text=True
    )
    state = " with uncommitted changes in src/" if dirty.stdout.strip() else ""
    print(f"candidate: this checkout's src/ (HEAD {commit}{state}); baseline: {args.baseline}")
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        (folder / "baseline").mkdir()
        entries = {
            "candidate": ROOT / "src",
            "baseline": _extract(args.baseline, folder / "baseline"),
            "A/A copy": ROOT / "src",
        }
        _make_data(folder / "data")
        runs: dict[str, list[dict]] = {name: [] for name in entries}
        names = list(entries)
        for round_index in range(args.rounds):
            order = names[round_index % len(names) :] + names[: round_index % len(names)]
            for name in order:
                runs[name].append(_run_entry(entries[name], folder / "data", args.repeats, args.threads))
            print(f"round {round_index + 1}/{args.rounds} done (order: {', '.join(order)})", flush=True)
    passed = True
    print(f"\n{'workload':10s} {'candidate':>10s} {'baseline':>10s} {'cand/base':>10s} {'A/A':>6s}  results")
    for workload in WORKLOADS:
        times = {name: [t for run in runs[name] for t in run[workload]["times"]] for name in entries}
        medians = {name: statistics.median(values) for name, values in times.items()}
        digests = [run[workload]["digests"] for name in entries for run in runs[name]]
        identical = all(digest == digests[0] for digest in digests)
        ratio = medians["candidate"] / medians["baseline"]
        control = medians["A/A copy"] / medians["candidate"]
        passed &= identical and ratio <= args.tolerance
        unit = "per step" if workload != "predict" else "per call"
        print(
            f"{workload:10s} {medians['candidate']:9.3f}s {medians['baseline']:9.3f}s {ratio:10.3f} "
            f"{control:6.3f}  {'identical' if identical else 'DIFFERENT'} ({unit})"
        )
    for workload in WORKLOADS[:2]:
        fixed = {
            name: statistics.median(t for run in runs[name] for t in run[workload]["fixed"])
            for name in entries
        }
        print(
            f"{workload:10s} per run (start-up, validation, saving): candidate {fixed['candidate']:.2f} s, "
            f"baseline {fixed['baseline']:.2f} s, A/A copy {fixed['A/A copy']:.2f} s (not judged)"
        )
    print(f"\n{'PASS' if passed else 'FAIL'}: candidate / baseline <= {args.tolerance} and identical results")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
