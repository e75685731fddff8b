"""The published-weights part of the DAG, offline, from a fabricated Hugging Face cache."""

import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import torch
from hf_helpers import COMMIT, REPO_ID, write_hf_cache
from workflow_helpers import copy_project, dry_run_jobs, snakemake

from spockmip.networks.unet import build_model

CONFIG = {
    "dataset": {"name": "pub", "source": "synthetic",
                "synthetic": {"n_subjects": 4, "seed": 5, "shape": [48, 48, 32]}},
    "split": {"folds": 2, "seed": 1, "test_subjects": 1},
    "training": {"init_features": 2, "patch_size": [32, 32, 32], "strides": [16, 16, 16], "epochs": 1,
                 "patches_per_epoch": 4, "batch_size": 2},
    "variants": {"unetmss": {"model": "unetmss"}},
    "published_weights": {"tiny_mss": {"repo": REPO_ID, "revision": COMMIT, "variant": "unetmss"}},
    "inference": {"patch_size": [32, 32, 32], "strides": [16, 16, 16]},
    "resources": {"train": {"threads": 1}, "predict": {"threads": 1}},
}  # fmt: skip


def test_published_weights_are_evaluated_offline_without_training(tmp_path: Path) -> None:
    torch.manual_seed(0)
    cache = write_hf_cache(tmp_path / "hub", build_model("unetmss", init_features=2))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache), "HF_HOME": str(tmp_path / "home")}
    workdir = copy_project(tmp_path / "project", CONFIG)
    target = "results/pub/tables/published.csv"

    dry_run = snakemake(workdir, target, "-n", "--configfile", "config/test.yaml", env=env).stdout
    planned = dry_run_jobs(dry_run)
    assert "train" not in {rule for rule, _ in planned}, "the published table must not need our trainings"

    snakemake(workdir, target, "--cores", "2", "--configfile", "config/test.yaml", env=env)
    table = pd.read_csv(workdir / target)
    assert list(table["variant"]) == ["tiny_mss"] and table.loc[0, "n"] == 1
    assert 0.0 <= table.loc[0, "dice_mean"] <= 1.0
    assert (workdir / "results" / "pub" / "tables" / "published.md").read_text().startswith("| Variant")
    fetched = workdir / "resources" / "published" / "tiny_mss"
    assert sorted(p.name for p in fetched.iterdir()) == ["config.json", "model.safetensors"]

    # The CLI with the repo id gives the DAG's segmentation, voxel for voxel.
    subject = next((workdir / "results" / "pub" / "published" / "tiny_mss" / "predictions").glob("*.nii.gz"))
    image = workdir / "resources" / "pub" / "images" / subject.name
    cli_output = tmp_path / "cli.nii.gz"
    subprocess.run(
        [sys.executable, "-m", "spockmip.cli", "predict", "--weights", REPO_ID, "--revision", COMMIT,
         "--input", str(image), "--output", str(cli_output), "--patch-size", "32", "--stride", "16"],
        check=True, env=env, capture_output=True,
    )  # fmt: skip
    np.testing.assert_array_equal(
        np.asanyarray(nib.load(cli_output).dataobj), np.asanyarray(nib.load(subject).dataobj)
    )


def test_a_published_repo_missing_from_the_offline_cache_fails_with_its_name(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_CACHE": str(tmp_path / "empty"),
        "HF_HOME": str(tmp_path),
    }
    workdir = copy_project(tmp_path / "project", CONFIG)
    target = "resources/published/tiny_mss/config.json"
    result = snakemake(
        workdir, target, "--cores", "1", "--configfile", "config/test.yaml", env=env, check=False
    )
    assert result.returncode != 0
    assert result.stderr.count("Trying to restart job") == 3, "a failed download is retried 3 times"
    log = (workdir / "logs" / "published" / "fetch" / "tiny_mss.log").read_text()
    assert f"{REPO_ID}: cannot get the published weights" in log
    assert not (workdir / "resources" / "published" / "tiny_mss" / "config.json").exists()
