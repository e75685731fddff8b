"""Train one (variant, fold); rerunning a killed job resumes from its state folder."""

from pathlib import Path

from spockmip.data import load_subject, subject_name
from spockmip.jobs import start_job
from spockmip.splits import read_split
from spockmip.training import TrainingPaths, train, training_config_from_settings

start_job(snakemake.log[0], snakemake.threads)
config = training_config_from_settings(snakemake.params.training)
fold = read_split(snakemake.input.split)["folds"][snakemake.params.fold]
pairs = {
    subject_name(Path(image)): (image, label)
    for image, label in zip(snakemake.input.images, snakemake.input.labels, strict=True)
}


def subjects(names: list[str]) -> list:
    return [
        load_subject(
            *pairs[name],
            config.patch_size,
            config.loss.volume_target_axes,
            name,
            snakemake.params.orientation,
        )
        for name in names
    ]


paths = TrainingPaths(
    Path(snakemake.output.best), Path(snakemake.output.history), Path(snakemake.params.state_dir)
)
train(
    subjects(fold["train"]),
    subjects(fold["validation"]),
    config,
    paths,
    threads=snakemake.threads,
    progress=False,
    fold=snakemake.params.fold,
)
