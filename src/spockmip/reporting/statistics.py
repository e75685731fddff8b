"""Paired comparisons of a variant with its baseline that a reviewer can accept.

The unit of replication is the subject. Fold models scored on the same test volumes are not independent
observations (five folds on two test volumes are two subjects, not ten), so the pairs here are subjects
and a table that holds one subject twice for a variant is refused. Each comparison gives:

- the number of pairs n (printed beside every p-value);
- the median paired difference with a percentile-bootstrap 95 % interval, resampling subjects (seeded, so
  a rerun gives the same interval);
- the two-sided Wilcoxon signed-rank p-value, from the exact null distribution wherever it can be
  enumerated: the exact table without ties or zeros, all 2^n sign flips of the observed differences
  otherwise, the normal approximation only beyond that;
- Holm's step-down adjustment across all comparisons of one table (family-wise error rate);
- "n too small" instead of a p-value when n pairs cannot reach the significance level under any outcome:
  the smallest exact two-sided p is 2 / 2^n (every difference of one sign), which exceeds 0.05 for n < 6.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import PermutationMethod, wilcoxon

TOO_FEW = "n too small"
DECIMALS = 9  # metrics are stored with 6 significant digits: rounding noise must not break ties
ENUMERATION_LIMIT = 16  # 2^16 sign patterns: exact by enumeration, still instant


@dataclass(frozen=True)
class StatisticsSettings:
    """How comparisons are made; every field is a config key (``statistics`` section)."""

    alpha: float = 0.05
    bootstrap_samples: int = 10000
    confidence: float = 0.95
    seed: int = 2020
    metrics: tuple[str, ...] = ("dice", "cl_dice")

    def __post_init__(self) -> None:
        # A config gives a list; the settings stay hashable and immutable.
        object.__setattr__(self, "metrics", tuple(self.metrics))


def minimum_p_value(n: int) -> float:
    """Smallest two-sided p the exact signed-rank test can give with n non-zero pairs: 2 / 2^n, at most 1."""
    return min(1.0, 2.0 / 2.0**n)


def can_reach(n: int, alpha: float) -> bool:
    """Whether n pairs can reach ``alpha`` at all; below that a p-value only looks like evidence."""
    return n > 0 and minimum_p_value(n) <= alpha


def wilcoxon_p(differences: np.ndarray) -> float:
    """Two-sided signed-rank p-value; zero differences are dropped (Wilcoxon's convention), all zero → 1."""
    nonzero = differences[differences != 0]
    if len(nonzero) == 0:
        return 1.0
    ties = len(np.unique(np.abs(nonzero))) < len(nonzero)
    if not ties:
        method = "exact"
    elif len(nonzero) <= ENUMERATION_LIMIT:
        method = PermutationMethod(n_resamples=2 ** len(nonzero))
    else:
        method = "asymptotic"
    return float(wilcoxon(nonzero, method=method).pvalue)


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values, in the input order; NaN (untested) entries stay NaN."""
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full(p.shape, np.nan)
    tested = np.flatnonzero(~np.isnan(p))
    order = tested[np.argsort(p[tested], kind="stable")]
    m = len(order)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return adjusted


def bootstrap_median_interval(differences: np.ndarray, settings: StatisticsSettings) -> tuple[float, float]:
    """Percentile bootstrap interval of the median difference, resampling subjects with replacement."""
    rng = np.random.default_rng(settings.seed)
    draws = rng.integers(0, len(differences), size=(settings.bootstrap_samples, len(differences)))
    medians = np.median(differences[draws], axis=1)
    tail = 100 * (1 - settings.confidence) / 2
    low, high = np.percentile(medians, [tail, 100 - tail])
    return float(low), float(high)


def paired_scores(table: pd.DataFrame, variant: str, baseline: str, metric: str) -> pd.DataFrame:
    """``metric`` of both variants side by side, one row per subject both have (joined on subject id).

    A variant with more than one row for a subject (per-fold results) is an error: those rows are
    not independent pairs, and which one to pair would be arbitrary.
    """
    columns = {}
    for name in (variant, baseline):
        rows = table.loc[table["variant"] == name, ["subject", metric]]
        repeated = sorted(rows.loc[rows["subject"].duplicated(), "subject"].unique())
        if repeated:
            raise ValueError(
                f"{name} has several rows for subject(s) {', '.join(map(str, repeated))}: "
                "paired tests need one value per subject"
            )
        columns[name] = rows.set_index("subject")[metric].astype(float)
    joined = pd.concat(columns, axis=1, join="inner").dropna().sort_index()
    joined.columns = ["variant", "baseline"]
    return joined


def compare(
    table: pd.DataFrame,
    baselines: Mapping[str, str | None],
    order: Sequence[str],
    settings: StatisticsSettings,
) -> pd.DataFrame:
    """One row per (variant with a baseline, metric of ``settings.metrics``): n, median difference and its
    interval, p and Holm p.

    The difference is variant − baseline. Holm's adjustment spans every tested row of the result, i.e.
    all comparisons of the table this feeds.
    """
    rows = []
    for variant in order:
        baseline = baselines.get(variant)
        if not baseline:
            continue
        for metric in settings.metrics:
            pairs = paired_scores(table, variant, baseline, metric)
            differences = np.round((pairs["variant"] - pairs["baseline"]).to_numpy(), DECIMALS)
            n = len(differences)
            enough = can_reach(n, settings.alpha)
            low, high = bootstrap_median_interval(differences, settings) if enough else (np.nan, np.nan)
            rows.append(
                {
                    "variant": variant,
                    "baseline": baseline,
                    "metric": metric,
                    "n_pairs": n,
                    "median_difference": float(np.median(differences)) if n else np.nan,
                    "ci_low": low,
                    "ci_high": high,
                    "p": wilcoxon_p(differences) if enough else np.nan,
                    "test": "Wilcoxon signed-rank" if enough else TOO_FEW,
                }
            )
    result = pd.DataFrame(
        rows,
        columns=["variant", "baseline", "metric", "n_pairs", "median_difference", "ci_low", "ci_high", "p",
                 "test"],
    )  # fmt: skip
    result["p_holm"] = holm(result["p"].to_numpy())
    return result
