"""Persist the cross-validation split the DAG was built from."""

from spockmip.jobs import start_job
from spockmip.splits import make_split, write_split

start_job(snakemake.log[0], snakemake.threads)
params = snakemake.params
write_split(make_split(params.subjects, params.folds, params.seed, params.test_subjects), snakemake.output[0])
