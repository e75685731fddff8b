"""SMILE-UHURA ingestion in the workflow, on a fabricated release with the real folder names and file
extensions: ingested then trained on, or, where the release is missing, stopped with download instructions."""

import os
from pathlib import Path

import pandas as pd
from release_helpers import RELEASE_CONFIG, make_release
from workflow_helpers import copy_project, snakemake


def test_release_goes_through_ingestion_and_training_in_the_workflow(
    phantom_dir: Path, tmp_path: Path
) -> None:
    release = make_release(phantom_dir, tmp_path / "release")
    workdir = copy_project(tmp_path / "project", RELEASE_CONFIG)
    env = {**os.environ, "SPOCKMIP_DATA": str(release)}
    snakemake(workdir, "--cores", "2", "--configfile", "config/test.yaml", env=env)
    assert (workdir / "resources" / "uhura" / "manifest.tsv").is_file()
    summary = pd.read_csv(workdir / "results" / "uhura" / "tables" / "summary.csv")
    assert list(summary["variant"]) == ["unet_mip"] and (summary["n"] == 2).all()


def test_missing_release_stops_the_workflow_with_download_instructions(tmp_path: Path) -> None:
    workdir = copy_project(tmp_path / "project", RELEASE_CONFIG)
    env = {**os.environ, "SPOCKMIP_DATA": str(tmp_path / "nowhere")}
    result = snakemake(workdir, "--cores", "1", "--configfile", "config/test.yaml", env=env, check=False)
    assert result.returncode != 0
    log = (workdir / "logs" / "uhura" / "ingest_smile_uhura.log").read_text()
    assert "SMILE-UHURA release not found" in log and "syn47164761" in log
    assert "set dataset.download: true and export SYNAPSE_AUTH_TOKEN=" in log.strip().splitlines()[-1]
    assert not (workdir / "resources" / "uhura" / "images").exists() or not any(
        (workdir / "resources" / "uhura" / "images").iterdir()
    )
    assert "train" not in {p.name for p in (workdir / "logs" / "uhura").iterdir()}, (
        "nothing after ingestion runs"
    )
