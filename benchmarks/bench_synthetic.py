"""Time generating and writing one 96x96x64 phantom pair on one core; the budget is 2 s.

Kept out of the test suite because wall-clock limits make tests flaky on shared machines. Run with
``python benchmarks/bench_synthetic.py``; the exit status is 0 on PASS and 1 on FAIL.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

BUDGET_S = 2.0
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def _limit_to_one_core() -> None:
    """Pin the process to one CPU and cap thread pools, before numpy is imported, to measure one core."""
    for variable in _THREAD_VARIABLES:
        os.environ[variable] = "1"
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs after one warm-up (default: 5)")
    args = parser.parse_args()
    _limit_to_one_core()

    from spockmip.datasets.synthetic import PhantomConfig, generate_phantom, write_phantom

    config = PhantomConfig(shape=(96, 96, 64))
    times = []
    with tempfile.TemporaryDirectory() as scratch:
        image_path, label_path = Path(scratch) / "image.nii.gz", Path(scratch) / "label.nii.gz"
        for run in range(args.repeats + 1):
            start = time.perf_counter()
            write_phantom(generate_phantom(run, config), image_path, label_path)
            elapsed = time.perf_counter() - start
            if run > 0:  # the first run pays for imports and caches
                times.append(elapsed)
    median, worst = statistics.median(times), max(times)
    verdict = "PASS" if median <= BUDGET_S else "FAIL"
    print(
        f"generate+write {config.shape} pair on one core: median {median:.3f} s, worst {worst:.3f} s "
        f"over {len(times)} runs (budget {BUDGET_S:.1f} s): {verdict}"
    )
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
