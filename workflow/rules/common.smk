"""Helpers shared by the rules: subjects, the split, per-variant parameters and the final targets.

Everything here is computed from the validated config at parse time, so the DAG (and a dry run) is known
before any job runs; the split rule persists the same split that the DAG was built from.
"""

import functools
import os
from pathlib import Path

from snakemake.logging import logger

from spockmip import provenance
from spockmip.sampling import resolve_sampling
from spockmip.splits import make_split
from spockmip.synthetic import subject_id
from spockmip.training import variant_settings

DATASET = config["dataset"]["name"]
VARIANTS = list(config["variants"])
FOLDS = list(range(config["split"]["folds"]))
RUNS = [(variant, fold) for variant in VARIANTS for fold in FOLDS]


@functools.cache
def library_fingerprint(script):
    """The spockmip code that ``workflow/scripts/<script>.py`` runs, as a ``params`` value.

    Snakemake reruns a job when its script changes but cannot see the library the script imports; with
    this parameter a change to a spockmip module reruns exactly the rules whose scripts import it. Several
    rules share a script (predict, evaluate, aggregate), and each parse of the Snakefile (once more per
    cluster job) would otherwise parse the same modules again for each of them.
    """
    return provenance.library_fingerprint(
        Path(workflow.basedir) / "workflow" / "scripts" / f"{script}.py"
    )


def all_subjects():
    """Subject ids: listed in the config for local data, numbered phantoms for the built-in data set."""
    dataset = config["dataset"]
    if dataset["source"] == "synthetic":
        return [subject_id(i) for i in range(dataset["synthetic"]["n_subjects"])]
    if not dataset["subjects"]:
        raise ValueError(
            "config dataset.subjects must list the subject ids when dataset.source is local"
        )
    return list(dataset["subjects"])


def local_data_path():
    """dataset.path, else the SPOCKMIP_DATA environment variable (checked when the data rule runs); a
    release the workflow downloads goes to resources/<dataset>/release when neither is set.
    """
    path = config["dataset"]["path"] or os.environ.get("SPOCKMIP_DATA", "")
    if not path and config["dataset"]["download"]:
        return f"resources/{DATASET}/release"
    return path


def check_download():
    """Only the SMILE-UHURA release can be downloaded; a download: true elsewhere would be ignored."""
    dataset = config["dataset"]
    if dataset["download"] and dataset["source"] != "smile_uhura":
        raise ValueError(
            f"config dataset.download: only the smile_uhura release can be downloaded, "
            f"dataset.source is {dataset['source']}"
        )


check_download()


SPLIT = make_split(
    all_subjects(),
    config["split"]["folds"],
    config["split"]["seed"],
    config["split"]["test_subjects"],
)
TEST_SUBJECTS = SPLIT["test"]
CV_SUBJECTS = sorted(set(all_subjects()) - set(TEST_SUBJECTS))


def check_baselines():
    """A variant's baseline must itself be a variant, or the summary cannot pair them."""
    for name, variant in config["variants"].items():
        baseline = variant.get("baseline")
        if baseline is not None and baseline not in config["variants"]:
            raise ValueError(
                f"config variants.{name}.baseline: {baseline!r} is not a variant"
            )


check_baselines()


def check_patch_geometry():
    """Patches and strides that could only fail after training are refused when the DAG is built.

    The volumes' size is known beforehand only for the built-in phantoms; for real data the same check
    runs when each volume is loaded.
    """
    inference = config["inference"]
    if any(s > p for s, p in zip(inference["strides"], inference["patch_size"])):
        raise ValueError(
            f"config inference.strides: {inference['strides']} exceed the window "
            f"inference.patch_size {inference['patch_size']}, which would leave voxels unpredicted"
        )
    if config["dataset"]["source"] != "synthetic":
        return
    shape = config["dataset"]["synthetic"]["shape"]
    for section in ("training", "inference"):
        patch = config[section]["patch_size"]
        if any(p > s for p, s in zip(patch, shape)):
            raise ValueError(
                f"config {section}.patch_size: {patch} is larger than the volumes "
                f"{shape} (dataset.synthetic.shape)"
            )


check_patch_geometry()


def check_released_pairing():
    """The released MIP pairing compares arrays of different axes element by element: cubic patches only."""
    for name in VARIANTS:
        settings = variant_settings(config, name)
        patch = settings["patch_size"]
        if settings["mip_axis"] != "none" and settings["mip_pairing"] == "released":
            if len(set(patch)) != 1:
                raise ValueError(
                    f"config variants.{name}: mip_pairing released needs a cubic training.patch_size, "
                    f"got {patch}; use mip_pairing: consistent"
                )


def training_params(wildcards):
    return variant_settings(config, wildcards.variant)


check_released_pairing()


def computation(variant):
    """The released-or-described choice of each setting of ``variant``, in one line."""
    settings = variant_settings(config, variant)
    sampler = resolve_sampling(settings["sampling"], settings["mip_axis"] != "none")
    parts = [
        f"orientation {config['dataset']['orientation']}",
        f"sampling {settings['sampling']} ({sampler})",
        (
            f"mip_pairing {settings['mip_pairing']}"
            if settings["mip_axis"] != "none"
            else ""
        ),
        (
            f"baseline_scale {settings['baseline_scale']}"
            if settings["mip_axis"] == "none"
            else ""
        ),
    ]
    if settings["deform"]:
        parts += [
            f"deformation {settings['deformation']}",
            f"labels {settings['deformation_label_mode']}",
            f"consistency {settings['consistency_target']}"
            f" x {settings['consistency_weight']:g}",
        ]
    return ", ".join(part for part in parts if part)


def report_computation():
    """Say once, also in a dry run, what each variant computes where released and described differ."""
    width = max(map(len, VARIANTS))
    lines = [f"  {name:<{width}}  {computation(name)}" for name in VARIANTS]
    logger.info("\n".join(["Computation per variant (docs/method.md):", *lines]))


if workflow.is_main_process:
    report_computation()


def released_inference():
    """The ``inference`` settings with the released blending and threshold, for the published weights.

    Overlaps averaged and Otsu on the whole volume, as the released code ran its networks
    (docs/method.md), whatever ``inference`` says for our own models; the window and strides (also
    parameters of the released code) come from the config. The published rules also feed the stored voxel
    order.
    """
    return {**config["inference"], "blend": "average", "threshold": "otsu"}


def runtime_by_attempt(stage):
    """Time limit (minutes) growing with each retry, so a job killed for time gets more on resubmission."""
    return lambda wildcards, attempt: config["resources"][stage]["runtime"] * attempt


def subject_images(subjects):
    return expand(
        "resources/{dataset}/images/{subject}.nii.gz", dataset=DATASET, subject=subjects
    )


def subject_labels(subjects):
    return expand(
        "resources/{dataset}/labels/{subject}.nii.gz", dataset=DATASET, subject=subjects
    )


def fold_outputs(pattern):
    """``pattern`` for every (variant, fold) of the run, in the order of ``RUNS``."""
    variants, folds = zip(*RUNS)
    return expand(
        pattern, zip, variant=variants, fold=folds, dataset=[DATASET] * len(RUNS)
    )


def validation_subjects(wildcards):
    """The subjects fold ``wildcards.fold`` validates on: together the folds cover each CV subject once."""
    return SPLIT["folds"][int(wildcards.fold)]["validation"]


def fold_models(wildcards):
    """Every fold's best weights of one variant: the members of its fold ensemble."""
    return expand(
        "results/{dataset}/{variant}/fold{fold}/model/best.pt",
        dataset=wildcards.dataset,
        variant=wildcards.variant,
        fold=FOLDS,
    )


def files_in(directory, subjects):
    """The segmentation of each subject inside a predictions folder."""
    return [Path(directory) / f"{subject}.nii.gz" for subject in subjects]


BASELINES = {name: v.get("baseline") for name, v in config["variants"].items()}
TABLE_FORMATS = ("csv", "md", "tex", "html")


def tables(*names):
    """Every rendering of the named summary tables: CSV, Markdown, LaTeX and the report's HTML."""
    return expand(
        "results/{dataset}/tables/{name}.{ext}",
        dataset=DATASET,
        name=names,
        ext=TABLE_FORMATS,
    )


def final_outputs():
    """The targets of the default run: the tables, the figures and the per-fold metrics behind them."""
    return [
        *(tables("published") if config["published_weights"] else []),
        *fold_outputs("results/{dataset}/{variant}/fold{fold}/metrics.csv"),
        *tables("summary", "cv_summary", "ensemble_summary"),
        *expand(
            "results/{dataset}/tables/{name}.csv",
            dataset=DATASET,
            name=("metrics", "cv_metrics", "ensemble_metrics"),
        ),
        *expand(
            "results/{dataset}/figures/{name}_boxplots.png",
            dataset=DATASET,
            name=("metrics", "cv_metrics", "ensemble_metrics"),
        ),
        *expand(
            "results/{dataset}/figures/overlays/{subject}.png",
            dataset=DATASET,
            subject=TEST_SUBJECTS,
        ),
        *expand("results/{dataset}/figures/learning_curves.png", dataset=DATASET),
    ]


def summary_outputs(metrics, summary, caption):
    """A summary rule's outputs: the gathered per-subject metrics and the table four ways; the HTML
    rendering is the one the report shows (as a table, with the caption)."""
    table = "results/{{dataset}}/tables/{name}.{ext}"
    return {
        "metrics": table.format(name=metrics, ext="csv"),
        "csv": table.format(name=summary, ext="csv"),
        "markdown": table.format(name=summary, ext="md"),
        "latex": table.format(name=summary, ext="tex"),
        "html": report(
            table.format(name=summary, ext="html"), caption=caption, category="Tables"
        ),
    }
