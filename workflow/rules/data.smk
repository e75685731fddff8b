if SETTINGS.source == "synthetic":

    rule synthesize_phantom:
        output:
            image="resources/{dataset}/images/{subject}.nii.gz",
            label="resources/{dataset}/labels/{subject}.nii.gz",
        log:
            "logs/{dataset}/synthesize/{subject}.log",
        conda:
            "../../envs/spockmip.yaml"
        params:
            library=library_fingerprint("synthesize"),
            phantom=SETTINGS.phantoms,
            index=lambda wildcards: all_subjects().index(wildcards.subject),
        script:
            "../scripts/synthesize.py"

elif SETTINGS.source == "smile_uhura":

    rule ingest_smile_uhura:
        input:
            # The release that download_smile_uhura fetches; without dataset.download it is read, not
            # declared as input, so that a dry run works before the data is downloaded.
            release=local_data_path() if SETTINGS.dataset["download"] else [],
        output:
            images=subject_images(all_subjects()),
            labels=subject_labels(all_subjects()),
            manifest=expand("resources/{dataset}/manifest.tsv", dataset=DATASET),
        log:
            expand("logs/{dataset}/ingest_smile_uhura.log", dataset=DATASET),
        conda:
            "../../envs/spockmip.yaml"
        params:
            library=library_fingerprint("ingest_smile_uhura"),
            source=local_data_path(),
            subjects=all_subjects(),
        script:
            "../scripts/ingest_smile_uhura.py"

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
            library=library_fingerprint("import_subject"),
            # Read, not declared as input, so that a dry run works before the data is downloaded.
            source=local_data_path(),
        script:
            "../scripts/import_subject.py"

    rule import_region_mask:
        output:
            mask="resources/{dataset}/masks/{subject}.nii.gz",
        log:
            "logs/{dataset}/import_region_mask/{subject}.log",
        conda:
            "../../envs/spockmip.yaml"
        params:
            library=library_fingerprint("import_region_mask"),
            # Read, not declared as input, so that a dry run works before the data is downloaded.
            source=local_data_path(),
        script:
            "../scripts/import_region_mask.py"


if SETTINGS.dataset["download"]:

    # Synapse needs the internet, which cluster compute nodes often lack: the download runs where Snakemake
    # runs, and a failed one (a network hiccup) is retried before the run gives up.
    localrules:
        download_smile_uhura,

    rule download_smile_uhura:
        output:
            release=directory(local_data_path()),
        log:
            expand("logs/{dataset}/download_smile_uhura.log", dataset=DATASET),
        retries: 3
        conda:
            "../../envs/synapse.yaml"
        params:
            library=library_fingerprint("download_smile_uhura"),
        script:
            "../scripts/download_smile_uhura.py"
