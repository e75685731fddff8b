rule split:
    output:
        "results/{dataset}/splits.json",
    log:
        "logs/{dataset}/split.log",
    conda:
        "../../envs/spockmip.yaml"
    params:
        subjects=all_subjects(),
        folds=config["split"]["folds"],
        seed=config["split"]["seed"],
        test_subjects=config["split"]["test_subjects"],
    script:
        "../scripts/split.py"
