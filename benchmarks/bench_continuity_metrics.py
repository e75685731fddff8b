"""The cost of the continuity measures: the default metrics of one full-size pair, as the workflow scores
it now, against the default metrics of a baseline revision on the same pair, in the same run.

The pair is :mod:`bench_metrics`' 480 x 640 x 163 vessel volume (a TOF-MRA slab, ~1 % foreground of
tapering curved tubes) against its perturbed copy (broken segments, spurious blobs, a ragged boundary).
Candidate: this checkout's scoring with the workflow's default ``evaluation`` settings
(:class:`spockmip.evaluation.scoring.ScoringSettings`): every metric of ``all_metrics`` (continuity by
radius included) and the Betti matching error, patch-wise at this size, when its implementation is
installed; ``candidate_without_bm`` is the same without the Betti matching error, to show its share.
Baseline: ``all_metrics`` of ``--baseline REV`` (extracted with ``git archive``), the default
metrics before the continuity measures. Each measurement is one call in a fresh Python process (the
library of its revision first on ``PYTHONPATH``), the two alternating over ``--rounds`` rounds; the medians
and their ratio are printed, with the peak memory of each process.

    python benchmarks/bench_continuity_metrics.py --baseline 93c6282 [--rounds 2]   # ~5 min on 2 cores
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
from bench_metrics import SEED, SHAPE, perturbed_prediction, vessel_reference
from machine import print_machine
from revisions import ROOT, commit, extract

# One call timed inside the child; prints seconds, then the scores' keys.
CHILD = textwrap.dedent(
    """
    import resource, sys, time
    import numpy as np
    folder = sys.argv[1]
    prediction, reference = np.load(folder + "/prediction.npy"), np.load(folder + "/reference.npy")
    spacing = (0.3, 0.3, 0.6)
    if sys.argv[2].startswith("candidate"):
        from spockmip.evaluation.metrics import all_metrics
        from spockmip.evaluation.scoring import ScoringSettings
        from spockmip.settings.lookup import default
        settings = ScoringSettings.of({name: default("evaluation", name) for name in (
            "nsd_tolerance_mm", "radius_edges_mm", "betti_matching", "betti_matching_whole_voxels",
            "betti_matching_patch", "betti_matching_patches", "betti_matching_seed")})
        def score():
            scores = all_metrics(prediction, reference, spacing, None, settings.radius_edges_mm)
            if settings.scores_betti_matching and sys.argv[2] == "candidate":
                from spockmip.evaluation.betti_matching import betti_matching_errors
                scores |= betti_matching_errors(prediction, reference, settings.betti_matching)
            return scores
    else:
        from spockmip.evaluation.metrics import all_metrics
        def score():
            return all_metrics(prediction, reference, spacing)
    start = time.perf_counter()
    scores = score()
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{seconds:.3f} {peak:.0f} {len(scores)}")
    """
)


def measure(source: Path, role: str, volumes: Path) -> tuple[float, float, int]:
    """(seconds, peak MiB, number of scores) of one call in a fresh process on ``source``'s library."""
    environment = {**os.environ, "PYTHONPATH": str(source)}
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(volumes), role], capture_output=True, text=True, env=environment
    )
    if result.returncode != 0:
        raise SystemExit(f"{role} failed:\n{result.stderr[-2000:]}")
    seconds, peak, count = result.stdout.split()
    return float(seconds), float(peak), int(count)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--baseline", required=True, help="git revision whose default metrics are the baseline"
    )
    parser.add_argument("--rounds", type=int, default=2, help="calls of each (default: 2)")
    args = parser.parse_args()
    baseline = commit(args.baseline)
    print_machine(None, {"numpy": np.__version__})
    with tempfile.TemporaryDirectory(prefix="bench-continuity-") as folder:
        work = Path(folder)
        rng = np.random.default_rng(SEED)
        reference = vessel_reference(rng)
        np.save(work / "reference.npy", reference)
        np.save(work / "prediction.npy", perturbed_prediction(reference, rng))
        old = extract(baseline, work / "baseline", "src") / "src"
        sources = {"baseline": old, "candidate": ROOT / "src", "candidate_without_bm": ROOT / "src"}
        print(f"volume {SHAPE}, seed {SEED}; baseline {baseline}, candidate {ROOT} (working tree)")
        print(f"load average before timing: {os.getloadavg()[0]:.2f}")
        runs: dict[str, list[tuple[float, float, int]]] = {role: [] for role in sources}
        for round_index in range(args.rounds):
            order = list(sources) if round_index % 2 == 0 else list(reversed(sources))
            for role in order:
                runs[role].append(measure(sources[role], role, work))
                seconds, peak, count = runs[role][-1]
                timing = f"{seconds:7.2f} s, peak {peak:6.0f} MiB, {count} scores"
                print(f"  round {round_index + 1} {role:<20s} {timing}")
    medians = {role: statistics.median(s for s, _, _ in values) for role, values in runs.items()}
    for role, median in medians.items():
        print(f"median {role:<20s} {median:6.2f} s, {median / medians['baseline']:.2f}x the baseline")


if __name__ == "__main__":
    main()
