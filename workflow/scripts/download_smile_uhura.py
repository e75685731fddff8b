"""Download the SMILE-UHURA release from Synapse (token from SYNAPSE_AUTH_TOKEN) for ingestion to read."""

from spockmip.datasets.download import download_release
from spockmip.runtime.jobs import start_job

start_job(snakemake.log[0], snakemake.threads)
download_release(snakemake.output.release)
