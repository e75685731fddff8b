"""The workflow on a real (single-node, localhost) SLURM cluster through the shipped profile.

Skipped where the SLURM binaries are missing; CI sets SPOCKMIP_REQUIRE_SLURM=1, which turns that skip into
a failure so the test cannot silently stop running there.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml
from paths import ROOT
from slurm_cluster import LocalSlurmCluster, missing_binaries
from workflow_helpers import copy_project, dry_run_jobs, snakemake

pytestmark = pytest.mark.slurm

SLURM_CONFIG = {
    "dataset": {"name": "slurmtest", "source": "synthetic",
                "synthetic": {"n_subjects": 3, "seed": 1, "shape": [48, 48, 32]}},
    "split": {"folds": 2, "seed": 1, "test_subjects": 1},
    "training": {"init_features": 2, "patch_size": [32, 32, 32], "strides": [16, 16, 16], "batch_size": 2,
                 "epochs": 1, "patches_per_epoch": 4},
    "variants": {"unet": {"model": "unet"}},
    "inference": {"patch_size": [32, 32, 32], "strides": [16, 16, 16]},
    "resources": {"train": {"threads": 1, "mem_mb": 1000, "runtime": 10},
                  "predict": {"threads": 1, "mem_mb": 1000, "runtime": 10}},
}  # fmt: skip
# The rules the profile groups into the "scoring" group jobs.
SCORING_RULES = ("evaluate", "evaluate_ensemble", "postprocess")


def _unavailable(reason: str) -> None:
    if os.environ.get("SPOCKMIP_REQUIRE_SLURM") == "1":
        pytest.fail(f"SLURM test required (SPOCKMIP_REQUIRE_SLURM=1) but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory):
    missing = missing_binaries()
    if missing:
        _unavailable(f"SLURM binaries are not installed: {', '.join(missing)} (apt-get install slurmctld "
                     "slurmd slurm-client munge)")  # fmt: skip
    if os.geteuid() != 0:
        _unavailable("starting slurmctld/slurmd/munged needs root")
    cluster = LocalSlurmCluster(tmp_path_factory.mktemp("slurm"))
    cluster.start()
    yield cluster
    cluster.stop()


def install_profile_as_a_user_would(config_home: Path, partition: str) -> Path:
    """README: copy profiles/slurm to ~/.config/snakemake/slurm, set the partition in it and, on a cluster
    without GPUs, ask for none."""
    target = config_home / "snakemake" / "slurm"
    shutil.copytree(ROOT / "profiles" / "slurm", target)
    profile = target / "config.yaml"
    shipped = profile.read_text()
    edited = shipped.replace('  # slurm_partition: "cpu"', f'  slurm_partition: "{partition}"')
    assert edited != shipped, "the shipped profile no longer has the partition line the README describes"
    assert edited.count("    gpu: 1\n") == 4, "the README's CPU-only edit: gpu: 0 for the four GPU rules"
    profile.write_text(edited.replace("    gpu: 1\n", "    gpu: 0\n"))
    return target


def without_grouping(profile: Path, target: Path) -> Path:
    """A copy of ``profile`` that submits every job on its own: its groups taken out."""
    settings = yaml.safe_load((profile / "config.yaml").read_text())
    assert settings.pop("groups") and settings.pop("group-components")
    target.mkdir(parents=True)
    (target / "config.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    return target


def _job_set(output: str) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    return {(rule, tuple(sorted(wildcards.items()))) for rule, wildcards in dry_run_jobs(output)}


def _minutes(limit: str) -> int:
    """A SLURM time limit ([days-]hours:minutes:seconds) in minutes."""
    days, _, clock = limit.rpartition("-")
    hours, minutes, seconds = (int(part) for part in clock.split(":"))
    return int(days or 0) * 24 * 60 + hours * 60 + minutes + (seconds > 0)


def _megabytes(amount: str) -> int:
    return int(float(amount[:-1]) * {"M": 1, "G": 1024, "T": 1024**2}[amount[-1]])


def _tres(record: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in record.split(","))


def partition_limits(partition: str) -> dict[str, int]:
    """What one job may ask for in ``partition``, as the controller reports it: the time limit, and the
    CPUs and memory of its only node (its TRES)."""
    shown = subprocess.run(
        ["scontrol", "show", "partition", partition, "-o"], capture_output=True, text=True, check=True
    ).stdout
    fields = dict(field.split("=", 1) for field in shown.split() if "=" in field)
    assert fields["TotalNodes"] == "1" and fields["MaxTime"] != "UNLIMITED", shown
    node = _tres(fields["TRES"])
    return {
        "minutes": _minutes(fields["MaxTime"]),
        "cpus": int(node["cpu"]),
        "mem_mb": _megabytes(node["mem"]),
    }


def test_the_workflow_runs_every_job_under_slurm_with_the_shipped_profile(
    slurm_cluster: LocalSlurmCluster, tmp_path: Path
) -> None:
    workdir = copy_project(tmp_path / "project", SLURM_CONFIG, name="slurm.yaml")
    config_home = tmp_path / "xdg"
    profile = install_profile_as_a_user_would(config_home, partition="debug")
    env = {**os.environ, "XDG_CONFIG_HOME": str(config_home)}
    options = (
        "results/slurmtest/tables/summary.csv",
        "--configfile", "config/slurm.yaml",
        # What a user adds on a cluster without accounting (README, "HPC"):
        "--slurm-status-command", "squeue",
        "--slurm-init-seconds-before-status-checks", "5",
    )  # fmt: skip
    # The jobs the workflow needs do not depend on how they are submitted: the same command with the
    # groups taken out of the profile lists them (a dry run), and the grouped run must start exactly those.
    ungrouped = without_grouping(profile, tmp_path / "ungrouped")
    expected = _job_set(snakemake(workdir, "-n", "--profile", str(ungrouped), *options, env=env).stdout)
    result = snakemake(workdir, "--profile", "slurm", *options, env=env, timeout=900)
    output = result.stdout + result.stderr
    assert _job_set(output) == expected, output[-3000:]
    assert len(expected) == 14 and "slurm_partition=debug" in output
    submitted = set(re.findall(r"submitted with SLURM jobid (\d+)", output))

    # 3 phantoms, 2 × (train, predict, evaluate), the fold ensemble's prediction and evaluation, and the
    # post-processing; the split and the aggregation are local rules.
    logs_dir = workdir / "logs" / "slurmtest"
    logs = sorted(logs_dir.rglob("*.log"))
    local = {logs_dir / name for name in ("split.log", "aggregate.log")}
    assert local <= set(logs) and not any("SLURM job" in log.read_text() for log in local)
    remote = [log for log in logs if log not in local]
    assert len(remote) == 12
    recorded = {}
    for log in remote:
        found = re.search(r"SLURM job (\d+)", log.read_text())
        assert found, f"{log} does not record a SLURM job id"
        recorded[log] = found.group(1)
    assert set(recorded.values()) == submitted, "a job ran under a SLURM job that Snakemake did not submit"
    # The scoring jobs of the one variant (both folds' evaluations, the ensemble's, the post-processing)
    # ran in one sbatch; every other job in one of its own.
    scoring = {recorded[log] for log in remote if log.relative_to(logs_dir).parts[0] in SCORING_RULES}
    others = [recorded[log] for log in remote if log.relative_to(logs_dir).parts[0] not in SCORING_RULES]
    assert len(scoring) == 1 and len(others) == 8, recorded
    assert len(set(others)) == len(others) and not scoring & set(others), recorded
    assert len(submitted) == 9 < len(remote)

    # What SLURM gave each job fits the partition. The profile runs one scoring job at a time in a group,
    # so the group asks for one job's memory and CPU and for the sum of its jobs' time limits.
    limits = partition_limits("debug")
    completed = slurm_cluster.completed_jobs()
    for job_id in submitted:
        record = completed[job_id]
        tres = _tres(record["Tres"])
        assert record["JobState"] == "COMPLETED" and record["Partition"] == "debug", record
        assert int(tres["cpu"]) <= limits["cpus"] and _megabytes(tres["mem"]) <= limits["mem_mb"], record
        assert int(record["TimeLimit"]) <= limits["minutes"], record
    settings = yaml.safe_load((profile / "config.yaml").read_text())
    assert settings["resources"]["scoring_slots"] == 1, "the expectations below are for one slot"
    grouped = [settings["set-resources"][rule] for rule, _ in expected if rule in SCORING_RULES]
    group = completed[scoring.pop()]
    assert _tres(group["Tres"])["cpu"] == "1", group
    assert _megabytes(_tres(group["Tres"])["mem"]) == max(job["mem_mb"] for job in grouped), group
    assert int(group["TimeLimit"]) == sum(job["runtime"] for job in grouped), group

    summary = pd.read_csv(workdir / "results" / "slurmtest" / "tables" / "summary.csv")
    assert list(summary["variant"]) == ["unet"] and summary.loc[0, "n"] == 2
    assert 0.0 <= summary.loc[0, "dice_mean"] <= 1.0
