rule evaluate:
    input:
        predictions=rules.predict.output.predictions,
        labels=subject_labels(TEST_SUBJECTS),
    output:
        "results/{dataset}/{variant}/fold{fold}/metrics.csv",
    log:
        "logs/{dataset}/evaluate/{variant}/fold{fold}.log",
    conda:
        "../../envs/spockmip.yaml"
    params:
        subjects=TEST_SUBJECTS,
        predictions=lambda wildcards, input: input.predictions,
        columns=lambda wildcards: {
            "variant": wildcards.variant,
            "fold": int(wildcards.fold),
        },
    script:
        "../scripts/evaluate.py"


rule evaluate_validation:
    input:
        predictions=rules.predict_validation.output.predictions,
        labels=lambda wildcards: subject_labels(validation_subjects(wildcards)),
    output:
        "results/{dataset}/{variant}/fold{fold}/validation/metrics.csv",
    log:
        "logs/{dataset}/evaluate_validation/{variant}/fold{fold}.log",
    conda:
        "../../envs/spockmip.yaml"
    params:
        subjects=validation_subjects,
        predictions=lambda wildcards, input: files_in(
            input.predictions, validation_subjects(wildcards)
        ),
        columns=lambda wildcards: {
            "variant": wildcards.variant,
            "fold": int(wildcards.fold),
        },
    script:
        "../scripts/evaluate.py"


rule evaluate_ensemble:
    input:
        predictions=rules.predict_ensemble.output.predictions,
        labels=subject_labels(TEST_SUBJECTS),
    output:
        "results/{dataset}/{variant}/ensemble/metrics.csv",
    log:
        "logs/{dataset}/evaluate_ensemble/{variant}.log",
    conda:
        "../../envs/spockmip.yaml"
    params:
        subjects=TEST_SUBJECTS,
        predictions=lambda wildcards, input: input.predictions,
        columns=lambda wildcards: {"variant": wildcards.variant, "fold": "ensemble"},
    script:
        "../scripts/evaluate.py"
