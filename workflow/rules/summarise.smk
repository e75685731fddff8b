rule aggregate:
    input:
        metrics=fold_outputs("results/{dataset}/{variant}/fold{fold}/metrics.csv"),
    output:
        metrics="results/{dataset}/tables/metrics.csv",
        csv=report(
            "results/{dataset}/tables/summary.csv",
            caption="../report/summary.rst",
            category="Tables",
        ),
        markdown="results/{dataset}/tables/summary.md",
        latex="results/{dataset}/tables/summary.tex",
    log:
        "logs/{dataset}/aggregate.log",
    conda:
        "../../envs/spockmip.yaml"
    params:
        order=VARIANTS,
        baselines={name: v.get("baseline") for name, v in config["variants"].items()},
    script:
        "../scripts/aggregate.py"


rule plot_metrics:
    input:
        metrics="results/{dataset}/tables/metrics.csv",
    output:
        report(
            "results/{dataset}/figures/metrics_boxplots.png",
            caption="../report/boxplots.rst",
            category="Figures",
        ),
    log:
        "logs/{dataset}/plot_metrics.log",
    conda:
        "../../envs/spockmip.yaml"
    params:
        metrics=["dice", "cl_dice", "betti0_error", "betti1_error"],
        order=VARIANTS,
        title=lambda wildcards: f"{wildcards.dataset}: every (fold, test subject)",
    script:
        "../scripts/plot_metrics.py"


rule plot_overlays:
    input:
        predictions=expand(
            "results/{{dataset}}/{variant}/fold0/predictions/{subject}.nii.gz",
            variant=VARIANTS,
            subject=TEST_SUBJECTS[0],
        ),
        label=subject_labels(TEST_SUBJECTS[0]),
    output:
        report(
            "results/{dataset}/figures/overlays.png",
            caption="../report/overlays.rst",
            category="Figures",
        ),
    log:
        "logs/{dataset}/plot_overlays.log",
    conda:
        "../../envs/spockmip.yaml"
    params:
        variants=VARIANTS,
        subject=TEST_SUBJECTS[0],
    script:
        "../scripts/plot_overlays.py"


rule plot_learning_curves:
    input:
        histories=fold_outputs(
            "results/{dataset}/{variant}/fold{fold}/model/history.csv"
        ),
    output:
        report(
            "results/{dataset}/figures/learning_curves.png",
            caption="../report/learning_curves.rst",
            category="Figures",
        ),
    log:
        "logs/{dataset}/plot_learning_curves.log",
    conda:
        "../../envs/spockmip.yaml"
    params:
        names=run_names(),
    script:
        "../scripts/plot_learning_curves.py"
