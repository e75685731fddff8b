"""Gather every fold's metrics and write the summary tables (CSV, Markdown, LaTeX)."""

import pandas as pd

from spockmip.evaluation import write_metrics
from spockmip.jobs import start_job
from spockmip.tables import summarise, write_summary

start_job(snakemake.log[0], snakemake.threads)
table = pd.concat([pd.read_csv(path) for path in snakemake.input.metrics], ignore_index=True)
write_metrics(table, snakemake.output.metrics)
summary = summarise(table, snakemake.params.baselines, snakemake.params.order)
write_summary(summary, snakemake.output.csv, snakemake.output.markdown, snakemake.output.latex)
