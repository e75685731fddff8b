"""Box plots of the continuity and overlap metrics across variants (subjects averaged over seeds, and each
seed's mean beside them)."""

import pandas as pd

from spockmip.reporting.figures import save_metric_boxplots
from spockmip.reporting.replicates import average_over_seeds, seed_means
from spockmip.runtime.jobs import start_job

start_job(snakemake.log[0], snakemake.threads)
table = pd.read_csv(snakemake.input.metrics)
params = snakemake.params
averaged, means = average_over_seeds(table), seed_means(table)
save_metric_boxplots(averaged, params.metrics, params.order, snakemake.output[0], params.title, means)
