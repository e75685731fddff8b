"""Persist the cross-validation split the DAG was built from."""

from spockmip.jobs import start_job
from spockmip.splits import make_split, write_split

start_job(snakemake.log[0], snakemake.threads)
write_split(make_split(**snakemake.params.protocol), snakemake.output[0])
