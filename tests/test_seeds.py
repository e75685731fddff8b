"""Seeds as replicates: one training per (variant, fold, seed), scores averaged per subject over seeds."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from cli_helpers import spockmip
from workflow_helpers import copy_project, dry_run_jobs, snakemake

from spockmip.errors import SettingsError
from spockmip.reporting.figures import save_metric_boxplots
from spockmip.reporting.replicates import average_over_seeds, seed_means, seed_spread
from spockmip.reporting.statistics import StatisticsSettings
from spockmip.reporting.tables import display_table, summarise, table_note
from spockmip.settings.catalogue import METRICS
from spockmip.settings.lookup import variant_settings
from spockmip.settings.rules import check_replicates
from spockmip.settings.workflow import WorkflowSettings


def scores(variant: str, seed: int, subject: str, dice: float, fold: int = 0) -> dict:
    row = {"variant": variant, "fold": fold, "seed": seed, "subject": subject}
    row.update({metric: 0.5 for metric in METRICS})
    row["dice"] = dice
    return row


def test_two_seeds_are_averaged_per_subject_before_the_statistics() -> None:
    # Subject s0..s5; seed 1 and seed 2 of each variant; the baseline's scores are 0.5 throughout.
    rows = []
    for index in range(6):
        subject = f"s{index}"
        rows += [scores("base", 1, subject, 0.5), scores("base", 2, subject, 0.5)]
        rows += [scores("new", 1, subject, 0.6 + 0.01 * index), scores("new", 2, subject, 0.8 + 0.01 * index)]
    table = pd.DataFrame(rows)
    averaged = average_over_seeds(table)
    assert len(averaged) == 12 and "seed" not in averaged
    new = averaged[averaged["variant"] == "new"].set_index("subject")["dice"]
    assert new.to_dict() == pytest.approx({f"s{i}": 0.7 + 0.01 * i for i in range(6)})

    settings = StatisticsSettings(metrics=("dice",), bootstrap_samples=200)
    summary = summarise(table, ["base", "new"], {"base": None, "new": "base"}, settings).set_index("variant")
    # n counts subjects (6), not subject x seed rows (12); the test pairs 6 subjects.
    assert summary.loc["new", "n"] == 6 and summary.loc["new", "dice_n_pairs"] == 6
    assert summary.loc["new", "dice_mean"] == pytest.approx(0.725)
    assert summary.loc["new", "dice_median_difference"] == pytest.approx(0.225)
    # Six positive differences: the exact two-sided Wilcoxon p is 2 / 2^6.
    assert summary.loc["new", "dice_p"] == pytest.approx(2 / 64)


def test_the_seed_spread_is_the_sd_of_each_seeds_mean() -> None:
    rows = [scores("a", seed, f"s{i}", dice) for seed, base in ((1, 0.6), (2, 0.7), (3, 0.9))
            for i, dice in enumerate((base - 0.05, base + 0.05))]  # fmt: skip
    spread = seed_spread(pd.DataFrame(rows), ["a"]).set_index("variant")
    assert spread.loc["a", "seeds"] == 3
    assert spread.loc["a", "dice_seed_sd"] == pytest.approx(np.std([0.6, 0.7, 0.9], ddof=1))
    assert spread.loc["a", "iou_seed_sd"] == 0.0

    summary = summarise(pd.DataFrame(rows), ["a"], {"a": None})
    cells = display_table(summary)
    assert cells.loc[0, "Seeds"] == "3"
    assert cells.loc[0, "Dice % seed sd"] == f"{100 * np.std([0.6, 0.7, 0.9], ddof=1):.2f}"
    assert "mean over 3 training seeds" in table_note(summary, "subjects", None)


def test_one_seed_leaves_the_spread_blank_and_the_table_as_before() -> None:
    rows = [scores("a", 7, f"s{i}", 0.5 + 0.1 * i) for i in range(3)]
    summary = summarise(pd.DataFrame(rows), ["a"], {"a": None})
    assert summary.loc[0, "seeds"] == 1 and math.isnan(summary.loc[0, "dice_seed_sd"])
    cells = display_table(summary)
    assert not any("seed" in column.lower() for column in cells.columns)
    assert "seeds" not in table_note(summary, "subjects", None)
    without = summarise(pd.DataFrame(rows).drop(columns="seed"), ["a"], {"a": None})
    pd.testing.assert_frame_equal(without, summary)


def test_a_score_undefined_for_any_seed_is_undefined_for_the_subject() -> None:
    rows = [
        scores("a", 1, "s0", 0.6),
        scores("a", 2, "s0", 0.8),
        scores("a", 1, "s1", 0.6),
        scores("a", 2, "s1", 0.7),
    ]
    rows[1]["hd95_mm"] = math.nan
    averaged = average_over_seeds(pd.DataFrame(rows)).set_index("subject")
    assert math.isnan(averaged.loc["s0", "hd95_mm"]) and averaged.loc["s1", "hd95_mm"] == 0.5
    assert averaged.loc["s0", "dice"] == pytest.approx(0.7)
    summary = summarise(pd.DataFrame(rows), ["a"], {"a": None})
    assert summary.loc[0, "hd95_mm_undefined"] == 1


def test_seed_and_seeds_together_are_refused_naming_both() -> None:
    with pytest.raises(
        SettingsError, match=r"config training\.seeds: give training\.seed or training\.seeds"
    ):
        check_replicates({"seed": 1, "seeds": [1, 2]})
    with pytest.raises(SettingsError, match=r"config training\.seeds: 3 is listed twice"):
        check_replicates({"seeds": [3, 4, 3]})
    check_replicates({"seed": 1})
    check_replicates({"seeds": [1, 2]})


def test_a_run_of_a_replicated_config_takes_the_chosen_seed() -> None:
    config = {"training": {"seeds": [4, 5], "epochs": 2}, "variants": {"a": {"model": "unet"}}}
    assert variant_settings(config, "a", 5) == {"seed": 5, "epochs": 2, "model": "unet"}
    assert variant_settings({**config, "training": {"seeds": [9]}}, "a")["seed"] == 9
    with pytest.raises(SettingsError, match=r"training\.seeds: lists 2 seeds .*spockmip train --seed"):
        variant_settings(config, "a")


def test_spockmip_train_on_a_replicated_config_needs_seed(tmp_path: Path) -> None:
    settings_file = tmp_path / "settings.yaml"
    replicated = {"training": {"seeds": [4, 5]}, "variants": {"a": {"model": "unet"}}}
    settings_file.write_text(yaml.safe_dump(replicated))
    out = tmp_path / "out"
    result = spockmip("train", "--data", str(tmp_path), "--config", str(settings_file), "--train", "x",
                      "--validation", "y", "--out", str(out))  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"spockmip train: error: {settings_file}: training.seeds: lists 2 seeds and one training run takes "
        "one (the workflow trains each; spockmip train --seed chooses)"
    ]
    assert not out.exists()
    # With --seed the file's settings are taken: the run gets as far as the (missing) data.
    result = spockmip("train", "--data", str(tmp_path), "--config", str(settings_file), "--seed", "5",
                      "--train", "x", "--validation", "y", "--out", str(out))  # fmt: skip
    assert result.returncode == 1 and "training.seeds" not in result.stderr


def test_workflow_settings_list_the_seeds() -> None:
    config = {"training": {"seed": 3, "seeds": None}, "variants": {"a": {"model": "unet"}}}
    assert WorkflowSettings(config).seeds == [3]
    config["training"]["seeds"] = [8, 9]
    assert WorkflowSettings(config).seeds == [8, 9]
    assert WorkflowSettings(config).training("a", 9)["seed"] == 9


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


def test_each_seeds_mean_is_what_the_box_plots_draw_beside_the_subjects(tmp_path: Path) -> None:
    rows = [scores("a", seed, f"s{i}", base + 0.1 * i) for seed, base in ((1, 0.5), (2, 0.6)) for i in (0, 1)]
    table = pd.DataFrame(rows)
    means = seed_means(table).set_index("seed")["dice"]
    assert means.to_dict() == pytest.approx({1: 0.55, 2: 0.65})
    assert seed_means(table.drop(columns="seed")).empty
    averaged, path = average_over_seeds(table), tmp_path / "box.png"
    save_metric_boxplots(averaged, ["dice"], ["a"], path, "seeds", seed_means(table))
    assert path.read_bytes().startswith(b"\x89PNG")
