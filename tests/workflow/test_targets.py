"""Targets named on the command line: only the configured data set, variants, folds and seeds have rules."""

from pathlib import Path

import pytest
import yaml
from workflow_helpers import SEEDS_CONFIG, copy_project, dry_run_jobs, snakemake

ONE_SEED = {**SEEDS_CONFIG, "training": {**SEEDS_CONFIG["training"], "seeds": [11]}}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = copy_project(tmp_path_factory.mktemp("targets"), SEEDS_CONFIG)
    (project / "config" / "one_seed.yaml").write_text(yaml.safe_dump(ONE_SEED, sort_keys=False))
    return project


@pytest.mark.parametrize(
    ("config", "target"),
    [
        ("test.yaml", "results/demo/unet/fold0/seed13/model/best.pt"),  # a seed not configured
        ("test.yaml", "results/demo/unet/fold0/seed112/model/best.pt"),  # a configured seed, continued
        ("test.yaml", "results/demo/unet/fold0/seed1/metrics.csv"),  # the start of configured seeds
        ("test.yaml", "results/demo/unet/fold2/seed11/model/best.pt"),  # fold 2 of split.folds 2
        ("test.yaml", "results/demo/unet/fold01/seed11/metrics.csv"),  # fold 1, spelt otherwise
        ("test.yaml", "results/demo/unet/ensemble/seed13/metrics.csv"),  # the ensemble of no seed
        ("test.yaml", "results/demo/unet_mi/fold0/seed11/metrics.csv"),  # a variant not configured
        ("test.yaml", "results/demo/unet_mipx/fold0/seed11/metrics.csv"),  # a configured one, continued
        ("test.yaml", "results/other/unet/fold0/seed11/metrics.csv"),  # another data set
        ("one_seed.yaml", "results/demo/unet/fold2/metrics.csv"),  # one seed: runs have no seed level
    ],
)
def test_a_target_outside_the_config_has_no_rule_and_schedules_nothing(
    workdir: Path, config: str, target: str
) -> None:
    result = snakemake(workdir, target, "-n", "--configfile", f"config/{config}", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert dry_run_jobs(result.stdout) == [], output
    assert f"No rule to produce {target}" in output
    assert "Traceback" not in output


def test_a_configured_seed_and_fold_dry_run_to_their_jobs(workdir: Path) -> None:
    result = snakemake(workdir, "results/demo/unet_mip/fold1/seed12/metrics.csv", "-n", "--configfile",
                       "config/test.yaml")  # fmt: skip
    jobs = dry_run_jobs(result.stdout)
    assert sorted(rule for rule, _ in jobs) == ["evaluate", "predict", "split", *["synthesize_phantom"] * 4,
                                                "train"]  # fmt: skip
    runs = {(w["variant"], w["fold"], w["seed"]) for _, w in jobs if "variant" in w}
    assert runs == {("unet_mip", "1", "12")}


def test_a_target_job_with_a_configured_seed_continued_schedules_nothing(workdir: Path) -> None:
    """Snakemake checks the wildcards of ``--target-jobs`` against the constraints with ``re.match``, which
    anchors only the start: seed 112 must not pass for seed 11."""
    job = "train:dataset=demo,variant=unet,fold=0,seed=112"
    result = snakemake(workdir, "-n", "--target-jobs", job, "--configfile", "config/test.yaml", check=False)
    assert result.returncode != 0 and dry_run_jobs(result.stdout) == [], result.stdout + result.stderr
