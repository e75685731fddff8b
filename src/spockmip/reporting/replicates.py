"""Seeds as replicates: a subject's scores averaged over training seeds, and the spread between seeds.

Tables and figures both start from these, so a subject is counted once however many seeds trained on it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from spockmip.settings.catalogue import METRICS


def average_over_seeds(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (variant, fold, subject) of a table with a ``seed`` column: each score's mean over the
    training seeds, so that subjects, not seeds, are what summaries count and tests pair. A score undefined
    for any seed is undefined for the subject (NaN), so a seed's empty prediction is not averaged away. A
    table without seeds is returned as it is."""
    if "seed" not in table:
        return table
    keys = [column for column in ("variant", "fold", "subject") if column in table]
    scores = [column for column in table.columns if column not in (*keys, "seed")]
    grouped = table.groupby(keys, sort=False)[scores]
    undefined = table[scores].isna().groupby([table[key] for key in keys], sort=False).any()
    return grouped.mean().mask(undefined).reset_index()


def seed_spread(table: pd.DataFrame, order: Sequence[str], metrics: Sequence[str] = METRICS) -> pd.DataFrame:
    """Per variant: ``seeds``, how many training seeds its rows come from, and ``{metric}_seed_sd``, the
    standard deviation (n - 1) over seeds of each seed's mean score (NaN with one seed): how much a
    variant's result moves when only the training's randomness changes."""
    rows = []
    for variant in order:
        scores = table[table["variant"] == variant]
        seeds = scores["seed"] if "seed" in scores else pd.Series(0, index=scores.index)
        per_seed = scores[list(metrics)].astype(float).groupby(seeds).mean()
        row: dict[str, object] = {"variant": variant, "seeds": len(per_seed)}
        for metric in metrics:
            row[f"{metric}_seed_sd"] = per_seed[metric].std(ddof=1) if len(per_seed) > 1 else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def seed_means(table: pd.DataFrame) -> pd.DataFrame:
    """Each (variant, seed)'s mean of every score over its rows (empty without a ``seed`` column)."""
    if "seed" not in table:
        return pd.DataFrame(columns=["variant", "seed"])
    scores = [column for column in table.columns if column in METRICS]
    return table.groupby(["variant", "seed"], sort=False)[scores].mean().reset_index()
