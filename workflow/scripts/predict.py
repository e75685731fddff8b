"""Segment subjects with one model, or with the mean probability of several (a fold ensemble).

params.groups lists what each set of weights segments: its ``weights`` (our .pt files, or a published
config + safetensors folder; several are averaged), its ``images`` and the segmentation of each
(``predictions``), and where the set's provenance record goes (``record``); all of them are checked,
computed and published together. params.inference holds every inference setting, null window geometry
meaning the checkpoint's.
"""

from spockmip.runtime.jobs import start_job
from spockmip.stages.predict import PredictionGroup, run_predictions

start_job(snakemake.log[0], snakemake.threads, device=None)
groups = [
    PredictionGroup.of(group["weights"], group["images"], group["predictions"], group["record"])
    for group in snakemake.params.groups
]
run_predictions(
    groups,
    snakemake.params.inference,
    orientation=snakemake.params.orientation,
    activation=snakemake.params.activation,
    threads=snakemake.threads,
)
