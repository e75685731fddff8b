"""benchmarks/bench_demo.py: the README's command names a revision of this repository, a bad revision
stops with one line, and the comparison of two demos' tables sees a changed number and nothing else."""

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from paths import ROOT

SCRIPT = ROOT / "benchmarks" / "bench_demo.py"


@pytest.fixture(scope="module")
def bench_demo():
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        yield importlib.import_module("bench_demo")
    finally:
        sys.path.remove(str(SCRIPT.parent))


def _git(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(ROOT), *arguments], capture_output=True, text=True, check=False)


def test_the_readme_command_names_a_revision_of_this_repository() -> None:
    commands = re.findall(r"`python (benchmarks/bench_demo\.py [^`]+)`", (ROOT / "README.md").read_text())
    assert commands, "the README quotes the demo benchmark"
    if _git("rev-parse", "--is-shallow-repository").stdout.strip() == "true":
        pytest.skip("a shallow clone lacks the baseline's history")
    for command in commands:
        revision = command.split("--baseline", 1)[1].split()[0]
        assert _git("rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}").returncode == 0, revision


def test_an_unknown_baseline_stops_with_one_line_before_any_demo() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--baseline", "no-such-revision"], capture_output=True, text=True
    )
    assert result.returncode != 0
    assert result.stderr.count("\n") == 1 and "no-such-revision" in result.stderr
    assert "baseline: " not in result.stdout


def _tables(folder: Path, rows: list[dict]) -> Path:
    folder.mkdir(parents=True)
    pd.DataFrame(rows).to_csv(folder / "metrics.csv", index=False)
    return folder


def _row(variant: str, subject: str, dice: float, **extra: float) -> dict:
    return {"variant": variant, "fold": 0, "subject": subject, "dice": dice, **extra}


def test_the_comparison_sees_a_changed_number_of_a_shared_variant_only(bench_demo, tmp_path: Path) -> None:
    old = [_row("unet", "a", 0.9), _row("unet", "b", 0.8)]
    baseline = bench_demo.DemoRun(1.0, 2, _tables(tmp_path / "old", old))
    # The candidate's rows in another order, a new variant and a new column: the same numbers.
    new = [
        _row("unet", "b", 0.8, nsd=1.0),
        _row("unet_new", "a", 0.1, nsd=1.0),
        _row("unet", "a", 0.9, nsd=1.0),
    ]
    same = bench_demo.DemoRun(1.0, 3, _tables(tmp_path / "same", new))
    assert bench_demo._same_numbers(baseline, same, ["metrics.csv"])
    changed = [_row("unet", "a", 0.9), _row("unet", "b", 0.8000001)]
    different = bench_demo.DemoRun(1.0, 2, _tables(tmp_path / "changed", changed))
    assert not bench_demo._same_numbers(baseline, different, ["metrics.csv"])


def test_a_table_one_demo_did_not_write_fails_the_comparison(bench_demo, tmp_path: Path) -> None:
    baseline = bench_demo.DemoRun(1.0, 2, _tables(tmp_path / "old", [_row("unet", "a", 0.9)]))
    (tmp_path / "empty").mkdir()
    assert not bench_demo._same_numbers(
        baseline, bench_demo.DemoRun(1.0, 2, tmp_path / "empty"), ["metrics.csv"]
    )


def test_the_file_comparison_sees_one_changed_byte_and_a_file_one_demo_lacks(
    bench_demo, tmp_path: Path
) -> None:
    runs = []
    for name in ("old", "new"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "summary.md").write_text("| unet | 91.04 |\n")
        (folder / "summary.csv").write_text("variant,dice\nunet,0.9104\n")
        runs.append(bench_demo.DemoRun(1.0, 1, folder))
    assert bench_demo._same_files(*runs)
    (tmp_path / "new" / "summary.md").write_text("| unet | 91.05 |\n")
    assert not bench_demo._same_files(*runs)
    (tmp_path / "new" / "summary.md").write_text("| unet | 91.04 |\n")
    (tmp_path / "new" / "summary.provenance.json").write_text('{"run": {"wall_seconds": 1.0}}\n')
    assert bench_demo._same_files(*runs), "a provenance record (host, time, memory) is no result"
    (tmp_path / "new" / "summary.tex").write_text("")
    assert not bench_demo._same_files(*runs)
    empty = [bench_demo.DemoRun(1.0, 1, tmp_path / "none"), bench_demo.DemoRun(1.0, 1, tmp_path / "none")]
    (tmp_path / "none").mkdir()
    assert not bench_demo._same_files(*empty), "two demos that wrote no table are not the same demo"
