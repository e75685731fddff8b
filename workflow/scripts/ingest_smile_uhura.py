"""Validate the SMILE-UHURA release, copy it into the workflow's resources, record checksums."""

from spockmip.runtime.jobs import start_job
from spockmip.stages.ingest import ingest_release

start_job(snakemake.log[0], snakemake.threads)
subjects = snakemake.params.subjects
outputs = dict(zip(subjects, zip(snakemake.output.images, snakemake.output.labels, strict=True), strict=True))
ingest_release(snakemake.params.source, subjects, outputs, snakemake.output.manifest[0])
