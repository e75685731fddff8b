"""Helpers shared by the rules: subjects, the split, per-variant parameters and the final targets.

Everything here is computed from the validated config at parse time, so the DAG (and a dry run) is known
before any job runs; the split rule persists the same split that the DAG was built from. The config is read
through ``SETTINGS`` (:class:`spockmip.settings.workflow.WorkflowSettings`) only, which also holds every rule between
settings: none is re-implemented here.
"""

import functools
import os
import re
from pathlib import Path

from snakemake.logging import logger

from spockmip.runtime import provenance
from spockmip.evaluation.metrics import BOXPLOT_METRICS
from spockmip.settings.rules import describe_computation
from spockmip.data.splits import make_split
from spockmip.datasets.synthetic import subject_id

DATASET = SETTINGS.dataset_name
VARIANTS = SETTINGS.variants
FOLDS = list(range(SETTINGS.folds))
SEEDS = SETTINGS.seeds
# Seeds are replicates: with several, each run's files gain a seed level; with one, a run's paths are those
# of a single training.
REPLICATED = len(SEEDS) > 1
RUNS = [
    (variant, fold, seed) for variant in VARIANTS for fold in FOLDS for seed in SEEDS
]


def one_of(values, part):
    """A wildcard constraint that accepts exactly one of ``values``, whose characters ``part`` matches.

    Snakemake places a constraint in a group of the whole file pattern, which it matches to the end, but it
    checks the wildcards a job is given (``--target-jobs``, a consumer's own) with ``re.match``, which only
    anchors the start; a value must therefore not go on with another character of its kind (seed 20201 is
    not seed 2020).
    """
    return f"(?:{'|'.join(re.escape(str(value)) for value in values)})(?!{part})"


def per_seed(*parts, suffix=""):
    """A path of ``parts`` with a ``seed{seed}`` level when training has several seeds, ``suffix`` (a file
    extension) on its last part: per-run logs and benchmarks are named so."""
    levels = [*parts, "seed{seed}"] if REPLICATED else list(parts)
    levels[-1] = f"{levels[-1]}{suffix}"
    return str(Path(*levels))


def job_log(stage, *levels):
    """A job's log: logs/{dataset}/<stage>/<levels>[/seed{seed}].log."""
    return per_seed("logs", "{dataset}", stage, *levels, suffix=".log")


def job_benchmark(stage, *levels):
    """A job's Snakemake benchmark file: results/{dataset}/benchmarks/<stage>/<levels>[/seed{seed}].tsv."""
    return per_seed("results", "{dataset}", "benchmarks", stage, *levels, suffix=".tsv")


def run_path(*parts):
    """A file of one training run: results/{dataset}/{variant}/fold{fold}[/seed{seed}]/<parts>."""
    return str(
        Path(per_seed("results", "{dataset}", "{variant}", "fold{fold}"), *parts)
    )


def ensemble_path(*parts):
    """A file of one fold ensemble: results/{dataset}/{variant}/ensemble[/seed{seed}]/<parts>."""
    return str(Path(per_seed("results", "{dataset}", "{variant}", "ensemble"), *parts))


def postprocessed_path(*parts):
    """A file of one (variant, seed)'s post-processing, which covers all its folds and its ensemble:
    results/{dataset}/{variant}/postprocessed[/seed{seed}]/<parts>."""
    return str(
        Path(per_seed("results", "{dataset}", "{variant}", "postprocessed"), *parts)
    )


def run_labels():
    """How the report labels one training run's files: variant and fold, and the seed with several."""
    labels = {"variant": "{variant}", "fold": "{fold}"}
    return {**labels, "seed": "{seed}"} if REPLICATED else labels


def run_label(fold, seed):
    """How figures name one training run: ``fold 0``, or ``fold 0, seed 7`` with several seeds."""
    return f"fold {fold}, seed {seed}" if REPLICATED else f"fold {fold}"


def run_seed(wildcards):
    """The training seed of a job's run (or fold ensemble)."""
    return int(wildcards.seed) if REPLICATED else SEEDS[0]


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
    if SETTINGS.source == "synthetic":
        return [subject_id(i) for i in range(SETTINGS.phantoms["n_subjects"])]
    return list(SETTINGS.dataset["subjects"])


def local_data_path():
    """dataset.path, else the SPOCKMIP_DATA environment variable (checked when the data rule runs); a
    release the workflow downloads goes to resources/<dataset>/release when neither is set.
    """
    path = SETTINGS.dataset["path"] or os.environ.get("SPOCKMIP_DATA", "")
    if not path and SETTINGS.dataset["download"]:
        return f"resources/{DATASET}/release"
    return path


SPLIT = make_split(
    all_subjects(),
    SETTINGS.folds,
    SETTINGS.split["seed"],
    SETTINGS.split["test_subjects"],
)
TEST_SUBJECTS = SPLIT["test"]
CV_SUBJECTS = sorted(set(all_subjects()) - set(TEST_SUBJECTS))


def training_params(wildcards):
    return SETTINGS.training(wildcards.variant, run_seed(wildcards))


def training_priority(wildcards):
    """Trainings before the jobs that only read their results, DS6's (two network passes a step) first:
    the longest jobs start early, so none is left running alone on a workstation at the end.
    """
    return 2 if SETTINGS.training(wildcards.variant)["deform"] else 1


def report_computation():
    """Say once, also in a dry run, what each variant computes where released and described differ: the
    data set's voxel order, then the variant's settings as its trainings log them."""
    width = max(map(len, VARIANTS))
    lines = [
        f"  {name:<{width}}  orientation {SETTINGS.orientation}, "
        f"{describe_computation(SETTINGS.training(name))}"
        for name in VARIANTS
    ]
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
    return {**SETTINGS.inference, "blend": "average", "threshold": "otsu"}


def runtime_by_attempt(stage):
    """Time limit (minutes) growing with each retry, so a job killed for time gets more on resubmission."""
    return lambda wildcards, attempt: SETTINGS.resources(stage)["runtime"] * attempt


def subject_images(subjects):
    return expand(
        "resources/{dataset}/images/{subject}.nii.gz", dataset=DATASET, subject=subjects
    )


def subject_labels(subjects):
    return expand(
        "resources/{dataset}/labels/{subject}.nii.gz", dataset=DATASET, subject=subjects
    )


def subject_masks(subjects):
    return expand(
        "resources/{dataset}/masks/{subject}.nii.gz", dataset=DATASET, subject=subjects
    )


def fold_outputs(*parts):
    """The file ``parts`` of every training run, in the order of ``RUNS``."""
    variants, folds, seeds = zip(*RUNS)
    return expand(
        run_path(*parts),
        zip,
        variant=variants,
        fold=folds,
        seed=seeds,
        dataset=[DATASET] * len(RUNS),
    )


def postprocessed_fold_outputs(*parts):
    """The post-processed file ``parts`` of every training run (``fold{fold}`` levels), in the order of
    ``RUNS``, as :func:`fold_outputs` lists the raw ones."""
    variants, folds, seeds = zip(*RUNS)
    return expand(
        postprocessed_path("fold{fold}", *parts),
        zip,
        variant=variants,
        fold=folds,
        seed=seeds,
        dataset=[DATASET] * len(RUNS),
    )


# Every (variant, seed) that is post-processed, and where its choice of k is written.
POSTPROCESSED_RUNS = [(variant, seed) for variant in VARIANTS for seed in SEEDS]


def postprocessing_choices():
    return [
        expand(
            postprocessed_path("choice.json"),
            dataset=DATASET,
            variant=variant,
            seed=seed,
        )[0]
        for variant, seed in POSTPROCESSED_RUNS
    ]


def ensemble_outputs(*parts):
    """The file ``parts`` of every fold ensemble (one per variant and seed)."""
    return expand(ensemble_path(*parts), dataset=DATASET, variant=VARIANTS, seed=SEEDS)


def validation_subjects(wildcards):
    """The subjects fold ``wildcards.fold`` validates on: together the folds cover each CV subject once."""
    return fold_validation_subjects(int(wildcards.fold))


def fold_validation_subjects(fold):
    return SPLIT["folds"][fold]["validation"]


def postprocessing_inputs(wildcards):
    """The raw files one (variant, seed)'s post-processing reads: the fold models' cross-validation
    prediction folders, their and the ensemble's test predictions, the tables that scored them, the labels
    and, with ``postprocessing.region_mask``, the region masks."""
    sets = postprocessing_sets(wildcards)
    inputs = {
        "cv_folders": [
            _job_file(wildcards, run_path("validation", "predictions"), fold=fold)
            for fold in FOLDS
        ],
        "test": [
            p for entry in sets if not entry["selects"] for p in entry["predictions"]
        ],
        "tables": [entry["raw_metrics"] for entry in sets],
        "labels": subject_labels(TEST_SUBJECTS + CV_SUBJECTS),
    }
    if SETTINGS.postprocessing["region_mask"]:
        inputs["masks"] = subject_masks(TEST_SUBJECTS + CV_SUBJECTS)
    return inputs


def postprocessed_parts():
    """Every file a (variant, seed)'s post-processing writes besides its choice, as path parts: per set
    (each fold's cross-validation and test subjects, the fold ensemble's), the post-processed predictions
    and the table that scores them, with the raw files they come from."""
    sets = []
    for fold in FOLDS:
        for subjects, level, selects in (
            (fold_validation_subjects(fold), ["validation"], True),
            (TEST_SUBJECTS, [], False),
        ):
            sets.append(
                {"fold": fold, "subjects": subjects, "level": level, "selects": selects}
            )
    sets.append(
        {"fold": "ensemble", "subjects": TEST_SUBJECTS, "level": [], "selects": False}
    )
    return sets


def _set_level(entry):
    """A set's folder under the post-processing folder: fold0/validation, fold0 or ensemble."""
    fold = entry["fold"]
    return [fold if fold == "ensemble" else f"fold{fold}", *entry["level"]]


def postprocessed_outputs():
    """The post-processing rule's outputs (patterns): every prediction, then every table."""
    predictions, tables = [], []
    for entry in postprocessed_parts():
        level = _set_level(entry)
        predictions += [
            postprocessed_path(*level, "predictions", f"{s}.nii.gz")
            for s in entry["subjects"]
        ]
        tables.append(postprocessed_path(*level, "metrics.csv"))
    return predictions, tables


def _job_file(wildcards, pattern, **values):
    """``pattern`` filled with the job's dataset, variant and seed (and ``values``)."""
    return expand(
        pattern,
        dataset=wildcards.dataset,
        variant=wildcards.variant,
        seed=run_seed(wildcards),
        **values,
    )[0]


def postprocessing_sets(wildcards):
    """What one (variant, seed)'s post-processing job reads and writes, a table at a time
    (``spockmip.stages.postprocess.PredictionSet``)."""
    sets = []
    for entry in postprocessed_parts():
        fold, subjects, level = entry["fold"], entry["subjects"], _set_level(entry)
        raw = ensemble_path if fold == "ensemble" else run_path
        raw_folder = _job_file(
            wildcards, raw(*entry["level"], "predictions"), fold=fold
        )
        raw_metrics = _job_file(
            wildcards, raw(*entry["level"], "metrics.csv"), fold=fold
        )
        sets.append(
            {
                "subjects": subjects,
                "predictions": [str(p) for p in files_in(raw_folder, subjects)],
                "labels": subject_labels(subjects),
                "outputs": [
                    _job_file(
                        wildcards,
                        postprocessed_path(*level, "predictions", f"{s}.nii.gz"),
                    )
                    for s in subjects
                ],
                "raw_metrics": raw_metrics,
                "metrics": _job_file(
                    wildcards, postprocessed_path(*level, "metrics.csv")
                ),
                "columns": {
                    "variant": wildcards.variant,
                    "fold": fold,
                    "seed": run_seed(wildcards),
                },
                "selects": entry["selects"],
            }
        )
    return sets


def fold_models(wildcards):
    """Every fold's best weights of one variant and seed: the members of its fold ensemble."""
    return expand(
        run_path("model", "best.pt"),
        dataset=wildcards.dataset,
        variant=wildcards.variant,
        fold=FOLDS,
        seed=run_seed(wildcards),
    )


def files_in(directory, subjects):
    """The segmentation of each subject inside a predictions folder."""
    return [Path(directory) / f"{subject}.nii.gz" for subject in subjects]


def prediction_group(weights, subjects, predictions, record):
    """What the prediction script segments with one set of weights (several: their mean probability): the
    images of ``subjects`` into ``predictions``, and the set's provenance ``record``
    (``spockmip.stages.predict.PredictionGroup``).
    """
    return {
        "weights": [str(w) for w in weights],
        "images": subject_images(subjects),
        "predictions": [str(p) for p in predictions],
        "record": str(record),
    }


# The scoring jobs' memory: a full-size volume's metrics and the Betti matching error's largest whole box
# (128³ voxels, ~2.6 GiB) fit.
EVALUATION_MEM_MB = 6000

BASELINES = SETTINGS.baselines
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
        *(tables("published") if SETTINGS.published else []),
        *fold_outputs("metrics.csv"),
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
            "results/{dataset}/figures/{figure}/{subject}.png",
            dataset=DATASET,
            figure=("overlays", "gaps"),
            subject=TEST_SUBJECTS,
        ),
        *expand("results/{dataset}/figures/learning_curves.png", dataset=DATASET),
    ]


def summary_outputs(metrics, summary, caption):
    """A summary rule's outputs: the gathered per-subject metrics, the table four ways and its provenance
    record; the report shows the HTML rendering (as a table, with the caption) and the record.
    """
    table = "results/{{dataset}}/tables/{name}.{ext}"
    return {
        "metrics": table.format(name=metrics, ext="csv"),
        "csv": table.format(name=summary, ext="csv"),
        "markdown": table.format(name=summary, ext="md"),
        "latex": table.format(name=summary, ext="tex"),
        "html": report(
            table.format(name=summary, ext="html"), caption=caption, category="Tables"
        ),
        "provenance": provenance_report(
            table.format(name=summary, ext="provenance.json"),
            "Tables",
            {"table": summary},
        ),
    }


def provenance_report(path, subcategory, labels):
    """A provenance record (``spockmip.runtime.records``) as an item of the report's Provenance
    category."""
    return report(
        path,
        caption="../report/provenance.rst",
        category="Provenance",
        subcategory=subcategory,
        labels=labels,
    )
