"""Wall time of the whole demo DAG (``snakemake --cores N``, the README's main command) against a baseline
revision's demo, each in a fresh copy, one after the other on this machine; and whether the variants both
demos train got the same per-subject numbers.

Candidate: the committed HEAD of this checkout (uncommitted changes are not measured; the script says so).
Baseline: ``--baseline REV``, any git revision, run with its own workflow, config and library. Each run
gets a fresh copy, extracted with ``git archive`` into a temporary folder and run with its own ``src/``
first on ``PYTHONPATH``, by this interpreter's Snakemake; install time is not counted. The two alternate
over ``--rounds`` rounds in the order baseline, candidate, candidate, baseline, ... so that a drift of the
machine's speed during the measurement (a shared VM's host varies by several per cent within minutes)
weighs on both alike; each round's ratio is printed and the verdict is on their median (the demo may grow
by at most ``--limit``). The variants both demos train must have identical per-subject tables in the
columns both have (``--compare``; by default the test subjects' ``metrics.csv`` and
``ensemble_metrics.csv``. The cross-validation subjects' ``cv_metrics.csv`` can be added: it also depends
on ``split.cv_checkpoint``, whose default scores another checkpoint than revisions before it existed did).
Every table under ``results/demo/tables/`` (CSV, Markdown, LaTeX, HTML) is also compared byte for byte by
its SHA-256 (not the tables' provenance records, which hold the host, time and memory of each run);
``--identical-files`` makes a difference fail the verdict, for a change meant to alter no output at all
(a refactor), where without it new variants or columns would differ legitimately.

    python benchmarks/bench_demo.py --baseline f2e7bfc [--rounds 2] [--cores 2] [--limit 1.20]
        [--identical-files] [--keep-results DIR]  # ~20 min

Nothing else should run on the machine meanwhile: a demo keeps every core busy, and another process's load
lands directly in the wall time. The load average before each run is printed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from machine import print_machine
from revisions import commit, extract, uncommitted_changes

PER_SUBJECT_TABLES = ("metrics.csv", "cv_metrics.csv", "ensemble_metrics.csv")
ROW_KEYS = ("variant", "fold", "seed", "subject")
# How a provenance record's name ends (spockmip.runtime.records.RECORD_NAME): records differ between any
# two runs (host, time, memory), so the byte comparison leaves them out.
RECORD_SUFFIX = "provenance.json"


@dataclass(frozen=True)
class DemoRun:
    """One measured demo: its wall time, jobs and the folder its tables are in."""

    seconds: float
    jobs: int
    tables: Path


def _run_demo(name: str, revision: str, sha: str, folder: Path, cores: int) -> DemoRun:
    copy = extract(sha, folder)
    environment = {**os.environ, "PYTHONPATH": str(copy / "src")}
    print(f"{name}: {revision} (commit {sha}); load average before: {os.getloadavg()[0]:.2f}", flush=True)
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", str(cores)],
        cwd=copy,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{name}: the demo failed (exit {result.returncode}):\n{result.stderr[-3000:]}")
    done = re.findall(r"(\d+) of (\d+) steps \(100%\) done", result.stderr)
    jobs = int(done[-1][1]) if done else 0
    print(
        f"{name}: {jobs} jobs in {seconds:.1f} s ({int(seconds // 60)} min {seconds % 60:04.1f} s)",
        flush=True,
    )
    return DemoRun(seconds, jobs, copy / "results" / "demo" / "tables")


def _same_numbers(baseline: DemoRun, candidate: DemoRun, tables: list[str]) -> bool:
    """Whether each of ``tables`` agrees on the baseline's variants and the columns both have."""
    identical = True
    for name in tables:
        paths = [run.tables / name for run in (baseline, candidate)]
        if not all(path.is_file() for path in paths):
            print(f"  {name}: not written by both demos (leave it out of --compare to skip it)")
            identical = False
            continue
        old, new = (pd.read_csv(path) for path in paths)
        new = new[new["variant"].isin(set(old["variant"]))]
        columns = [column for column in old.columns if column in new.columns]
        keys = [key for key in ROW_KEYS if key in columns]
        old, new = (table[columns].sort_values(keys).reset_index(drop=True) for table in (old, new))
        same = old.equals(new)
        identical &= same
        variants = old["variant"].nunique()
        verdict = "identical" if same else "DIFFERENT"
        print(f"  {name}: {verdict} ({variants} variants, {len(old)} rows, {len(columns)} columns in common)")
    return identical


def _file_digests(folder: Path) -> dict[str, str]:
    """The SHA-256 of every file under ``folder`` but the provenance records, by its path relative to it."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not path.name.endswith(RECORD_SUFFIX)
    }


def _same_files(baseline: DemoRun, candidate: DemoRun) -> bool:
    """Whether both demos wrote the same files under their tables folder, byte for byte."""
    old, new = _file_digests(baseline.tables), _file_digests(candidate.tables)
    for name in sorted(old.keys() | new.keys()):
        if name not in old or name not in new:
            print(f"  {name}: written by the {'candidate' if name in new else 'baseline'} only")
        else:
            print(f"  {name}: {'same bytes' if old[name] == new[name] else 'DIFFERENT bytes'}")
    return bool(old) and old == new


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument(
        "--baseline", required=True, metavar="REV", help="git revision whose demo is the baseline"
    )
    parser.add_argument("--rounds", type=int, default=2, help="runs of each demo (default: 2)")
    parser.add_argument("--cores", type=int, default=2, help="snakemake --cores (default: 2, the README's)")
    parser.add_argument(
        "--limit", type=float, default=1.20, help="largest passing median time ratio (default: 1.20)"
    )
    parser.add_argument(
        "--compare",
        nargs="+",
        default=["metrics.csv", "ensemble_metrics.csv"],
        choices=PER_SUBJECT_TABLES,
        help="per-subject tables that must be identical (default: metrics.csv ensemble_metrics.csv)",
    )
    parser.add_argument(
        "--identical-files",
        action="store_true",
        help="fail unless every file under results/demo/tables/ has the same SHA-256 in both demos",
    )
    parser.add_argument(
        "--keep-results",
        type=Path,
        metavar="DIR",
        help="copy the candidate's results/demo/ (first round) to DIR, e.g. to quote its tables",
    )
    args = parser.parse_args()
    revisions = {"baseline": args.baseline, "candidate": "HEAD"}
    commits = {name: commit(revision) for name, revision in revisions.items()}
    print_machine(None, {"snakemake": _snakemake_version()})
    if uncommitted_changes():
        print("note: this checkout has uncommitted changes; the candidate is HEAD as committed")
    runs: dict[str, list[DemoRun]] = {"baseline": [], "candidate": []}
    with tempfile.TemporaryDirectory(prefix="bench-demo-") as folder:
        for round_index in range(args.rounds):
            order = ["baseline", "candidate"] if round_index % 2 == 0 else ["candidate", "baseline"]
            for name in order:
                copy = Path(folder) / f"{name}{round_index}"
                runs[name].append(_run_demo(name, revisions[name], commits[name], copy, args.cores))
        ratios = [
            new.seconds / old.seconds for old, new in zip(runs["baseline"], runs["candidate"], strict=True)
        ]
        for index, ratio in enumerate(ratios):
            print(f"round {index + 1}: candidate / baseline wall time {ratio:.3f}")
        median = statistics.median(ratios)
        jobs = f"{runs['candidate'][0].jobs} vs {runs['baseline'][0].jobs} jobs"
        verdict = "PASS" if median <= args.limit else "FAIL"
        print(
            f"median candidate / baseline wall time: {median:.3f} ({jobs}); limit {args.limit:.2f}: {verdict}"
        )
        print("the baseline's variants, per-subject numbers of both demos (first round):")
        same = _same_numbers(runs["baseline"][0], runs["candidate"][0], args.compare)
        print("every file under results/demo/tables/ of both demos (first round), by SHA-256:")
        same_files = _same_files(runs["baseline"][0], runs["candidate"][0])
        same &= same_files or not args.identical_files
        if args.keep_results is not None:
            shutil.copytree(runs["candidate"][0].tables.parent, args.keep_results, dirs_exist_ok=True)
            print(f"the candidate's results (first round) copied to {args.keep_results}")
        largest = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1e6
        print(f"largest resident process of any demo: {largest:.2f} GB")
    return 0 if median <= args.limit and same else 1


def _snakemake_version() -> str:
    from snakemake import __version__

    return __version__


if __name__ == "__main__":
    sys.exit(main())
