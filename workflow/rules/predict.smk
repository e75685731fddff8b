rule predict:
    input:
        model="results/{dataset}/{variant}/fold{fold}/model/best.pt",
        images=subject_images(TEST_SUBJECTS),
    output:
        predictions=expand(
            "results/{{dataset}}/{{variant}}/fold{{fold}}/predictions/{subject}.nii.gz",
            subject=TEST_SUBJECTS,
        ),
    log:
        "logs/{dataset}/predict/{variant}/fold{fold}.log",
    benchmark:
        "results/{dataset}/benchmarks/predict/{variant}/fold{fold}.tsv"
    conda:
        "../../envs/spockmip.yaml"
    threads: config["resources"]["predict"]["threads"]
    resources:
        mem_mb=config["resources"]["predict"]["mem_mb"],
        runtime=runtime_by_attempt("predict"),
        gpu=config["resources"]["predict"]["gpu"],
    params:
        weights=lambda wildcards, input: input.model,
        activation=None,
        inference=config["inference"],
        orientation=config["dataset"]["orientation"],
    script:
        "../scripts/predict.py"
