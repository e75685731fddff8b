rule synthesize_phantom:
    output:
        image="resources/{dataset}/images/{subject}.nii.gz",
        label="resources/{dataset}/labels/{subject}.nii.gz",
    log:
        "logs/{dataset}/synthesize/{subject}.log",
    conda:
        "../../envs/spockmip.yaml"
    params:
        phantom=config["dataset"]["synthetic"],
        index=lambda wildcards: all_subjects().index(wildcards.subject),
    script:
        "../scripts/synthesize.py"
