"""Seeds as replicates in the tables: scores averaged per subject over seeds, the spread of seed means."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from spockmip.reporting.figures import save_metric_boxplots
from spockmip.reporting.replicates import average_over_seeds, seed_means, seed_spread
from spockmip.reporting.statistics import StatisticsSettings
from spockmip.reporting.tables import display_table, summarise, table_note
from spockmip.settings.catalogue import METRICS


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


def test_each_seeds_mean_is_what_the_box_plots_draw_beside_the_subjects(tmp_path: Path) -> None:
    rows = [scores("a", seed, f"s{i}", base + 0.1 * i) for seed, base in ((1, 0.5), (2, 0.6)) for i in (0, 1)]
    table = pd.DataFrame(rows)
    means = seed_means(table).set_index("seed")["dice"]
    assert means.to_dict() == pytest.approx({1: 0.55, 2: 0.65})
    assert seed_means(table.drop(columns="seed")).empty
    averaged, path = average_over_seeds(table), tmp_path / "box.png"
    save_metric_boxplots(averaged, ["dice"], ["a"], path, "seeds", seed_means(table))
    assert path.read_bytes().startswith(b"\x89PNG")
