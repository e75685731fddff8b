"""Gather per-subject metrics and write one summary table (CSV, Markdown, LaTeX, HTML) with its note.

Without params.statistics the table is descriptive; with it, each variant is compared with its baseline
over subjects (the rows must then be one per subject and variant).
"""

import pandas as pd

from spockmip.evaluation.scoring import write_metrics
from spockmip.reporting.statistics import StatisticsSettings
from spockmip.reporting.tables import summarise, table_note, write_summary
from spockmip.runtime.jobs import start_job

start_job(snakemake.log[0], snakemake.threads)
params = snakemake.params
table = pd.concat([pd.read_csv(path) for path in snakemake.input.metrics], ignore_index=True)
write_metrics(table, snakemake.output.metrics)
settings = StatisticsSettings(**params.statistics) if params.statistics else None
summary = summarise(table, params.order, params.baselines, settings)
output = snakemake.output
write_summary(
    summary,
    table_note(summary, params.observations, settings),
    output.csv,
    output.markdown,
    output.latex,
    output.html,
)
