"""Learning curves of every (variant, fold)."""

import pandas as pd

from spockmip.figures import save_learning_curves
from spockmip.jobs import start_job

start_job(snakemake.log[0], snakemake.threads)
histories = {
    name: pd.read_csv(path)
    for name, path in zip(snakemake.params.names, snakemake.input.histories, strict=True)
}
save_learning_curves(histories, snakemake.output[0])
