"""Download the SMILE-UHURA release from Synapse (token from SYNAPSE_AUTH_TOKEN) for ingestion to read."""

from spockmip.download import download_release
from spockmip.jobs import start_job

start_job(snakemake.log[0], snakemake.threads)
download_release(snakemake.output.release)
