# The download needs the internet, which cluster compute nodes often lack: it runs where Snakemake runs,
# and a failed download (a network hiccup) is retried before the run gives up.
localrules:
    fetch_published,


rule fetch_published:
    output:
        config="resources/published/{model}/config.json",
        weights="resources/published/{model}/model.safetensors",
    log:
        "logs/published/fetch/{model}.log",
    retries: 3
    conda:
        "../../envs/spockmip.yaml"
    params:
        library=library_fingerprint("fetch_published"),
        repo=lambda wildcards: SETTINGS.published[wildcards.model]["repo"],
        revision=lambda wildcards: SETTINGS.published[wildcards.model]["revision"],
    script:
        "../scripts/fetch_published.py"


rule predict_published:
    input:
        config="resources/published/{model}/config.json",
        weights="resources/published/{model}/model.safetensors",
        images=subject_images(TEST_SUBJECTS),
    output:
        predictions=expand(
            "results/{{dataset}}/published/{{model}}/predictions/{subject}.nii.gz",
            subject=TEST_SUBJECTS,
        ),
        provenance="results/{dataset}/published/{model}/predictions/provenance.json",
    log:
        "logs/{dataset}/published/predict/{model}.log",
    benchmark:
        "results/{dataset}/benchmarks/published/predict/{model}.tsv"
    conda:
        "../../envs/spockmip.yaml"
    threads: SETTINGS.resources("predict")["threads"]
    resources:
        mem_mb=SETTINGS.resources("predict")["mem_mb"],
        runtime=runtime_by_attempt("predict"),
        gpu=SETTINGS.resources("predict")["gpu"],
    params:
        library=library_fingerprint("predict"),
        groups=lambda wildcards, input, output: [
            prediction_group(
                [Path(input.config).parent],
                TEST_SUBJECTS,
                output.predictions,
                output.provenance,
            )
        ],
        activation=lambda wildcards: SETTINGS.published[wildcards.model].get(
            "activation"
        ),
        inference=released_inference(),
        orientation="stored",
    script:
        "../scripts/predict.py"


rule evaluate_published:
    input:
        predictions=rules.predict_published.output.predictions,
        labels=subject_labels(TEST_SUBJECTS),
    output:
        "results/{dataset}/published/{model}/metrics.csv",
    log:
        "logs/{dataset}/published/evaluate/{model}.log",
    conda:
        "../../envs/spockmip.yaml"
    params:
        library=library_fingerprint("evaluate"),
        subjects=TEST_SUBJECTS,
        orientation="stored",
        predictions=lambda wildcards, input: input.predictions,
        groups=[TEST_SUBJECTS],
        columns=lambda wildcards: {"variant": wildcards.model, "fold": "published"},
        evaluation=SETTINGS.evaluation,
    script:
        "../scripts/evaluate.py"


localrules:
    aggregate_published,


rule aggregate_published:
    input:
        metrics=expand(
            "results/{{dataset}}/published/{model}/metrics.csv",
            model=list(SETTINGS.published),
        ),
    output:
        **summary_outputs("published_metrics", "published", "../report/published.rst"),
    log:
        "logs/{dataset}/aggregate_published.log",
    conda:
        "../../envs/spockmip.yaml"
    params:
        library=library_fingerprint("aggregate"),
        order=list(SETTINGS.published),
        baselines={},
        statistics=None,
        observations=(
            "the held-out test subjects; the published models may have been trained on them"
        ),
        # Published models have no cross-validation predictions to choose a post-processing on.
        choice_runs=[],
        chosen_here=False,
        evaluation=SETTINGS.evaluation,
    script:
        "../scripts/aggregate.py"
