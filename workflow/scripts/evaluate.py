"""Score one model's predictions: a row of every metric per subject, tagged with params.columns."""

from spockmip.evaluation import evaluate, write_metrics
from spockmip.jobs import start_job

start_job(snakemake.log[0], snakemake.threads)
table = evaluate(snakemake.params.subjects, snakemake.params.predictions, snakemake.input.labels)
for position, (name, value) in enumerate(snakemake.params.columns.items()):
    table.insert(position, name, value)
write_metrics(table, snakemake.output[0])
