"""Score one model's predictions: a row of every metric per subject, tagged with params.columns.

params.groups splits the subjects between the outputs (a fold model's test and validation subjects).
"""

from spockmip.evaluation.scoring import ScoringSettings
from spockmip.runtime.jobs import start_job
from spockmip.stages.evaluate import run_evaluation

start_job(snakemake.log[0], snakemake.threads)
params = snakemake.params
run_evaluation(
    params.subjects,
    params.predictions,
    snakemake.input.labels,
    dict(zip(snakemake.output, params.groups, strict=True)),
    params.orientation,
    params.columns,
    ScoringSettings.of(params.evaluation),
)
