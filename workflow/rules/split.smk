rule split:
    output:
        "results/{dataset}/splits.json",
    params:
        subjects=all_subjects(),
        folds=config["split"]["folds"],
        seed=config["split"]["seed"],
        test_subjects=config["split"]["test_subjects"],
    log:
        "logs/{dataset}/split.log",
    conda:
        "../../envs/spockmip.yaml"
    script:
        "../scripts/split.py"
