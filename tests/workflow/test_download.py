"""The SMILE-UHURA download through the workflow, offline: a stand-in synapseclient serves a fabricated
release (tests/release_helpers.py), first on the jobs' PYTHONPATH; the record of calls that only it writes
shows that it, not the real client, was imported, so Synapse is never contacted.
"""

import os
from pathlib import Path

import pandas as pd
from release_helpers import (
    RELEASE_CONFIG,
    RELEASE_SUBJECTS,
    TOKEN,
    make_release,
    recorded_calls,
    write_synapse_stand_in,
)
from workflow_helpers import copy_project, dry_run_jobs, snakemake


def _download_config() -> dict:
    return {**RELEASE_CONFIG, "dataset": {**RELEASE_CONFIG["dataset"], "download": True}}


def _environment(stand_in: Path, token: str | None) -> dict[str, str]:
    env = {
        key: value for key, value in os.environ.items() if key not in ("SPOCKMIP_DATA", "SYNAPSE_AUTH_TOKEN")
    }
    return {**env, "PYTHONPATH": str(stand_in), **({"SYNAPSE_AUTH_TOKEN": token} if token else {})}


def test_the_workflow_downloads_then_ingests_the_release(phantom_dir: Path, tmp_path: Path) -> None:
    record = write_synapse_stand_in(tmp_path / "stand_in", make_release(phantom_dir, tmp_path / "served"))
    workdir = copy_project(tmp_path / "project", _download_config())
    env = _environment(tmp_path / "stand_in", TOKEN)
    target = ("resources/uhura/manifest.tsv", "--configfile", "config/test.yaml")
    snakemake(workdir, "--cores", "1", *target, env=env)
    # The stand-in, not the real client, was imported: Synapse was not contacted.
    (call,) = recorded_calls(record)
    assert call["entity"] == "syn47164761" and Path(call["path"]).name == ".release.download"
    release = workdir / "resources" / "uhura" / "release"
    folders = sorted(p.name for p in release.iterdir() if p.name != ".snakemake_timestamp")
    assert folders == ["train", "train_label", "validate", "validate_label"]
    manifest = pd.read_csv(workdir / "resources" / "uhura" / "manifest.tsv", sep="\t")
    assert list(manifest["subject"]) == list(RELEASE_SUBJECTS)
    assert all(Path(image).is_relative_to(release.relative_to(workdir)) for image in manifest["image"])
    written = [p for p in workdir.rglob("*") if p.is_file()]
    assert not [p for p in written if TOKEN.encode() in p.read_bytes()], "the token was written"
    assert dry_run_jobs(snakemake(workdir, "-n", *target, env=env).stdout) == []


def test_without_a_token_the_download_stops_with_one_line(phantom_dir: Path, tmp_path: Path) -> None:
    record = write_synapse_stand_in(tmp_path / "stand_in", make_release(phantom_dir, tmp_path / "served"))
    workdir = copy_project(tmp_path / "project", _download_config())
    env = _environment(tmp_path / "stand_in", token=None)
    result = snakemake(
        workdir, "--cores", "1", "resources/uhura/manifest.tsv", "--configfile", "config/test.yaml",
        env=env, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    last = (workdir / "logs" / "uhura" / "download_smile_uhura.log").read_text().strip().splitlines()[-1]
    assert last.startswith("spockmip.errors.DownloadError: dataset.download is true but SYNAPSE_AUTH_TOKEN")
    assert "or set dataset.download: false and download the SMILE-UHURA release" in last
    assert not record.exists(), "Synapse was not asked"
    assert list(workdir.glob("resources/uhura/*")) == [], "no release, no staging folder"
