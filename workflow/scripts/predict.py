"""Segment subjects with one model, or with the mean probability of several (a fold ensemble).

params.weights lists the weights sources (our best.pt files, or a published config + safetensors folder);
params.predictions names each image's segmentation; params.inference holds every inference setting, null
window geometry meaning the checkpoint's.
"""

from pathlib import Path

from spockmip.jobs import start_job
from spockmip.stages.predict import PredictionJob, run_prediction

start_job(snakemake.log[0], snakemake.threads)
jobs = [
    PredictionJob(Path(image), Path(output))
    for image, output in zip(snakemake.input.images, snakemake.params.predictions, strict=True)
]
run_prediction(
    snakemake.params.weights,
    jobs,
    snakemake.params.inference,
    orientation=snakemake.params.orientation,
    activation=snakemake.params.activation,
    threads=snakemake.threads,
)
