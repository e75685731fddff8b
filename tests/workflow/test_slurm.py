"""The workflow on a real (single-node, localhost) SLURM cluster through the shipped profile.

Skipped where the SLURM binaries are missing; CI sets SPOCKMIP_REQUIRE_SLURM=1, which turns that skip into
a failure so the test cannot silently stop running there.
"""

import os
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from paths import ROOT
from slurm_cluster import LocalSlurmCluster, missing_binaries
from workflow_helpers import copy_project, snakemake

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
    """README: copy profiles/slurm to ~/.config/snakemake/slurm and set the partition in it."""
    target = config_home / "snakemake" / "slurm"
    shutil.copytree(ROOT / "profiles" / "slurm", target)
    profile = target / "config.yaml"
    shipped = profile.read_text()
    edited = shipped.replace('  # slurm_partition: "cpu"', f'  slurm_partition: "{partition}"')
    assert edited != shipped, "the shipped profile no longer has the partition line the README describes"
    profile.write_text(edited)
    return target


def test_the_workflow_runs_every_job_under_slurm_with_the_shipped_profile(
    slurm_cluster: LocalSlurmCluster, tmp_path: Path
) -> None:
    workdir = copy_project(tmp_path / "project", SLURM_CONFIG, name="slurm.yaml")
    config_home = tmp_path / "xdg"
    install_profile_as_a_user_would(config_home, partition="debug")
    env = {**os.environ, "XDG_CONFIG_HOME": str(config_home)}
    result = snakemake(
        workdir,
        "results/slurmtest/tables/summary.csv",
        "--profile", "slurm",
        "--configfile", "config/slurm.yaml",
        # What a user changes on a CPU-only cluster without accounting (README, "HPC"):
        "--set-resources", "train:gpu=0", "predict:gpu=0",
        # and on nodes smaller than the scoring jobs' default memory:
        "evaluate:mem_mb=1000", "evaluate_ensemble:mem_mb=1000", "postprocess:mem_mb=1000",
        "--slurm-status-command", "squeue",
        "--slurm-init-seconds-before-status-checks", "5",
        env=env,
        timeout=900,
    )  # fmt: skip
    output = result.stdout + result.stderr
    submitted = set(re.findall(r"submitted with SLURM jobid (\d+)", output))
    # 3 phantoms, 2 × (train, predict, evaluate), the fold ensemble's prediction and evaluation, and the
    # post-processing; the split and the aggregation are local rules.
    assert len(submitted) == 12, output[-3000:]
    assert "slurm_partition=debug" in output

    logs = sorted((workdir / "logs" / "slurmtest").rglob("*.log"))
    local = {workdir / "logs" / "slurmtest" / name for name in ("split.log", "aggregate.log")}
    assert local <= set(logs) and not any("SLURM job" in log.read_text() for log in local)
    remote = [log for log in logs if log not in local]
    assert len(remote) == 12
    recorded = {}
    for log in remote:
        found = re.search(r"SLURM job (\d+)", log.read_text())
        assert found, f"{log} does not record a SLURM job id"
        recorded[log] = found.group(1)
    assert set(recorded.values()) == submitted, "every job must have run as its own SLURM job"

    summary = pd.read_csv(workdir / "results" / "slurmtest" / "tables" / "summary.csv")
    assert list(summary["variant"]) == ["unet"] and summary.loc[0, "n"] == 2
    assert 0.0 <= summary.loc[0, "dice_mean"] <= 1.0
