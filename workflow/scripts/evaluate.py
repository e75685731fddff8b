"""Score one model's predictions: a row of every metric per subject, tagged with params.columns.

params.groups splits the subjects between the outputs (a fold model's test and validation subjects).
"""

from spockmip.evaluation import evaluate, write_metrics
from spockmip.jobs import start_job

start_job(snakemake.log[0], snakemake.threads)
params = snakemake.params
table = evaluate(params.subjects, params.predictions, snakemake.input.labels, params.orientation)
for position, (name, value) in enumerate(params.columns.items()):
    table.insert(position, name, value)
for subjects, output in zip(params.groups, snakemake.output, strict=True):
    write_metrics(table[table["subject"].isin(subjects)], output)
