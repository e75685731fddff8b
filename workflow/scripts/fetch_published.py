"""Fetch one published model's config and weights (HF cache; offline under HF_HUB_OFFLINE=1)."""

from pathlib import Path

from spockmip.networks.weights import fetch_published
from spockmip.runtime.jobs import start_job

start_job(snakemake.log[0], snakemake.threads)
fetch_published(snakemake.params.repo, snakemake.params.revision, Path(snakemake.output.config).parent)
