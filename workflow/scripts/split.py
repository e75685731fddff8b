"""Persist the cross-validation split the DAG was built from."""

from spockmip.data.splits import make_split, write_split
from spockmip.runtime.jobs import start_job

start_job(snakemake.log[0], snakemake.threads)
write_split(make_split(**snakemake.params.protocol), snakemake.output[0])
