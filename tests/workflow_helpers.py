"""Running the real workflow from tests: a private copy of the project, snakemake as a subprocess."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from paths import ROOT

SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
PROJECT_FILES = ("Snakefile", "workflow", "config", "profiles", "envs")


def copy_project(destination: Path, config: dict | None = None, name: str = "test.yaml") -> Path:
    """The workflow files in ``destination``, plus ``config/<name>`` when a config is given."""
    destination.mkdir(parents=True, exist_ok=True)
    for entry in PROJECT_FILES:
        source = ROOT / entry
        if source.is_dir():
            shutil.copytree(source, destination / entry)
        else:
            shutil.copy(source, destination / entry)
    if config is not None:
        (destination / "config" / name).write_text(yaml.safe_dump(config, sort_keys=False))
    return destination


def snakemake(
    workdir: Path, *args: str, check: bool = True, env: dict | None = None, timeout: float = 1200
) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [SNAKEMAKE, *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or os.environ.copy(),
    )
    if check:
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return result


def _job_blocks(output: str) -> list[tuple[str, str]]:
    """(rule, the lines that describe the job) of every job a dry run lists or a run starts; the jobs of a
    group job come indented under the group's header."""
    blocks = []
    for block in re.split(r"\n(?=[ \t]*(?:local)?rule \w+:)", output):
        header = re.match(r"(?:local)?rule (\w+):", block.strip())
        if header:
            blocks.append((header.group(1), block))
    return blocks


def dry_run_jobs(output: str) -> list[tuple[str, dict[str, str]]]:
    """(rule, wildcards) of every job a dry run lists (or a run starts)."""
    jobs = []
    for rule, block in _job_blocks(output):
        found = re.search(r"wildcards: (.+)", block)
        wildcards = dict(item.split("=", 1) for item in found.group(1).split(", ")) if found else {}
        jobs.append((rule, wildcards))
    return jobs


def dry_run_inputs(output: str) -> list[tuple[str, dict[str, str], list[str]]]:
    """(rule, wildcards, input files) of every job a dry run lists."""
    jobs = []
    for (rule, wildcards), (_, block) in zip(dry_run_jobs(output), _job_blocks(output), strict=True):
        found = re.search(r"^\s*input: (.+)$", block, re.MULTILINE)
        jobs.append((rule, wildcards, found.group(1).split(", ") if found else []))
    return jobs


def rules_with_changed_params(output: str) -> list[str]:
    """The rule of every job that a dry run schedules because its params changed."""
    return [
        rule for rule, block in _job_blocks(output) if "Params have changed since last execution" in block
    ]


# A small workflow trained with two seeds (replicates): two variants, two folds, 48x48x32 phantoms.
SEEDS_CONFIG = {
    "dataset": {"name": "demo", "source": "synthetic",
                "synthetic": {"n_subjects": 4, "seed": 3, "shape": [48, 48, 32], "spacing_mm": 0.3}},
    "split": {"folds": 2, "seed": 1, "test_subjects": 1},
    "training": {"init_features": 2, "patch_size": [32, 32, 32], "strides": [16, 16, 16], "batch_size": 4,
                 "epochs": 1, "patches_per_epoch": 8, "learning_rate": 1.0e-3, "seeds": [11, 12]},
    "variants": {"unet": {"model": "unet"},
                 "unet_mip": {"model": "unet", "mip_axis": "z", "baseline": "unet"}},
    "inference": {"patch_size": [32, 32, 32], "strides": [16, 16, 16]},
    "resources": {"train": {"threads": 1}, "predict": {"threads": 1}},
}  # fmt: skip
