if config["dataset"]["source"] == "synthetic":

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

else:

    rule import_subject:
        output:
            image="resources/{dataset}/images/{subject}.nii.gz",
            label="resources/{dataset}/labels/{subject}.nii.gz",
        log:
            "logs/{dataset}/import/{subject}.log",
        conda:
            "../../envs/spockmip.yaml"
        params:
            # Read, not declared as input, so that a dry run works before the data is downloaded.
            source=config["dataset"]["path"],
        script:
            "../scripts/import_subject.py"
