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
        orientation=config["dataset"]["orientation"],
        columns=lambda wildcards: {
            "variant": wildcards.variant,
            "fold": int(wildcards.fold),
        },
    script:
        "../scripts/evaluate.py"
