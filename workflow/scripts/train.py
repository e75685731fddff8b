"""Train one (variant, fold); rerunning a killed job resumes from its state folder."""

from pathlib import Path

from spockmip.data.splits import read_fold
from spockmip.files.volumes import subject_name
from spockmip.runtime.jobs import start_job
from spockmip.settings.rules import config_key
from spockmip.stages.train import run_training

start_job(snakemake.log[0], snakemake.threads, device=None)
params = snakemake.params
train, validation = read_fold(snakemake.input.split, params.fold)
pairs = {
    subject_name(Path(image)): (Path(image), Path(label))
    for image, label in zip(snakemake.input.images, snakemake.input.labels, strict=True)
}
run_training(
    pairs,
    train,
    validation,
    params.training,
    Path(snakemake.output.best).parent,
    state_dir=Path(params.state_dir),
    orientation=params.orientation,
    fold=params.fold,
    threads=snakemake.threads,
    progress=False,
    spell=config_key(params.variant, params.variant_keys),
    given=params.variant_keys,
    settings_files=[Path(snakemake.input.split)],
    roles_source=f"{snakemake.input.split} fold {params.fold}",
)
