"""The SMILE-UHURA download through the workflow, offline: the real synapseclient in the job fetches a
fabricated release from a fake Synapse on 127.0.0.1 (tests/synapse_helpers.py), whose endpoints it reads
from the ``~/.synapseConfig`` of a home folder made for the test.
"""

from pathlib import Path

import pandas as pd
import pytest
from release_helpers import RELEASE_CONFIG, RELEASE_SUBJECTS, make_release
from synapse_helpers import TOKEN, FakeSynapse, client_environment, serve
from workflow_helpers import copy_project, dry_run_jobs, snakemake

TARGET = ("resources/uhura/manifest.tsv", "--configfile", "config/test.yaml")


def _download_config() -> dict:
    return {**RELEASE_CONFIG, "dataset": {**RELEASE_CONFIG["dataset"], "download": True}}


@pytest.mark.synapse
def test_the_workflow_downloads_then_ingests_the_release(phantom_dir: Path, tmp_path: Path) -> None:
    served = make_release(phantom_dir, tmp_path / "served")
    workdir = copy_project(tmp_path / "project", _download_config())
    with serve(FakeSynapse(served)) as fake:
        env = client_environment(fake, tmp_path / "home")
        snakemake(workdir, "--cores", "1", *TARGET, env=env)
        assert dry_run_jobs(snakemake(workdir, "-n", *TARGET, env=env).stdout) == []
    assert "GET <pre-signed URL>" in fake.calls()
    release = workdir / "resources" / "uhura" / "release"
    folders = sorted(p.name for p in release.iterdir() if p.name != ".snakemake_timestamp")
    assert folders == ["train", "train_label", "validate", "validate_label"]
    manifest = pd.read_csv(workdir / "resources" / "uhura" / "manifest.tsv", sep="\t")
    assert list(manifest["subject"]) == list(RELEASE_SUBJECTS)
    assert all(Path(image).is_relative_to(release.relative_to(workdir)) for image in manifest["image"])
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert not [p for p in written if TOKEN.encode() in p.read_bytes()], "the token was written"


def test_without_a_token_the_download_stops_with_one_line(phantom_dir: Path, tmp_path: Path) -> None:
    workdir = copy_project(tmp_path / "project", _download_config())
    with serve(FakeSynapse(make_release(phantom_dir, tmp_path / "served"))) as fake:
        env = client_environment(fake, tmp_path / "home", token=None)
        result = snakemake(workdir, "--cores", "1", *TARGET, env=env, check=False)
    assert result.returncode != 0
    last = (workdir / "logs" / "uhura" / "download_smile_uhura.log").read_text().strip().splitlines()[-1]
    assert last.startswith("spockmip.errors.DownloadError: dataset.download is true but SYNAPSE_AUTH_TOKEN")
    assert "or set dataset.download: false and download the SMILE-UHURA release" in last
    assert fake.requests == [], "Synapse was not asked"
    assert list(workdir.glob("resources/uhura/*")) == [], "no release, no staging folder"
