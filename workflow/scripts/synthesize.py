"""Write one phantom subject (image + label) of the built-in data set."""

from spockmip.jobs import start_job
from spockmip.synthetic import PhantomConfig, generate_phantom, subject_seed, write_phantom

start_job(snakemake.log[0], snakemake.threads)
settings = snakemake.params.phantom
config = PhantomConfig(shape=tuple(settings["shape"]), spacing_mm=(settings["spacing_mm"],) * 3)
phantom = generate_phantom(subject_seed(settings["seed"], snakemake.params.index), config)
write_phantom(phantom, snakemake.output.image, snakemake.output.label)
