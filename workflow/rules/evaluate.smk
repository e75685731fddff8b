rule evaluate:
    input:
        predictions=rules.predict.output.predictions,
        validation=rules.predict.output.validation,
        labels=lambda wildcards: subject_labels(
            TEST_SUBJECTS + validation_subjects(wildcards)
        ),
    output:
        test="results/{dataset}/{variant}/fold{fold}/metrics.csv",
        validation="results/{dataset}/{variant}/fold{fold}/validation/metrics.csv",
    log:
        "logs/{dataset}/evaluate/{variant}/fold{fold}.log",
    benchmark:
        "results/{dataset}/benchmarks/evaluate/{variant}/fold{fold}.tsv"
    conda:
        "../../envs/spockmip.yaml"
    # The metrics (skeletons, connected components) run on one core.
    threads: 1
    params:
        library=library_fingerprint("evaluate"),
        subjects=lambda wildcards: TEST_SUBJECTS + validation_subjects(wildcards),
        predictions=lambda wildcards, input: [
            *input.predictions,
            *files_in(input.validation, validation_subjects(wildcards)),
        ],
        groups=lambda wildcards: [TEST_SUBJECTS, validation_subjects(wildcards)],
        orientation=SETTINGS.orientation,
        columns=lambda wildcards: {
            "variant": wildcards.variant,
            "fold": int(wildcards.fold),
        },
        nsd_tolerance_mm=SETTINGS.nsd_tolerance_mm,
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
        library=library_fingerprint("evaluate"),
        subjects=TEST_SUBJECTS,
        predictions=lambda wildcards, input: input.predictions,
        groups=[TEST_SUBJECTS],
        orientation=SETTINGS.orientation,
        columns=lambda wildcards: {"variant": wildcards.variant, "fold": "ensemble"},
        nsd_tolerance_mm=SETTINGS.nsd_tolerance_mm,
    script:
        "../scripts/evaluate.py"
