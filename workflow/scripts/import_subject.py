"""Validate one subject of a local data set and copy it into the workflow's resources."""

from spockmip.runtime.jobs import start_job
from spockmip.stages.ingest import import_subject

start_job(snakemake.log[0], snakemake.threads)
import_subject(
    snakemake.params.source, snakemake.wildcards.subject, snakemake.output.image, snakemake.output.label
)
