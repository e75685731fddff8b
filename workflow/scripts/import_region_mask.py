"""Validate one subject's region mask of a local data set and copy it into the workflow's resources."""

from spockmip.runtime.jobs import start_job
from spockmip.stages.ingest import import_region_mask

start_job(snakemake.log[0], snakemake.threads)
import_region_mask(snakemake.params.source, snakemake.wildcards.subject, snakemake.output.mask)
