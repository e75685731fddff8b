# One job per (variant, seed): the minimum component size k chosen on the variant's cross-validation
# predictions (every fold's), then applied to those, to each fold model's test predictions and to the fold
# ensemble's, and each set scored. The raw predictions and scores stay as they are; a prediction nothing is
# removed from is copied byte for byte and keeps its raw scores.
POSTPROCESSED_PREDICTIONS, POSTPROCESSED_TABLES = postprocessed_outputs()


rule postprocess:
    input:
        unpack(postprocessing_inputs),
    output:
        choice=postprocessed_path("choice.json"),
        predictions=POSTPROCESSED_PREDICTIONS,
        tables=POSTPROCESSED_TABLES,
    log:
        job_log("postprocess", "{variant}"),
    benchmark:
        job_benchmark("postprocess", "{variant}")
    conda:
        "../../envs/spockmip.yaml"
    threads: 1
    resources:
        mem_mb=EVALUATION_MEM_MB,
    params:
        library=library_fingerprint("postprocess"),
        sets=postprocessing_sets,
        regions=lambda wildcards, input: dict(
            zip(TEST_SUBJECTS + CV_SUBJECTS, input.get("masks", []))
        ),
        postprocessing=SETTINGS.postprocessing,
        orientation=SETTINGS.orientation,
        evaluation=SETTINGS.evaluation,
    script:
        "../scripts/postprocess.py"
