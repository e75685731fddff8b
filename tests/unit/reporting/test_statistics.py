"""Subject-level paired statistics and the summary tables that print them."""

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from spockmip.reporting.statistics import (
    TOO_FEW,
    StatisticsSettings,
    can_reach,
    compare,
    holm,
    minimum_p_value,
    paired_scores,
    wilcoxon_p,
)
from spockmip.reporting.tables import (
    SUMMARY_METRICS,
    display_table,
    latex_escape,
    summarise,
    table_note,
    to_html,
    to_latex,
)


def _textbook_exact_p(differences: np.ndarray) -> float:
    """Two-sided exact signed-rank p by enumerating all 2^n sign patterns of the ranks (no ties)."""
    ranks = np.argsort(np.argsort(np.abs(differences))) + 1
    observed = ranks[differences > 0].sum()
    centre = ranks.sum() / 2
    totals = [sum(r for r, s in zip(ranks, signs, strict=True) if s) for signs in
              itertools.product([0, 1], repeat=len(ranks))]  # fmt: skip
    extreme = sum(abs(t - centre) >= abs(observed - centre) for t in totals)
    return extreme / len(totals)


@pytest.mark.parametrize(
    "differences",
    [[1.0, 2, 3, 4, 5, 6], [1.0, 2, 3, 4, 5, -6, -7, 8], [0.3, -1.1, 2.5, 0.7, 1.9, 2.2, -0.4, 3.1, 1.4]],
)
def test_wilcoxon_gives_the_textbook_exact_p(differences) -> None:
    d = np.array(differences)
    assert wilcoxon_p(d) == pytest.approx(_textbook_exact_p(d))
    assert wilcoxon_p(np.array([1.0, 2, 3, 4, 5, 6])) == pytest.approx(2 / 2**6)


def test_holm_adjustment_matches_the_hand_computation() -> None:
    # Sorted 0.005, 0.01, 0.03, 0.04 → 4·0.005, 3·0.01, 2·0.03, max(1·0.04, 0.06), in input order.
    adjusted = holm([0.01, 0.04, 0.03, 0.005, math.nan])
    np.testing.assert_allclose(adjusted[:4], [0.03, 0.06, 0.06, 0.02])
    assert math.isnan(adjusted[4])
    assert holm([0.6, 0.9])[1] == 1.0


def test_n_too_small_follows_from_the_smallest_exact_p() -> None:
    assert minimum_p_value(5) == pytest.approx(0.0625) and minimum_p_value(6) == pytest.approx(0.03125)
    assert next(n for n in range(1, 12) if can_reach(n, 0.05)) == 6
    assert next(n for n in range(1, 12) if can_reach(n, 0.01)) == 8


def _table(values: dict[str, dict[str, float]]) -> pd.DataFrame:
    rows = [
        {"variant": variant, "subject": subject, **dict.fromkeys(SUMMARY_METRICS, 0.0), "dice": score}
        for variant, scores in values.items()
        for subject, score in scores.items()
    ]
    return pd.DataFrame(rows)


def test_pairs_are_joined_by_subject_never_by_row_order() -> None:
    base = {"s1": 0.50, "s2": 0.60, "s3": 0.70}
    # The variant's rows come in another order and include a subject the baseline lacks.
    new = {"s3": 0.75, "s9": 0.10, "s1": 0.52, "s2": 0.61}
    pairs = paired_scores(_table({"base": base, "new": new}), "new", "base", "dice")
    assert list(pairs.index) == ["s1", "s2", "s3"]
    np.testing.assert_allclose(pairs["variant"] - pairs["baseline"], [0.02, 0.01, 0.05])


def test_several_rows_of_one_subject_are_refused() -> None:
    table = pd.concat([_table({"base": {"s1": 0.5}, "new": {"s1": 0.6}}), _table({"new": {"s1": 0.7}})])
    with pytest.raises(ValueError, match="several rows for subject"):
        paired_scores(table, "new", "base", "dice")


def test_comparisons_report_n_interval_p_and_holm_or_n_too_small() -> None:
    rng = np.random.default_rng(0)
    subjects = [f"s{i}" for i in range(8)]
    base = dict(zip(subjects, rng.uniform(0.5, 0.7, 8), strict=True))
    better = {s: v + d for (s, v), d in zip(base.items(), [0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, -0.005],
                                           strict=True)}  # fmt: skip
    few = {s: base[s] + 0.1 for s in subjects[:4]}
    table = _table({"base": base, "better": better, "few": few})
    settings = StatisticsSettings(metrics=("dice",), bootstrap_samples=2000)
    result = compare(table, {"better": "base", "few": "base"}, ["base", "better", "few"], settings)
    tested, small = result.iloc[0], result.iloc[1]
    expected = _textbook_exact_p(np.round(np.array([better[s] - base[s] for s in subjects]), 9))
    assert tested["n_pairs"] == 8 and tested["p"] == pytest.approx(expected)
    assert tested["p_holm"] == pytest.approx(expected)  # the only tested comparison: Holm changes nothing
    assert tested["ci_low"] <= tested["median_difference"] <= tested["ci_high"]
    assert tested["median_difference"] == pytest.approx(0.035)
    assert small["n_pairs"] == 4 and small["test"] == TOO_FEW and math.isnan(small["p"])
    again = compare(table, {"better": "base", "few": "base"}, ["base", "better", "few"], settings)
    pd.testing.assert_frame_equal(result, again)  # the bootstrap is seeded

    summary = summarise(table, ["base", "better", "few"], {"better": "base", "few": "base"}, settings)
    cells = display_table(summary)
    assert cells.loc[2, "p Dice (n)"] == f"{TOO_FEW} (n=4)"
    assert cells.loc[1, "p Dice (n)"] == f"{expected:.3g} (n=8)"
    assert cells.loc[0, "p Dice (n)"] == "–"
    note = table_note(summary, "the subjects", settings)
    assert "Wilcoxon" in note and "Holm" in note and "1 tested comparison" in note


def test_latex_special_characters_in_variant_names_are_escaped() -> None:
    assert latex_escape(r"a_b&c%d$e#f{g}h~i^j\k") == (
        r"a\_b\&c\%d\$e\#f\{g\}h\textasciitilde{}i\textasciicircum{}j\textbackslash{}k"
    )
    table = _table({"u_net&#1": {"s1": 0.5, "s2": 0.6}, "50%_mip": {"s1": 0.55, "s2": 0.58}})
    summary = summarise(table, ["u_net&#1", "50%_mip"], {"50%_mip": "u_net&#1"})
    latex = to_latex(display_table(summary), "over 100% of $ubjects")
    assert r"u\_net\&\#1" in latex and r"50\%\_mip" in latex and r"100\% of \$ubjects" in latex
    assert "u_net" not in latex and r"$\pm$" in latex and r"\begin{tabular}" in latex


def test_html_table_is_escaped_and_byte_identical_when_rebuilt() -> None:
    table = _table({"a<b>": {"s1": 0.5, "s2": 0.6}})
    cells = display_table(summarise(table, ["a<b>"], {}))
    page = to_html(cells, "note & <more>")
    assert "a&lt;b&gt;" in page and "note &amp; &lt;more&gt;" in page and "<table" in page
    assert to_html(cells, "note & <more>") == page


def test_undefined_surface_distances_are_left_out_and_counted_in_the_note() -> None:
    table = _table({"base": {"s1": 0.5, "s2": 0.6, "s3": 0.7}})
    table["hd95_mm"] = [1.0, 3.0, math.nan]  # s3: exactly one mask empty
    summary = summarise(table, ["base"], {})
    assert summary.loc[0, "hd95_mm_mean"] == 2.0 and summary.loc[0, "hd95_mm_undefined"] == 1
    assert summary.loc[0, "dice_undefined"] == 0
    note = table_note(summary, "the subjects", None)
    assert "HD95 mm (exactly one of prediction and label empty): base 1." in note
    assert "Dice" not in note.split("left out")[-1]
    assert "lower is better: Thin gaps, β0 error, β1 error, Components, HD95 mm, ASSD mm" in note
    assert "Higher is better: Dice, IoU, clDice, Thin recall, NSD" in note
    assert display_table(summary).loc[0, "HD95 mm"] == "2.00 ± 1.41 (2.00)"


def test_an_emptied_radius_bin_is_counted_per_variant_in_the_note() -> None:
    table = _table({"base": {"s1": 0.5, "s2": 0.6}, "fat": {"s1": 0.5, "s2": 0.6}})
    table.loc[table["variant"] == "fat", "thin_recall"] = math.nan  # no thin centre line left
    note = table_note(summarise(table, ["base", "fat"], {}), "the subjects", None)
    assert "Thin recall (no reference centre line in the thin bin): fat 2." in note
