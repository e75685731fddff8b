# Each fold's model segments the held-out test subjects and, for nnU-Net's cross-validation protocol, the
# fold's own validation subjects, which it never trained on: over the folds every cross-validation subject
# is predicted exactly once. The test subjects get the best weights; the validation subjects get the
# checkpoint split.cv_checkpoint names (by default final.pt: the best epoch was chosen on those same
# subjects, so best.pt would score them optimistically). One job per (variant, fold) does both, reading
# each checkpoint once; the validation subjects differ between folds, hence a folder as their output.
rule predict:
    input:
        model=run_path("model", "best.pt"),
        cv_model=run_path("model", f"{SETTINGS.cv_checkpoint}.pt"),
        images=lambda wildcards: subject_images(
            TEST_SUBJECTS + validation_subjects(wildcards)
        ),
    output:
        predictions=expand(
            run_path("predictions", "{subject}.nii.gz"),
            subject=TEST_SUBJECTS,
            allow_missing=True,
        ),
        provenance=run_path("predictions", "provenance.json"),
        # Its record lies inside it, beside the segmentations.
        validation=directory(run_path("validation", "predictions")),
    log:
        job_log("predict", "{variant}", "fold{fold}"),
    benchmark:
        job_benchmark("predict", "{variant}", "fold{fold}")
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
                [input.model], TEST_SUBJECTS, output.predictions, output.provenance
            ),
            prediction_group(
                [input.cv_model],
                validation_subjects(wildcards),
                files_in(output.validation, validation_subjects(wildcards)),
                Path(output.validation) / "provenance.json",
            ),
        ],
        activation=None,
        inference=SETTINGS.inference,
        orientation=SETTINGS.orientation,
    script:
        "../scripts/predict.py"


# The fold ensemble: each test subject segmented once, from the mean probability of the variant's k fold
# models (of one seed), thresholded by the same rule as a single model.
rule predict_ensemble:
    input:
        models=fold_models,
        images=subject_images(TEST_SUBJECTS),
    output:
        predictions=expand(
            ensemble_path("predictions", "{subject}.nii.gz"),
            subject=TEST_SUBJECTS,
            allow_missing=True,
        ),
        provenance=ensemble_path("predictions", "provenance.json"),
    log:
        job_log("predict_ensemble", "{variant}"),
    benchmark:
        job_benchmark("predict_ensemble", "{variant}")
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
                input.models, TEST_SUBJECTS, output.predictions, output.provenance
            )
        ],
        activation=None,
        inference=SETTINGS.inference,
        orientation=SETTINGS.orientation,
    script:
        "../scripts/predict.py"
