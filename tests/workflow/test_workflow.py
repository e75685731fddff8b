"""The Snakemake workflow, run for real in a temporary copy of the project."""

import json
import os
import re
import shlex
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from readme_helpers import readme_commands
from workflow_helpers import (
    copy_project,
    dry_run_inputs,
    dry_run_jobs,
    rules_with_changed_params,
    snakemake,
)

import spockmip

# The demo further reduced: three variants (one with a MIP term, one with DS6), 2 folds, 1 epoch. Named
# "demo" so that the README's commands, which name results/demo/..., run against it.
TEST_CONFIG = {
    "dataset": {"name": "demo", "source": "synthetic",
                "synthetic": {"n_subjects": 5, "seed": 3, "shape": [48, 48, 32], "spacing_mm": 0.3}},
    "split": {"folds": 2, "seed": 1, "test_subjects": 1},
    "training": {"init_features": 2, "patch_size": [32, 32, 32], "strides": [16, 16, 16], "batch_size": 4,
                 "epochs": 1, "patches_per_epoch": 8, "learning_rate": 1.0e-3},
    "variants": {"unet": {"model": "unet"},
                 "unet_mip": {"model": "unet", "mip_axis": "z", "baseline": "unet"},
                 "ds6_mip": {"model": "unetmss", "deform": True, "mip_axis": "multi", "baseline": "unet"}},
    "inference": {"patch_size": [32, 32, 32], "strides": [16, 16, 16]},
    "resources": {"train": {"threads": 1}, "predict": {"threads": 1}},
}  # fmt: skip


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = copy_project(tmp_path_factory.mktemp("workflow"), TEST_CONFIG)
    (workdir / "config" / "config.yaml").write_text((workdir / "config" / "test.yaml").read_text())
    snakemake(workdir, "--cores", "2", "--configfile", "config/test.yaml")
    return workdir


def test_whole_dag_builds_tables_and_figures_with_sane_numbers(finished_run: Path) -> None:
    results = finished_run / "results" / "demo"
    for variant in TEST_CONFIG["variants"]:
        for fold in (0, 1):
            assert (results / variant / f"fold{fold}" / "model" / "best.pt").is_file()
            assert (results / variant / f"fold{fold}" / "model" / "final.pt").is_file()
            metrics = pd.read_csv(results / variant / f"fold{fold}" / "metrics.csv")
            assert len(metrics) == 1 and metrics["dice"].between(0, 1).all()
    history = pd.read_csv(results / "unet" / "fold0" / "model" / "history.csv")
    assert "seconds" not in history, "wall-clock time would make an identical retrain look changed"
    summary = pd.read_csv(results / "tables" / "summary.csv")
    assert list(summary["variant"]) == ["unet", "unet_mip", "ds6_mip"]
    assert (summary["n"] == 2).all()
    assert summary["dice_mean"].between(0, 1).all() and summary["cl_dice_median"].between(0, 1).all()
    assert (summary["betti0_error_mean"] >= 0).all()
    assert summary.loc[summary["variant"] == "unet", "baseline"].isna().all()
    assert not any(column.endswith("_p") for column in summary), "per-fold results are not tested"
    markdown = (results / "tables" / "summary.md").read_text()
    assert markdown.startswith("| Variant") and "ds6_mip" in markdown and "descriptive only" in markdown
    for table in ("summary", "cv_summary", "ensemble_summary"):
        assert "\\begin{tabular}" in (results / "tables" / f"{table}.tex").read_text()
        assert "<table" in (results / "tables" / f"{table}.html").read_text()
    # 4 cross-validation subjects: n = 4 pairs can never reach p ≤ 0.05, and the table says so.
    cv_summary = pd.read_csv(results / "tables" / "cv_summary.csv")
    assert list(cv_summary["n"]) == [4, 4, 4]
    assert list(cv_summary["dice_test"].fillna("")) == ["", "n too small", "n too small"]
    assert "n too small (n=4)" in (results / "tables" / "cv_summary.md").read_text()
    assert "with its final weights (final.pt" in (results / "tables" / "cv_summary.md").read_text()
    ensemble = pd.read_csv(results / "tables" / "ensemble_metrics.csv")
    assert sorted(ensemble["variant"]) == sorted(TEST_CONFIG["variants"])
    assert set(ensemble["fold"]) == {"ensemble"}
    for figure in ("metrics_boxplots", "cv_metrics_boxplots", "ensemble_metrics_boxplots", "learning_curves"):
        assert (results / "figures" / f"{figure}.png").stat().st_size > 5000
    split = json.loads((results / "splits.json").read_text())
    for subject in split["test"]:
        for figure in ("overlays", "gaps"):
            assert (results / "figures" / figure / f"{subject}.png").stat().st_size > 5000
    assert not any((results / "unet" / "fold0" / "state").glob(".*")), "temporary files left behind"


def test_the_command_line_predicts_the_workflows_bits(finished_run: Path, tmp_path: Path) -> None:
    """One stage behind both doors: the same checkpoint and options give the same files."""
    from spockmip.cli import main

    results = finished_run / "results" / "demo"
    split = json.loads((results / "splits.json").read_text())
    subject = split["test"][0]
    image = finished_run / "resources" / "demo" / "images" / f"{subject}.nii.gz"
    ours = tmp_path / f"{subject}.nii.gz"
    weights = results / "unet_mip" / "fold0" / "model" / "best.pt"
    # The config's inference settings as options; the window geometry the checkpoint records is the same.
    assert main(["predict", "-w", str(weights), "-i", str(image), "-o", str(ours), "--threads", "1",
                 "--no-progress"]) == 0  # fmt: skip
    workflow = results / "unet_mip" / "fold0" / "predictions" / f"{subject}.nii.gz"
    assert np.array_equal(np.asanyarray(nib.load(ours).dataobj), np.asanyarray(nib.load(workflow).dataobj))
    assert ours.read_bytes() == workflow.read_bytes()


@pytest.mark.parametrize("checkpoint", ["final", "best"])
def test_the_cross_validation_subjects_are_predicted_with_the_configured_checkpoint(
    tmp_path: Path, checkpoint: str
) -> None:
    """Each fold's prediction job reads best.pt, for the test subjects, and the checkpoint that
    split.cv_checkpoint names, for its validation subjects: final.pt by default, and no input at all under
    best (training writes it either way). The fold ensemble keeps best.pt."""
    split = {**TEST_CONFIG["split"], **({"cv_checkpoint": checkpoint} if checkpoint == "best" else {})}
    workdir = copy_project(tmp_path, {**TEST_CONFIG, "split": split})
    result = snakemake(workdir, "-n", "--configfile", "config/test.yaml")
    jobs = dry_run_inputs(result.stdout)
    models = {
        (rule, w["variant"], w.get("fold")): {Path(f).name for f in inputs if f.endswith(".pt")}
        for rule, w, inputs in jobs
        if rule in ("predict", "predict_ensemble")
    }
    assert len(models) == 2 * 3 + 3
    for (rule, _, _), found in models.items():
        expected = {"best.pt", "final.pt"} if rule == "predict" and checkpoint == "final" else {"best.pt"}
        assert found == expected, (rule, found)
    # The training jobs write final.pt under either setting.
    assert result.stdout.count("results/demo/unet/fold0/model/final.pt") >= 1


def test_the_cross_validation_predictions_are_the_final_weights_bits(tmp_path: Path) -> None:
    """One fold whose best.pt is its first epoch and final.pt its third: the workflow's cross-validation
    predictions are what `spockmip predict` writes with final.pt, its test predictions what it writes with
    best.pt, and best.pt would have segmented the validation subjects otherwise.

    Which epoch a short training keeps as best depends on the CPU's rounding (a learning rate that makes
    the validation loss rise on one CPU lowers it on another), so the test makes the two checkpoints differ
    itself: the same run trained for one epoch (training is deterministic, so these are the 3-epoch run's
    epoch-1 weights) gives the best.pt the predictions then read."""
    from spockmip.cli import main

    training = {**TEST_CONFIG["training"], "epochs": 3, "learning_rate": 0.1, "queue_workers": 0}
    config = {**TEST_CONFIG, "training": training, "variants": {"unet": {"model": "unet"}}}
    workdir = copy_project(tmp_path / "project", config)
    first = copy_project(tmp_path / "first_epoch", {**config, "training": {**training, "epochs": 1}})
    fold = workdir / "results" / "demo" / "unet" / "fold0"
    model = fold / "model"
    for project in (workdir, first):
        snakemake(project, "--cores", "2", str(model.relative_to(workdir) / "best.pt"),
                  "--configfile", "config/test.yaml")  # fmt: skip
    shutil.copyfile(first / model.relative_to(workdir) / "best.pt", model / "best.pt")
    snakemake(workdir, "--cores", "2", str(fold.relative_to(workdir) / "validation" / "predictions"),
              "--configfile", "config/test.yaml")  # fmt: skip
    epochs = [torch.load(model / f"{name}.pt", weights_only=True)["epoch"] for name in ("best", "final")]
    assert epochs == [1, 3], epochs
    split = json.loads((workdir / "results" / "demo" / "splits.json").read_text())
    subjects = {"final": split["folds"][0]["validation"][0], "best": split["test"][0]}
    written = {"final": fold / "validation" / "predictions", "best": fold / "predictions"}
    ours = {}
    for name in ("final", "best"):
        subject = subjects[name]
        image = workdir / "resources" / "demo" / "images" / f"{subject}.nii.gz"
        ours[name] = tmp_path / name / f"{subject}.nii.gz"
        assert main(["predict", "-w", str(model / f"{name}.pt"), "-i", str(image), "-o", str(ours[name]),
                     "--threads", "1", "--no-progress"]) == 0  # fmt: skip
        assert ours[name].read_bytes() == (written[name] / f"{subject}.nii.gz").read_bytes(), name
    image = workdir / "resources" / "demo" / "images" / f"{subjects['final']}.nii.gz"
    by_best = tmp_path / "best_on_validation.nii.gz"
    assert main(["predict", "-w", str(model / "best.pt"), "-i", str(image), "-o", str(by_best), "--threads",
                 "1", "--no-progress"]) == 0  # fmt: skip
    assert by_best.read_bytes() != ours["final"].read_bytes()


def test_cross_validation_predicts_every_cv_subject_exactly_once(finished_run: Path) -> None:
    results = finished_run / "results" / "demo"
    split = json.loads((results / "splits.json").read_text())
    fold_of = {subject: k for k, fold in enumerate(split["folds"]) for subject in fold["validation"]}
    cv = pd.read_csv(results / "tables" / "cv_metrics.csv")
    for variant in TEST_CONFIG["variants"]:
        rows = cv[cv["variant"] == variant]
        assert sorted(rows["subject"]) == sorted(fold_of), variant  # each CV subject once, no test subject
        assert all(fold_of[s] == f for s, f in zip(rows["subject"], rows["fold"], strict=True))
        predicted = sorted(
            path.name for path in (results / variant).glob("fold*/validation/predictions/*.nii.gz")
        )
        assert predicted == sorted(f"{s}.nii.gz" for s in fold_of)


def test_rerun_of_a_finished_dag_has_nothing_to_do(finished_run: Path) -> None:
    result = snakemake(finished_run, "-n", "--configfile", "config/test.yaml")
    assert dry_run_jobs(result.stdout) == []


def test_changing_one_variant_reruns_only_that_variant(finished_run: Path, tmp_path: Path) -> None:
    config = yaml.safe_load((finished_run / "config" / "test.yaml").read_text())
    config["variants"]["unet_mip"]["mip_weight"] = 0.5
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(config, sort_keys=False))
    result = snakemake(finished_run, "-n", "--configfile", str(changed))
    jobs = dry_run_jobs(result.stdout)
    trained = sorted((w["variant"], w["fold"]) for rule, w in jobs if rule == "train")
    assert trained == [("unet_mip", "0"), ("unet_mip", "1")]
    assert all(w.get("variant", "unet_mip") == "unet_mip" for _, w in jobs)
    assert "Params have changed since last execution" in result.stdout


def test_switching_the_cv_checkpoint_repredicts_and_retrains_nothing(
    finished_run: Path, tmp_path: Path
) -> None:
    """split.cv_checkpoint chooses weights, not subjects: the split stays, no fold retrains (final.pt is
    there either way), the fold ensemble's predictions stay; the fold predictions rerun for their changed
    weights, and the cross-validation table after them, and so does the post-processing, whose k those
    predictions choose (with every table's post-processed columns)."""
    config = yaml.safe_load((finished_run / "config" / "test.yaml").read_text())
    config["split"]["cv_checkpoint"] = "best"
    changed = tmp_path / "best.yaml"
    changed.write_text(yaml.safe_dump(config, sort_keys=False))
    output = snakemake(finished_run, "-n", "--configfile", str(changed)).stdout
    rules = {rule for rule, _ in dry_run_jobs(output)}
    assert {"predict", "aggregate_validation", "postprocess", "aggregate_ensemble"} <= rules
    assert not rules & {"split", "synthesize_phantom", "train", "predict_ensemble", "evaluate_ensemble"}


def test_a_library_change_reruns_exactly_the_rules_whose_scripts_import_it(
    finished_run: Path, tmp_path: Path
) -> None:
    """A copy of the installed package, first on PYTHONPATH, is what the Snakefile and every job import;
    editing it stands for editing the library. Only the aggregation scripts import
    spockmip.reporting.tables."""
    library = tmp_path / "library"
    shutil.copytree(
        Path(spockmip.__file__).parent, library / "spockmip", ignore=shutil.ignore_patterns("__pycache__")
    )
    env = {**os.environ, "PYTHONPATH": str(library)}

    def dry_run() -> str:
        return snakemake(finished_run, "-n", "--configfile", "config/test.yaml", env=env).stdout

    # The same code at another place: nothing to do, nor after a comment (no code) is added.
    assert dry_run_jobs(dry_run()) == []
    tables = library / "spockmip" / "reporting" / "tables.py"
    tables.write_text(tables.read_text() + "# a comment\n")
    assert dry_run_jobs(dry_run()) == []
    tables.write_text(tables.read_text() + "CHANGED = True\n")
    output = dry_run()
    # The three aggregations rerun for their parameter; the box plots only because their input will change.
    assert sorted(rules_with_changed_params(output)) == [
        "aggregate",
        "aggregate_ensemble",
        "aggregate_validation",
    ]
    assert sorted(rule for rule, _ in dry_run_jobs(output)) == [
        "aggregate", "aggregate_ensemble", "aggregate_validation", "all", *["plot_metrics"] * 3
    ]  # fmt: skip


def test_targeting_one_metrics_file_schedules_only_that_variant(tmp_path: Path) -> None:
    workdir = copy_project(tmp_path, TEST_CONFIG)
    result = snakemake(
        workdir, "results/demo/unet_mip/fold0/metrics.csv", "-n", "--configfile", "config/test.yaml"
    )
    jobs = dry_run_jobs(result.stdout)
    rules = sorted(rule for rule, _ in jobs)
    assert rules == ["evaluate", "predict", "split", *["synthesize_phantom"] * 5, "train"]
    assert all(w["variant"] == "unet_mip" and w["fold"] == "0" for _, w in jobs if "variant" in w)


def test_targeting_one_ensemble_schedules_only_that_variant(tmp_path: Path) -> None:
    workdir = copy_project(tmp_path, TEST_CONFIG)
    result = snakemake(
        workdir, "results/demo/ds6_mip/ensemble/metrics.csv", "-n", "--configfile", "config/test.yaml"
    )
    jobs = dry_run_jobs(result.stdout)
    rules = sorted(rule for rule, _ in jobs)
    assert rules == ["evaluate_ensemble", "predict_ensemble", "split", *["synthesize_phantom"] * 5,
                     "train", "train"]  # fmt: skip
    assert all(w["variant"] == "ds6_mip" for _, w in jobs if "variant" in w)


def test_continuity_config_dry_runs_and_schedules_every_variant(tmp_path: Path) -> None:
    workdir = copy_project(tmp_path)
    result = snakemake(workdir, "-n", "--configfile", "config/continuity.yaml")
    trainings = {(w["variant"], w["fold"]) for rule, w in dry_run_jobs(result.stdout) if rule == "train"}
    variants = {f"{model}{term}" for model in ("unet", "unetmss") for term in ("", "_mip", "_mmip", "_cldice",
                                                                               "_skelrec")}  # fmt: skip
    assert {v for v, _ in trainings} == variants and len(trainings) == 5 * len(variants)
    assert "sampling grid (grid)" in result.stdout and "clDice x 0.5 (10 iterations)" in result.stdout
    assert "Skeleton Recall x 1" in result.stdout


def test_paper_config_dry_runs_without_data_and_schedules_8_by_5_trainings(tmp_path: Path) -> None:
    workdir = copy_project(tmp_path)
    result = snakemake(workdir, "-n", "--configfile", "config/paper.yaml")
    jobs = dry_run_jobs(result.stdout)
    trainings = {(w["variant"], w["fold"]) for rule, w in jobs if rule == "train"}
    assert len(trainings) == 40
    assert {v for v, _ in trainings} == {
        "unet", "unet_mip", "unet_mmip", "unetmss", "unetmss_mip", "unetmss_mmip", "ds6", "ds6_mip"
    }  # fmt: skip
    assert sum(rule == "ingest_smile_uhura" for rule, _ in jobs) == 1
    counts = {rule: sum(r == rule for r, _ in jobs) for rule in {r for r, _ in jobs}}
    # predict/evaluate: test and cross-validation subjects of each (variant, fold); one ensemble per variant.
    assert counts["predict"] == counts["evaluate"] == 40
    assert counts["predict_ensemble"] == counts["evaluate_ensemble"] == 8
    assert counts["aggregate"] == counts["aggregate_validation"] == counts["aggregate_ensemble"] == 1
    assert "results/smile-uhura/unet/fold0/validation/predictions" in result.stdout


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"training": {"learning_rte": 0.1}},
            r"config training: Additional properties are not allowed \('learning_rte'",
        ),
        ({"training": {"epochs": "many"}}, r"config training.epochs: 'many' is not of type 'integer'"),
        (
            {"training": {"seeds": [2020, 18446744073709551616]}},
            r"config training.seeds.1: 18446744073709551616 is greater than the maximum of 4294967295",
        ),
        (
            {"training": {"cldice_iterations": 1000000000}},
            r"config training: Additional properties are not allowed \('cldice_iterations'",
        ),
        (
            {"variants": {"unet": {"model": "unet", "cldice_iterations": 1000000000}}},
            r"config variants.unet.cldice_iterations: 1000000000 is greater than the maximum of 1000",
        ),
        (
            {"dataset": {"synthetic": {"shape": [2048, 2048, 1024]}}},
            r"config dataset.synthetic.shape: \[2048, 2048, 1024\] is 4,294,967,296 voxels, more than the "
            r"phantom budget",
        ),
        (
            {"variants": {"unet": {"model": "vnet"}}},
            r"config variants.unet.model: 'vnet' is not one of \['unet', 'unetmss'\]",
        ),
        ({"dataset": {"name": ".."}}, r"config dataset.name: '\.\.' does not match"),
        (
            {"training": {"patch_size": [40, 32, 32]}},
            r"config training.patch_size.0: 40 is not a multiple of 16",
        ),
        (
            {"training": {"patch_size": [32, 32, 16]}},
            r"config training.mip_pairing: released needs a cubic config training.patch_size, "
            r"got \[32, 32, 16\].* \(variant unet_mip\)",
        ),
        (
            {"inference": {"patch_size": [32, 32, 32], "strides": [16, 48, 16]}},
            r"config inference.strides: \[16, 48, 16\] exceed the patch config inference.patch_size",
        ),
        (
            {"inference": {"patch_size": [64, 32, 32]}},
            r"config inference.patch_size: \[64, 32, 32\] is larger than the volumes \[48, 48, 32\]",
        ),
        (
            {"variants": {"unet": {"model": "unet", "baseline": "nope"}}},
            r"variants.unet.baseline: 'nope' is not a variant",
        ),
        (
            {"dataset": {"download": True}},
            r"config dataset.download: only the smile_uhura release can be downloaded, dataset.source is s",
        ),
    ],
)
def test_bad_config_fails_with_one_line_naming_the_key(tmp_path: Path, change: dict, message: str) -> None:
    workdir = copy_project(tmp_path, TEST_CONFIG)
    (workdir / "config" / "bad.yaml").write_text(yaml.safe_dump(change, sort_keys=False))
    result = snakemake(workdir, "-n", "--configfile", "config/test.yaml", "config/bad.yaml", check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 1
    assert re.search(message, output), output[-3000:]
    assert "Failed validating" not in output and "description" not in output, "the schema was printed"
    assert len(output.splitlines()) < 12, output
    assert not (workdir / "results").exists()


def test_a_new_split_trains_afresh_and_keeps_the_old_state_aside(tmp_path: Path) -> None:
    """Changing split.seed reruns train; resuming its finished state would leak test subjects into it. Seed
    1 -> 2 beside folds 2 is the change Snakemake's params tracking missed when params were loose values."""
    config = {**TEST_CONFIG, "variants": {"unet": {"model": "unet"}}}
    workdir = copy_project(tmp_path, config)
    target = "results/demo/unet/fold0/model/best.pt"
    snakemake(workdir, "--cores", "2", target, "--configfile", "config/test.yaml")
    first = (workdir / "results" / "demo" / "splits.json").read_text()
    reseeded = {**config, "split": {**config["split"], "seed": 2}}
    (workdir / "config" / "reseeded.yaml").write_text(yaml.safe_dump(reseeded, sort_keys=False))
    snakemake(workdir, "--cores", "2", target, "--configfile", "config/reseeded.yaml")
    assert (workdir / "results" / "demo" / "splits.json").read_text() != first
    log = (workdir / "logs" / "demo" / "train" / "unet" / "fold0.log").read_text()
    assert "was written for other data" in log and "resuming" not in log, log
    (aside,) = (workdir / "results" / "demo" / "unet" / "fold0" / "state" / "set-aside").iterdir()
    assert (aside / "checkpoint.pt").is_file()


def test_a_config_with_only_some_keys_runs_on_the_schema_defaults(tmp_path: Path) -> None:
    workdir = copy_project(tmp_path, {"training": {"epochs": 3}}, name="partial.yaml")
    jobs = dry_run_jobs(snakemake(workdir, "-n", "--configfile", "config/partial.yaml").stdout)
    trainings = [w for rule, w in jobs if rule == "train"]
    assert len(trainings) == 5 and sum(rule == "synthesize_phantom" for rule, _ in jobs) == 7


def test_a_missing_configfile_ends_with_one_line_naming_it(tmp_path: Path) -> None:
    workdir = copy_project(tmp_path)
    result = snakemake(workdir, "-n", "--configfile", "config/absent.yaml", check=False)
    assert result.returncode == 1
    last = result.stdout.strip().splitlines()[-1]
    assert last == "FileNotFoundError: [Errno 2] No such file or directory: 'config/absent.yaml'"


def test_local_import_of_a_missing_label_names_it_without_synapse(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for folder in ("images", "labels"):
        (data / folder).mkdir(parents=True)
    image = nib.Nifti1Image(np.zeros((48, 48, 32), np.float32), np.eye(4))
    nib.save(image, data / "images" / "sub1.nii.gz")
    subjects = ["sub1", "sub2", "sub3", "sub4"]
    config = {
        **TEST_CONFIG,
        "dataset": {"name": "loc", "source": "local", "path": str(data), "subjects": subjects},
    }
    workdir = copy_project(tmp_path / "project", config)
    result = snakemake(
        workdir,
        "--cores",
        "1",
        "resources/loc/images/sub1.nii.gz",
        "--configfile",
        "config/test.yaml",
        check=False,
    )
    log = (workdir / "logs" / "loc" / "import" / "sub1.log").read_text()
    assert result.returncode == 1
    assert f"{data / 'labels' / 'sub1.nii.gz'}: not found (nor .nii)" in log
    assert "Synapse" not in log + result.stdout + result.stderr
    assert not (workdir / "resources" / "loc" / "images" / "sub1.nii.gz").exists()


def test_region_masks_of_a_local_data_set_feed_each_postprocessing_job(tmp_path: Path) -> None:
    subjects = ["sub1", "sub2", "sub3", "sub4", "sub5"]
    config = {
        **TEST_CONFIG,
        "dataset": {"name": "loc", "source": "local", "path": str(tmp_path), "subjects": subjects},
        "postprocessing": {"region_mask": True},
    }
    workdir = copy_project(tmp_path / "project", config)
    output = snakemake(workdir, "-n", "--configfile", "config/test.yaml").stdout
    masks = sorted(w["subject"] for rule, w in dry_run_jobs(output) if rule == "import_region_mask")
    assert masks == subjects
    postprocessing = [inputs for rule, _, inputs in dry_run_inputs(output) if rule == "postprocess"]
    assert len(postprocessing) == len(TEST_CONFIG["variants"])
    for inputs in postprocessing:
        assert {f"resources/loc/masks/{s}.nii.gz" for s in subjects} <= set(inputs)


def test_every_readme_snakemake_command_runs_as_written(finished_run: Path) -> None:
    """Commands that would compute (another config, the cluster profile) are dry-run; the rest run for
    real against the finished tiny demo: the report, one target, the lint, --unlock. The conda route
    needs conda, which the README says the tests do not exercise."""
    commands = readme_commands("snakemake")
    assert len(commands) >= 9, commands
    for command in commands:
        if "--sdm" in command and shutil.which("conda") is None:
            continue
        heavy = "--configfile" in command or "--profile" in command
        result = snakemake(finished_run, *(["-n"] if heavy else []), *command[1:], check=False)
        assert result.returncode == 0, f"{shlex.join(command)}\n{result.stderr[-3000:]}"
    assert (finished_run / "results" / "demo" / "report.html").stat().st_size > 10000


def test_html_report_holds_the_tables_and_figures(finished_run: Path) -> None:
    snakemake(finished_run, "--configfile", "config/test.yaml", "--report", "report.html")
    html = (finished_run / "report.html").read_text()
    names = ["summary.html", "cv_summary.html", "ensemble_summary.html", "metrics_boxplots.png",
             "cv_metrics_boxplots.png", "ensemble_metrics_boxplots.png", "learning_curves.png"]  # fmt: skip
    subject = json.loads((finished_run / "results" / "demo" / "splits.json").read_text())["test"][0]
    for name in [*names, f"{subject}.png"]:
        assert name in html, name
    assert "synthetic TOF-MRA-like vessel phantoms" in html and "small networks" in html
