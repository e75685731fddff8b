"""Learning curves of every training run, one row of panels per variant."""

import pandas as pd

from spockmip.reporting.figures import save_learning_curves
from spockmip.runtime.jobs import start_job

start_job(snakemake.log[0], snakemake.threads)
params = snakemake.params
histories = {variant: {} for variant in params.variants}
for variant, run, path in zip(params.variants, params.runs, snakemake.input.histories, strict=True):
    histories[variant][run] = pd.read_csv(path)
save_learning_curves(histories, params.criteria, snakemake.output[0])
