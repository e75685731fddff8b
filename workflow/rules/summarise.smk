localrules:
    aggregate,
    aggregate_validation,
    aggregate_ensemble,
    plot_metrics,
    plot_overlays,
    plot_learning_curves,


rule aggregate:
    input:
        metrics=fold_outputs("metrics.csv"),
        postprocessed=postprocessed_fold_outputs("metrics.csv"),
        choices=postprocessing_choices(),
    output:
        **summary_outputs("metrics", "summary", "../report/summary.rst"),
    log:
        "logs/{dataset}/aggregate.log",
    conda:
        "../../envs/spockmip.yaml"
    params:
        library=library_fingerprint("aggregate"),
        order=VARIANTS,
        baselines=BASELINES,
        # The fold models share the test subjects: their results are described, never tested.
        statistics=None,
        observations=(
            "every (fold, test subject): each fold's model on each held-out test subject; "
            "descriptive only, as the fold models share their test subjects"
        ),
        choice_runs=POSTPROCESSED_RUNS,
        chosen_here=False,
        evaluation=SETTINGS.evaluation,
    script:
        "../scripts/aggregate.py"


# Which weights scored the cross-validation subjects (split.cv_checkpoint), and why it matters: each fold's
# best epoch was chosen on these very subjects.
CV_CHECKPOINT_NOTES = {
    "final": (
        "with its final weights (final.pt, the last epoch; split.cv_checkpoint: final): its best "
        "epoch was chosen on these same subjects, so its best weights would score them optimistically"
    ),
    "best": (
        "with its best weights (best.pt; split.cv_checkpoint: best, as the released code scored): "
        "optimistic, as that epoch was chosen on these same subjects"
    ),
}


rule aggregate_validation:
    input:
        metrics=fold_outputs("validation", "metrics.csv"),
        postprocessed=postprocessed_fold_outputs("validation", "metrics.csv"),
        choices=postprocessing_choices(),
    output:
        **summary_outputs("cv_metrics", "cv_summary", "../report/cv_summary.rst"),
    log:
        "logs/{dataset}/aggregate_validation.log",
    conda:
        "../../envs/spockmip.yaml"
    params:
        library=library_fingerprint("aggregate"),
        order=VARIANTS,
        baselines=BASELINES,
        statistics=SETTINGS.statistics,
        observations=(
            "the cross-validation subjects, each predicted once by the fold model "
            f"that did not train on it, {CV_CHECKPOINT_NOTES[SETTINGS.cv_checkpoint]}"
        ),
        choice_runs=POSTPROCESSED_RUNS,
        chosen_here=True,
        evaluation=SETTINGS.evaluation,
    script:
        "../scripts/aggregate.py"


rule aggregate_ensemble:
    input:
        metrics=ensemble_outputs("metrics.csv"),
        postprocessed=[
            expand(
                postprocessed_path("ensemble", "metrics.csv"),
                dataset=DATASET,
                variant=v,
                seed=s,
            )[0]
            for v, s in POSTPROCESSED_RUNS
        ],
        choices=postprocessing_choices(),
    output:
        **summary_outputs(
            "ensemble_metrics", "ensemble_summary", "../report/ensemble_summary.rst"
        ),
    log:
        "logs/{dataset}/aggregate_ensemble.log",
    conda:
        "../../envs/spockmip.yaml"
    params:
        library=library_fingerprint("aggregate"),
        order=VARIANTS,
        baselines=BASELINES,
        statistics=SETTINGS.statistics,
        observations=(
            "the held-out test subjects, each predicted once by the fold ensemble "
            "(mean probability of the variant's fold models)"
        ),
        choice_runs=POSTPROCESSED_RUNS,
        chosen_here=False,
        evaluation=SETTINGS.evaluation,
    script:
        "../scripts/aggregate.py"


BOXPLOT_TITLES = {
    "metrics": "every (fold, test subject)",
    "cv_metrics": "cross-validation subjects (each predicted by the fold that did not train on it)",
    "ensemble_metrics": "test subjects, fold ensemble",
}


rule plot_metrics:
    input:
        metrics="results/{dataset}/tables/{table}.csv",
    output:
        report(
            "results/{dataset}/figures/{table}_boxplots.png",
            caption="../report/boxplots.rst",
            category="Figures",
            subcategory="Metrics",
            labels={"figure": "box plots", "observations": "{table}"},
        ),
    log:
        "logs/{dataset}/plot_metrics/{table}.log",
    wildcard_constraints:
        table="|".join(BOXPLOT_TITLES),
    conda:
        "../../envs/spockmip.yaml"
    params:
        library=library_fingerprint("plot_metrics"),
        metrics=BOXPLOT_METRICS,
        order=VARIANTS,
        title=lambda wildcards: f"{wildcards.dataset}: {BOXPLOT_TITLES[wildcards.table]}",
    script:
        "../scripts/plot_metrics.py"


rule plot_overlays:
    input:
        predictions=expand(
            run_path("predictions", "{subject}.nii.gz"),
            variant=VARIANTS,
            fold=FOLDS[0],
            seed=SEEDS[0],
            allow_missing=True,
        ),
        image="resources/{dataset}/images/{subject}.nii.gz",
        label="resources/{dataset}/labels/{subject}.nii.gz",
    output:
        overlays=report(
            "results/{dataset}/figures/overlays/{subject}.png",
            caption="../report/overlays.rst",
            category="Figures",
            subcategory="Overlays",
            labels={"figure": "overlay", "subject": "{subject}"},
        ),
        gaps=report(
            "results/{dataset}/figures/gaps/{subject}.png",
            caption="../report/gaps.rst",
            category="Figures",
            subcategory="Gap maps",
            labels={"figure": "gap map", "subject": "{subject}"},
        ),
    log:
        "logs/{dataset}/plot_overlays/{subject}.log",
    conda:
        "../../envs/spockmip.yaml"
    params:
        library=library_fingerprint("plot_overlays"),
        variants=VARIANTS,
        # The models shown: fold 0's (of the first seed).
        models=run_label(FOLDS[0], SEEDS[0]),
        # The gap maps bin the centre line by radius as the metrics do.
        radius_edges_mm=SETTINGS.evaluation["radius_edges_mm"],
    script:
        "../scripts/plot_overlays.py"


rule plot_learning_curves:
    input:
        histories=fold_outputs("model", "history.csv"),
    output:
        report(
            "results/{dataset}/figures/learning_curves.png",
            caption="../report/learning_curves.rst",
            category="Figures",
            subcategory="Training",
        ),
    log:
        "logs/{dataset}/plot_learning_curves.log",
    conda:
        "../../envs/spockmip.yaml"
    params:
        library=library_fingerprint("plot_learning_curves"),
        variants=[variant for variant, _, _ in RUNS],
        runs=[run_label(fold, seed) for _, fold, seed in RUNS],
        criteria={
            variant: SETTINGS.training(variant)["validation_criterion"]
            for variant in VARIANTS
        },
    script:
        "../scripts/plot_learning_curves.py"
