"""Write one phantom subject (image + label) of the built-in data set."""

import logging

from spockmip.jobs import start_job
from spockmip.synthetic import PhantomConfig, describe, generate_phantom, subject_seed, write_phantom

start_job(snakemake.log[0], snakemake.threads)
settings = snakemake.params.phantom
config = PhantomConfig(
    shape=tuple(settings["shape"]), spacing_mm=(settings["spacing_mm"],) * 3, n_roots=settings["trees"]
)
phantom = generate_phantom(subject_seed(settings["seed"], snakemake.params.index), config)
write_phantom(phantom, snakemake.output.image, snakemake.output.label)
logging.info("%s", describe(phantom))
