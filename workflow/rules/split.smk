# Light: it writes one small JSON file, so it runs where Snakemake runs, not as a cluster job.
localrules:
    split,


rule split:
    output:
        "results/{dataset}/splits.json",
    log:
        "logs/{dataset}/split.log",
    conda:
        "../../envs/spockmip.yaml"
    params:
        library=library_fingerprint("split"),
        # One mapping, not four values: Snakemake compares a job's params as a set of their string forms,
        # so split.seed 1 -> 2 beside split.folds 2 would otherwise go unnoticed (and train on a stale split).
        protocol={"subjects": all_subjects(), **SETTINGS.split},
    script:
        "../scripts/split.py"
