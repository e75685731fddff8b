"""Score one (variant, fold)'s test predictions: a row of every metric per subject."""

from spockmip.evaluation import evaluate, write_metrics
from spockmip.jobs import start_job

start_job(snakemake.log[0], snakemake.threads)
table = evaluate(snakemake.params.subjects, snakemake.input.predictions, snakemake.input.labels)
table.insert(0, "fold", snakemake.params.fold)
table.insert(0, "variant", snakemake.params.variant)
write_metrics(table, snakemake.output[0])
