"""Write one phantom subject (image + label) of the built-in data set."""

from spockmip.runtime.jobs import start_job
from spockmip.stages.synthesize import synthesize_subject

start_job(snakemake.log[0], snakemake.threads)
synthesize_subject(
    snakemake.params.phantom, snakemake.params.index, snakemake.output.image, snakemake.output.label
)
