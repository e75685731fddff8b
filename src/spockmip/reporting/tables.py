"""The paper's tables rebuilt from per-subject metrics: one row per variant, written four ways.

A summary is descriptive (n, mean ± std and median of each metric) and, where the rows are independent
subjects, carries the paired comparison of each variant with its baseline
(:mod:`spockmip.reporting.statistics`). Per-fold test results are only described: the fold models share their
test subjects, so testing them would count one subject several times. Every written table carries a note
saying what its numbers are over and, when it has tests, how they were made.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import pandas as pd

from spockmip.errors import DataError
from spockmip.evaluation.betti_matching import BettiMatchingProtocol
from spockmip.evaluation.metrics import BETTI_MATCHING_KEYS, POSTPROCESSED, PRESENTATION, SCORE_KEYS
from spockmip.evaluation.postprocessing import MinSizeChoice
from spockmip.files.outputs import atomic_path
from spockmip.reporting.replicates import average_over_seeds, seed_spread
from spockmip.reporting.statistics import TOO_FEW, StatisticsSettings, compare
from spockmip.settings.catalogue import METRICS

# The metrics a summary shows: those statistics.metrics may compare, then the post-processed Dice, clDice
# and thin-vessel continuity where the table has post-processed scores (the rest stays in the CSVs).
SUMMARY_METRICS: tuple[str, ...] = METRICS
POSTPROCESSED_SUMMARY_METRICS: tuple[str, ...] = tuple(
    POSTPROCESSED + metric for metric in ("dice", "cl_dice", "thin_recall", "thin_gaps")
)
# The columns that name one row of a gathered metrics table.
ROW_KEYS = ("variant", "fold", "seed", "subject")


def gather_metrics(raw: Sequence[str | Path], postprocessed: Sequence[str | Path] = ()) -> pd.DataFrame:
    """The per-subject tables ``raw`` in one, with the post-processed scores of the same rows beside
    them where ``postprocessed`` tables are given (:func:`with_postprocessed`)."""
    table = pd.concat([pd.read_csv(path) for path in raw], ignore_index=True)
    if not postprocessed:
        return table
    return with_postprocessed(
        table, pd.concat([pd.read_csv(path) for path in postprocessed], ignore_index=True)
    )


def read_choices(
    runs: Sequence[tuple[str, int]], paths: Sequence[str | Path]
) -> list[tuple[str, int, MinSizeChoice]]:
    """Each post-processed (variant, seed) of ``runs`` with the choice of k read from ``paths``."""
    return [
        (variant, int(seed), MinSizeChoice.from_json(Path(path).read_text(encoding="utf-8")))
        for (variant, seed), path in zip(runs, paths, strict=True)
    ]


def summary_metrics(table: pd.DataFrame) -> tuple[str, ...]:
    """The metrics a summary of ``table`` (per-subject scores, or a summary) shows."""
    present = set(table.columns) | {column.removesuffix("_mean") for column in table.columns}
    return SUMMARY_METRICS + tuple(metric for metric in POSTPROCESSED_SUMMARY_METRICS if metric in present)


def with_postprocessed(raw: pd.DataFrame, postprocessed: pd.DataFrame) -> pd.DataFrame:
    """``raw`` with each metric of the same rows scored after post-processing beside it (``pp_dice``...).

    Both tables must hold exactly the same rows (variant, fold, seed, subject): a post-processed score
    paired with another row's raw one would be silently wrong.
    """
    keys = [column for column in ROW_KEYS if column in raw]
    scores = [key for key in SCORE_KEYS if key in postprocessed]
    renamed = postprocessed.rename(columns={key: POSTPROCESSED + key for key in scores})
    merged = raw.merge(renamed[keys + [POSTPROCESSED + k for k in scores]], on=keys, how="outer",
                       indicator=True)  # fmt: skip
    unmatched = merged[merged["_merge"] != "both"]
    if len(unmatched):
        row = unmatched.iloc[0]
        side = "raw" if row["_merge"] == "left_only" else "post-processed"
        raise DataError(
            f"only the {side} scores have the row {', '.join(f'{k} {row[k]}' for k in keys)}: raw and "
            "post-processed tables must score the same predictions"
        )
    return merged.drop(columns="_merge")


COMPARISON_FIELDS = ("n_pairs", "median_difference", "ci_low", "ci_high", "p", "p_holm", "test")
# LaTeX's special characters, and what pdflatex cannot typeset from UTF-8 alone; replaced in one pass.
LATEX_REPLACEMENTS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
    "β": r"$\beta$",
    "Δ": r"$\Delta$",
    "–": "--",
    "−": "$-$",
}
LATEX_SPECIAL = re.compile("|".join(re.escape(character) for character in LATEX_REPLACEMENTS))


def describe(table: pd.DataFrame, order: Sequence[str], baselines: Mapping[str, str | None]) -> pd.DataFrame:
    """One row per variant (in ``order``): baseline, n rows, mean/std/median of each summary metric over
    its defined values, and ``{metric}_undefined``, how many were NaN (a surface distance with exactly one
    mask empty) and so left out."""
    missing = [column for column in ("variant", "subject", *SUMMARY_METRICS) if column not in table]
    if missing:
        raise ValueError(f"metrics table lacks columns: {', '.join(missing)}")
    rows = []
    for variant in order:
        scores = table[table["variant"] == variant]
        baseline = baselines.get(variant) or ""
        row: dict[str, object] = {"variant": variant, "baseline": baseline, "n": len(scores)}
        for metric in summary_metrics(table):
            values = scores[metric].astype(float)
            row[f"{metric}_mean"] = values.mean()
            row[f"{metric}_std"] = values.std(ddof=1) if len(values) > 1 else math.nan
            row[f"{metric}_median"] = values.median()
            row[f"{metric}_undefined"] = int(values.isna().sum())
        rows.append(row)
    return pd.DataFrame(rows)


def summarise(
    table: pd.DataFrame,
    order: Sequence[str],
    baselines: Mapping[str, str | None],
    settings: StatisticsSettings | None = None,
) -> pd.DataFrame:
    """:func:`describe` of the scores averaged over seeds (:func:`average_over_seeds`) with the
    :func:`seed_spread` columns, plus ``{metric}_{n_pairs, median_difference, ci_low, ci_high, p, p_holm,
    test}`` per metric of ``settings.metrics`` when ``settings`` is given (the averaged rows must then be
    one per subject and variant)."""
    averaged = average_over_seeds(table)
    spread = seed_spread(table, order, summary_metrics(table))
    summary = describe(averaged, order, baselines).merge(spread, on="variant", how="left")
    if settings is None:
        return summary
    families = [settings]
    if POSTPROCESSED + settings.metrics[0] in table:
        families.append(replace(settings, metrics=tuple(POSTPROCESSED + m for m in settings.metrics)))
    for family in families:
        comparisons = compare(averaged, baselines, order, family)
        for metric in family.metrics:
            part = comparisons[comparisons["metric"] == metric].set_index("variant")[list(COMPARISON_FIELDS)]
            part.columns = [f"{metric}_{field}" for field in COMPARISON_FIELDS]
            summary = summary.join(part, on="variant")
            summary[f"{metric}_n_pairs"] = summary[f"{metric}_n_pairs"].astype("Int64")
    return summary


def tested_metrics(summary: pd.DataFrame) -> list[str]:
    """The metrics a summary carries comparisons for, in column order."""
    return [column.removesuffix("_p_holm") for column in summary if column.endswith("_p_holm")]


def _spread_cell(row: pd.Series, metric: str) -> str:
    mean, std, median = (row[f"{metric}_{s}"] * PRESENTATION[metric].scale for s in ("mean", "std", "median"))
    spread = "" if math.isnan(std) else f" ± {std:.2f}"
    return f"{mean:.2f}{spread} ({median:.2f})"


def _replicated(summary: pd.DataFrame) -> bool:
    """Whether any variant's scores come from several training seeds (the seed columns are shown)."""
    return "seeds" in summary and bool((summary["seeds"] > 1).any())


def _seed_cell(row: pd.Series, metric: str) -> str:
    spread = row[f"{metric}_seed_sd"] * PRESENTATION[metric].scale
    return "" if math.isnan(spread) else f"{spread:.2f}"


def _difference_cell(row: pd.Series, metric: str) -> str:
    if not row["baseline"]:
        return "–"
    scale = PRESENTATION[metric].scale
    median = row[f"{metric}_median_difference"] * scale
    if math.isnan(row[f"{metric}_ci_low"]):
        return f"{median:+.2f}"
    return f"{median:+.2f} [{row[f'{metric}_ci_low'] * scale:+.2f}, {row[f'{metric}_ci_high'] * scale:+.2f}]"


def _p_cell(row: pd.Series, metric: str) -> str:
    if not row["baseline"]:
        return "–"
    n = int(row[f"{metric}_n_pairs"])
    if row[f"{metric}_test"] == TOO_FEW:
        return f"{TOO_FEW} (n={n})"
    return f"{row[f'{metric}_p']:.3g} (n={n})"


def _holm_cell(row: pd.Series, metric: str) -> str:
    value = row.get(f"{metric}_p_holm", math.nan)
    return "–" if not row["baseline"] or math.isnan(value) else f"{value:.3g}"


def display_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary as the text cells a reader sees (percentages for overlap scores, p with its n)."""
    baselines = summary["baseline"].fillna("")
    cells = pd.DataFrame(
        {"Variant": summary["variant"], "Baseline": baselines.replace("", "–"),
         "n": summary["n"].astype(int).astype(str)}
    )  # fmt: skip
    rows = [row for _, row in summary.assign(baseline=baselines).iterrows()]
    replicated = _replicated(summary)
    if replicated:
        cells["Seeds"] = summary["seeds"].astype(int).astype(str)
    for metric in summary_metrics(summary):
        header = PRESENTATION[metric].header
        cells[header] = [_spread_cell(row, metric) for row in rows]
        if replicated:
            cells[f"{header} seed sd"] = [_seed_cell(row, metric) for row in rows]
    for metric in tested_metrics(summary):
        cells[f"Δ {PRESENTATION[metric].header} [CI]"] = [_difference_cell(row, metric) for row in rows]
        cells[f"p {_header_without_percent(metric)} (n)"] = [_p_cell(row, metric) for row in rows]
        cells[f"Holm p {_header_without_percent(metric)}"] = [_holm_cell(row, metric) for row in rows]
    return cells


def _header_without_percent(metric: str) -> str:
    """A metric's header without its percent sign, where what follows is no percentage (a p value, which
    way is better)."""
    return PRESENTATION[metric].header.removesuffix(" %")


def table_note(
    summary: pd.DataFrame,
    observations: str,
    settings: StatisticsSettings | None,
    postprocessing: str = "",
    topology: str = "",
) -> str:
    """What the numbers are over and, for a table with tests, the method (for a caption or footnote);
    ``postprocessing`` (:func:`postprocessing_text`) says how the PP columns were made and ``topology``
    (:func:`topology_text`) how the Betti errors and Betti matching errors count."""
    metrics = summary_metrics(summary)
    extra = "".join(f" {text}" for text in (topology, postprocessing) if text)
    note = (
        f"Mean ± std (median) over {observations}.{_seeds_text(summary)} {_direction_text(metrics)}"
        f"{_undefined_text(summary, metrics)}{extra}"
    )
    if settings is None:
        return note
    confidence = round(100 * settings.confidence)
    return (
        f"{note} Δ: median paired difference (variant − baseline, percentage points for % metrics) over "
        f"subjects paired by subject id, with a percentile-bootstrap {confidence} % interval "
        f"({settings.bootstrap_samples} resamples of subjects, seed {settings.seed}). p: two-sided "
        "Wilcoxon signed-rank test, exact null distribution (all sign patterns enumerated when "
        f"differences tie; zero differences dropped), n = number of subject pairs. {_holm_text(summary)} "
        f"'{TOO_FEW}': with n pairs the smallest attainable exact p, 2/2^n, exceeds {settings.alpha:g}, so "
        "no test is reported."
    )


def topology_text(table: pd.DataFrame, protocol: BettiMatchingProtocol | None) -> str:
    """Which connectivity each topological count uses, and the Betti matching error's protocol where the
    gathered ``table`` holds it."""
    text = "β0/β1 errors: 26-connected foreground, 6-connected background."
    if protocol is None or BETTI_MATCHING_KEYS[0] not in table:
        return text
    return (
        f"{text} Per-subject CSVs also hold the Betti matching error (betti_matching_error_0/1: features of "
        "either mask without a spatially matching one in the other, Betti-Matching-3D), with 6-connected "
        f"foreground and 26-connected background: {protocol.describe()}"
    )


def postprocessing_text(choices: Sequence[tuple[str, int, MinSizeChoice]], chosen_on_these: bool) -> str:
    """How the PP columns were made: the rule, each (variant, seed)'s k and the metric that chose it;
    ``chosen_on_these``: the table scores the very subjects k was chosen on, which flatters PP."""
    if not choices:
        return ""
    first = choices[0][2]
    seeds = len({seed for _, seed, _ in choices}) > 1
    chosen = ", ".join(
        f"{variant}{f' (seed {seed})' if seeds else ''} {choice.min_size}"
        for variant, seed, choice in choices
    )
    candidates = ", ".join(map(str, first.candidates))
    mask = "the prediction masked by the subject's region mask, then " if first.region_mask else ""
    text = (
        f"PP: post-processed predictions ({mask}26-connected components below k voxels removed), k "
        f"chosen per variant and seed from {{{candidates}}} by the best mean "
        f"{PRESENTATION[first.metric].name} over the cross-validation subjects (ties: the smaller k): "
        f"{chosen}. The raw columns are the primary "
        "results."
    )
    if chosen_on_these:
        text += " k was chosen on these same subjects, so the PP scores here are optimistic."
    return text


def _seeds_text(summary: pd.DataFrame) -> str:
    """How seed replicates enter the numbers (nothing with one seed)."""
    if not _replicated(summary):
        return ""
    seeds = int(summary["seeds"].max())
    return (
        f" Each score is the mean over {seeds} training seeds (a seed changes the training only; a score "
        "undefined for any seed is undefined), so n counts subjects. Seed sd: standard deviation over "
        "seeds of each seed's mean score, the spread that training randomness alone gives."
    )


def _direction_text(metrics: Sequence[str]) -> str:
    higher = [_header_without_percent(m) for m in metrics if PRESENTATION[m].higher_is_better]
    lower = [_header_without_percent(m) for m in metrics if not PRESENTATION[m].higher_is_better]
    return f"Higher is better: {', '.join(higher)}; lower is better: {', '.join(lower)}."


def _undefined_text(summary: pd.DataFrame, metrics: Sequence[str]) -> str:
    """Which metrics had undefined values, why, and how many per variant, so that a mean over fewer
    subjects is not misread (a method that empties the thin bin by drawing vessels fatter shows here)."""
    parts = []
    for metric in metrics:
        counts = summary.set_index("variant")[f"{metric}_undefined"].astype(int)
        if counts.sum():
            presentation = PRESENTATION[metric]
            per_variant = ", ".join(f"{variant} {count}" for variant, count in counts.items() if count)
            parts.append(f"{_header_without_percent(metric)} ({presentation.undefined}): {per_variant}")
    if not parts:
        return ""
    return f" Undefined, so left out, value(s) per variant: {'; '.join(parts)}."


def _holm_text(summary: pd.DataFrame) -> str:
    """Holm's families: the raw metrics' comparisons, and the post-processed ones apart."""
    tested = tested_metrics(summary)
    families = {
        "raw": [m for m in tested if not m.startswith(POSTPROCESSED)],
        "post-processed (PP)": [m for m in tested if m.startswith(POSTPROCESSED)],
    }
    counts = {
        name: int(sum(summary[f"{m}_p"].notna().sum() for m in members))
        for name, members in families.items()
        if members
    }
    if not any(counts.values()):
        return "Holm p: none, as no comparison has enough pairs to be tested."
    if len(counts) == 1:
        return (
            f"Holm p: Holm's adjustment across the {sum(counts.values())} tested comparison(s) of this table."
        )
    spans = " and ".join(f"the {count} tested {name} comparison(s)" for name, count in counts.items())
    return f"Holm p: Holm's adjustment within each family, {spans}, each a family of its own."


def latex_escape(text: str) -> str:
    """``text`` typeset literally by LaTeX (one pass, so a replacement is never escaped again)."""
    return LATEX_SPECIAL.sub(lambda match: LATEX_REPLACEMENTS[match.group(0)], text)


def to_markdown(cells: pd.DataFrame, note: str) -> str:
    """GitHub Markdown table (pipes inside cells escaped) followed by the note."""
    escaped = cells.map(lambda text: text.replace("|", r"\|"))
    escaped.columns = [column.replace("|", r"\|") for column in cells.columns]
    return escaped.to_markdown(index=False) + "\n\n" + note + "\n"


def to_latex(cells: pd.DataFrame, note: str) -> str:
    """A booktabs ``table`` with the note as caption; every cell and header LaTeX-escaped."""
    styler = cells.style.hide(axis="index").format(latex_escape).format_index(latex_escape, axis=1)
    return styler.to_latex(
        hrules=True, caption=latex_escape(note), column_format="ll" + "r" * (cells.shape[1] - 2)
    )


def to_html(cells: pd.DataFrame, note: str) -> str:
    """A self-contained HTML page of the table (how the Snakemake report shows it), note as caption."""
    # A fixed id (Styler draws a random one) keeps a rebuilt table byte-identical.
    styler = cells.style.set_uuid("summary").hide(axis="index").set_caption(html.escape(note))
    styler = styler.format(escape="html").format_index(escape="html", axis=1)
    styler = styler.set_table_styles(
        [
            {"selector": "", "props": "border-collapse: collapse; font-family: sans-serif; font-size: 0.9em"},
            {"selector": "th, td", "props": "border-bottom: 1px solid #ccc; padding: 4px 8px"},
            {"selector": "caption", "props": "caption-side: bottom; text-align: left; padding-top: 8px"},
        ]
    )
    return styler.to_html(doctype_html=True)


def write_summary(
    summary: pd.DataFrame,
    note: str,
    csv_path: str | Path,
    markdown_path: str | Path,
    latex_path: str | Path,
    html_path: str | Path,
) -> None:
    """CSV (full precision) for analysis, Markdown for the README, LaTeX for a paper, HTML for the report."""
    with atomic_path(csv_path) as temporary:
        summary.to_csv(temporary, index=False, float_format="%.6g")
    cells = display_table(summary)
    for path, render in ((markdown_path, to_markdown), (latex_path, to_latex), (html_path, to_html)):
        with atomic_path(path) as temporary:
            temporary.write_text(render(cells, note), encoding="utf-8")
