"""Seeds as replicates in the workflow: one training per (variant, fold, seed), tables averaged over seeds."""

from pathlib import Path

import pandas as pd
import pytest
from workflow_helpers import SEEDS_CONFIG, copy_project, dry_run_jobs, snakemake


def test_the_demo_seeds_overlay_schedules_three_times_the_trainings(tmp_path: Path) -> None:
    workdir = copy_project(tmp_path)
    one = dry_run_jobs(snakemake(workdir, "-n").stdout)
    three = dry_run_jobs(
        snakemake(workdir, "-n", "--configfile", "config/config.yaml", "config/demo_seeds.yaml").stdout
    )
    trainings = [w for rule, w in three if rule == "train"]
    assert len(trainings) == 3 * sum(rule == "train" for rule, _ in one) == 60
    assert {w["seed"] for w in trainings} == {"2020", "2021", "2022"}
    ensembles = [w for rule, w in three if rule == "predict_ensemble"]
    assert len(ensembles) == 3 * sum(rule == "predict_ensemble" for rule, _ in one)


def test_the_paper_config_with_seeds_is_refused_naming_both_keys(tmp_path: Path) -> None:
    workdir = copy_project(tmp_path)
    result = snakemake(
        workdir, "-n", "--configfile", "config/paper.yaml", "config/demo_seeds.yaml", check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1 and len(output.splitlines()) < 12, output
    assert "config training.seeds: give training.seed or training.seeds, not both" in output


def test_targeting_one_seeds_weights_schedules_only_its_training(tmp_path: Path) -> None:
    workdir = copy_project(tmp_path, SEEDS_CONFIG)
    result = snakemake(
        workdir, "results/demo/unet/fold1/seed12/model/best.pt", "-n", "--configfile", "config/test.yaml"
    )
    jobs = dry_run_jobs(result.stdout)
    # The training needs the split and the three cross-validation phantoms, nothing else.
    assert sorted(rule for rule, _ in jobs) == ["split", *["synthesize_phantom"] * 3, "train"]
    assert [w for rule, w in jobs if rule == "train"] == [
        {"dataset": "demo", "variant": "unet", "fold": "1", "seed": "12"}
    ]


def test_two_seeds_run_end_to_end_and_the_tables_average_them(tmp_path: Path) -> None:
    # One variant (two folds, two seeds: four trainings) keeps it short.
    config = {**SEEDS_CONFIG, "variants": {"unet": {"model": "unet"}}}
    workdir = copy_project(tmp_path, config)
    snakemake(workdir, "--cores", "2", "--configfile", "config/test.yaml")
    results = workdir / "results" / "demo"
    weights = {
        seed: (results / "unet" / "fold0" / f"seed{seed}" / "model" / "best.pt").read_bytes()
        for seed in (11, 12)
    }
    assert weights[11] != weights[12]  # a seed changes the training

    gathered = pd.read_csv(results / "tables" / "cv_metrics.csv")
    assert sorted(gathered["seed"].unique()) == [11, 12]
    per_run = pd.concat(
        pd.read_csv(results / variant / f"fold{fold}" / f"seed{seed}" / "validation" / "metrics.csv")
        for variant in ("unet",) for fold in (0, 1) for seed in (11, 12)
    )  # fmt: skip
    expected = per_run.groupby(["variant", "subject"])["dice"].mean().groupby("variant").mean()
    summary = pd.read_csv(results / "tables" / "cv_summary.csv").set_index("variant")
    assert summary["dice_mean"].to_dict() == pytest.approx(expected.to_dict(), rel=1e-5)
    assert (summary["n"] == 3).all() and (summary["seeds"] == 2).all()
    assert summary["dice_seed_sd"].notna().all()
    assert "seed sd" in (results / "tables" / "cv_summary.md").read_text()

    ensemble = pd.read_csv(results / "tables" / "ensemble_metrics.csv")
    assert sorted(zip(ensemble["variant"], ensemble["seed"], strict=True)) == sorted(
        (v, s) for v in ("unet",) for s in (11, 12)
    )
    for figure in ("metrics_boxplots", "cv_metrics_boxplots", "ensemble_metrics_boxplots", "learning_curves"):
        assert (results / "figures" / f"{figure}.png").stat().st_size > 5000
