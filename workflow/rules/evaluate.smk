rule evaluate:
    input:
        predictions=rules.predict.output.predictions,
        validation=rules.predict.output.validation,
        labels=lambda wildcards: subject_labels(
            TEST_SUBJECTS + validation_subjects(wildcards)
        ),
    output:
        test=run_path("metrics.csv"),
        validation=run_path("validation", "metrics.csv"),
    log:
        job_log("evaluate", "{variant}", "fold{fold}"),
    benchmark:
        job_benchmark("evaluate", "{variant}", "fold{fold}")
    conda:
        "../../envs/spockmip.yaml"
    # The metrics (skeletons, connected components) run on one core. Memory: the Betti matching error
    # holds ~1.2 kB per voxel of its box (up to 128³ voxels whole, ~2.6 GiB; patches of 96³ beyond).
    threads: 1
    resources:
        mem_mb=EVALUATION_MEM_MB,
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
            "seed": run_seed(wildcards),
        },
        evaluation=SETTINGS.evaluation,
    script:
        "../scripts/evaluate.py"


rule evaluate_ensemble:
    input:
        predictions=rules.predict_ensemble.output.predictions,
        labels=subject_labels(TEST_SUBJECTS),
    output:
        ensemble_path("metrics.csv"),
    log:
        job_log("evaluate_ensemble", "{variant}"),
    conda:
        "../../envs/spockmip.yaml"
    resources:
        mem_mb=EVALUATION_MEM_MB,
    params:
        library=library_fingerprint("evaluate"),
        subjects=TEST_SUBJECTS,
        predictions=lambda wildcards, input: input.predictions,
        groups=[TEST_SUBJECTS],
        orientation=SETTINGS.orientation,
        columns=lambda wildcards: {
            "variant": wildcards.variant,
            "fold": "ensemble",
            "seed": run_seed(wildcards),
        },
        evaluation=SETTINGS.evaluation,
    script:
        "../scripts/evaluate.py"
