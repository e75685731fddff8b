rule train:
    input:
        split="results/{dataset}/splits.json",
        images=subject_images(CV_SUBJECTS),
        labels=subject_labels(CV_SUBJECTS),
    output:
        best=run_path("model", "best.pt"),
        final=run_path("model", "final.pt"),
        history=run_path("model", "history.csv"),
        provenance=provenance_report(
            run_path("model", "provenance.json"), "Training", run_labels()
        ),
    log:
        job_log("train", "{variant}", "fold{fold}"),
    benchmark:
        job_benchmark("train", "{variant}", "fold{fold}")
    priority: training_priority
    conda:
        "../../envs/spockmip.yaml"
    threads: SETTINGS.resources("train")["threads"]
    resources:
        mem_mb=SETTINGS.resources("train")["mem_mb"],
        runtime=runtime_by_attempt("train"),
        gpu=SETTINGS.resources("train")["gpu"],
    params:
        library=library_fingerprint("train"),
        training=training_params,
        fold=lambda wildcards: int(wildcards.fold),
        variant=lambda wildcards: wildcards.variant,
        variant_keys=lambda wildcards: SETTINGS.variant_keys(wildcards.variant),
        orientation=SETTINGS.orientation,
        # Resume state: deliberately not an output, so it survives a killed or failed job.
        state_dir=lambda wildcards, output: Path(output.best).parent.parent / "state",
    script:
        "../scripts/train.py"
