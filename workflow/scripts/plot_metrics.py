"""Box plots of the continuity and overlap metrics across variants."""

import pandas as pd

from spockmip.figures import save_metric_boxplots
from spockmip.jobs import start_job

start_job(snakemake.log[0], snakemake.threads)
table = pd.read_csv(snakemake.input.metrics)
save_metric_boxplots(
    table, snakemake.params.metrics, snakemake.params.order, snakemake.output[0], snakemake.params.title
)
