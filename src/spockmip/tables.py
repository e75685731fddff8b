"""The paper's tables rebuilt from per-subject metrics: one row per variant, tests against a baseline.

Every (fold, test subject) pair is one observation: each fold's model scores the same held-out subjects,
so a variant and its baseline are compared pairwise (Wilcoxon signed-rank), which is what the per-fold
repetition is for. Text outputs (Markdown, LaTeX) show mean ± std and the median, as the papers report.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import wilcoxon

from spockmip.outputs import atomic_path

SUMMARY_METRICS: tuple[str, ...] = (
    "dice",
    "iou",
    "cl_dice",
    "betti0_error",
    "betti1_error",
    "n_components_prediction",
)
TESTED_METRICS: tuple[str, ...] = ("dice", "cl_dice")
PAIR_KEYS = ["fold", "subject"]


def paired_wilcoxon(table: pd.DataFrame, variant: str, baseline: str, metric: str) -> float:
    """Two-sided p-value over the (fold, subject) pairs both variants have; NaN if undefined.

    Undefined means fewer than one pair, or all paired differences zero (identical results).
    """
    a = table[table["variant"] == variant].set_index(PAIR_KEYS)[metric]
    b = table[table["variant"] == baseline].set_index(PAIR_KEYS)[metric]
    joined = pd.concat([a, b], axis=1, join="inner").dropna()
    differences = joined.iloc[:, 0] - joined.iloc[:, 1]
    if len(differences) == 0 or np.allclose(differences, 0):
        return math.nan
    return float(wilcoxon(joined.iloc[:, 0], joined.iloc[:, 1]).pvalue)


def summarise(table: pd.DataFrame, baselines: Mapping[str, str | None], order: Sequence[str]) -> pd.DataFrame:
    """One row per variant (in ``order``): n, mean/std/median of each summary metric, p-values vs baseline."""
    missing = [column for column in ("variant", *PAIR_KEYS, *SUMMARY_METRICS) if column not in table]
    if missing:
        raise ValueError(f"metrics table lacks columns: {', '.join(missing)}")
    rows = []
    for variant in order:
        scores = table[table["variant"] == variant]
        baseline = baselines.get(variant)
        row: dict[str, object] = {"variant": variant, "baseline": baseline or "", "n": len(scores)}
        for metric in SUMMARY_METRICS:
            values = scores[metric].astype(float)
            row[f"{metric}_mean"] = values.mean()
            row[f"{metric}_std"] = values.std(ddof=1) if len(values) > 1 else math.nan
            row[f"{metric}_median"] = values.median()
        for metric in TESTED_METRICS:
            row[f"p_{metric}"] = paired_wilcoxon(table, variant, baseline, metric) if baseline else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def _cell(row: pd.Series, metric: str, percent: bool) -> str:
    scale = 100.0 if percent else 1.0
    mean, std, median = (row[f"{metric}_{s}"] * scale for s in ("mean", "std", "median"))
    spread = "" if math.isnan(std) else f" ± {std:.2f}"
    return f"{mean:.2f}{spread} ({median:.2f})"


def _p(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.3g}"


HEADERS = ["Variant", "Baseline", "n", "Dice %", "IoU %", "clDice %", "β0 error", "β1 error", "Components",
           "p (Dice)", "p (clDice)"]  # fmt: skip


def _text_rows(summary: pd.DataFrame) -> list[list[str]]:
    percent = {"dice", "iou", "cl_dice"}
    return [
        [row["variant"], row["baseline"] or "–", str(row["n"])]
        + [_cell(row, metric, metric in percent) for metric in SUMMARY_METRICS]
        + [_p(row[f"p_{metric}"]) for metric in TESTED_METRICS]
        for _, row in summary.iterrows()
    ]


def to_markdown(summary: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(cells) + " |" for cells in _text_rows(summary)]
    note = "Mean ± std (median) over every (fold, test subject); p: paired Wilcoxon signed-rank vs baseline."
    return "\n".join([*lines, "", note]) + "\n"


def _latex_escape(text: str) -> str:
    return text.replace("\\", r"\textbackslash{}").replace("_", r"\_").replace("%", r"\%").replace("&", r"\&")


def to_latex(summary: pd.DataFrame) -> str:
    headers = [_latex_escape(h).replace("β", r"$\beta$") for h in HEADERS]
    body = [
        " & ".join(_latex_escape(c).replace("±", r"$\pm$") for c in cells) + r" \\"
        for cells in _text_rows(summary)
    ]
    columns = "ll" + "r" * (len(HEADERS) - 2)
    head = " & ".join(headers) + r" \\"
    lines = [
        rf"\begin{{tabular}}{{{columns}}}",
        r"\toprule",
        head,
        r"\midrule",
        *body,
        r"\bottomrule",
        r"\end{tabular}",
    ]
    return "\n".join(lines) + "\n"


def write_summary(
    summary: pd.DataFrame, csv_path: str | Path, markdown_path: str | Path, latex_path: str | Path
):
    """The same table three ways: CSV for analysis, Markdown for the README/report, LaTeX for a paper."""
    with atomic_path(csv_path) as temporary:
        summary.to_csv(temporary, index=False, float_format="%.6g")
    with atomic_path(markdown_path) as temporary:
        temporary.write_text(to_markdown(summary))
    with atomic_path(latex_path) as temporary:
        temporary.write_text(to_latex(summary))
