"""Post-process one (variant, seed)'s predictions with the k its cross-validation predictions choose, and
score them (params.sets: one entry per metrics table)."""

from spockmip.evaluation.postprocessing import PostprocessingSettings, PredictionSet
from spockmip.evaluation.scoring import ScoringSettings
from spockmip.runtime.jobs import start_job
from spockmip.stages.postprocess import run_postprocessing

start_job(snakemake.log[0], snakemake.threads)
params = snakemake.params
run_postprocessing(
    [PredictionSet.of(entry) for entry in params.sets],
    snakemake.output.choice,
    PostprocessingSettings.of(params.postprocessing),
    params.regions,
    params.orientation,
    ScoringSettings.of(params.evaluation),
)
