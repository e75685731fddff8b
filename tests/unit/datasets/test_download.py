"""The SMILE-UHURA download, offline: a stand-in synapseclient serves a fabricated release.

The stand-in packages (tests/release_helpers.py) are put first on the import path; the record of calls that
only they write shows that they, not the real client, were imported, so Synapse is never contacted.
"""

import hashlib
import sys
from pathlib import Path

import pytest
from release_helpers import (
    RELEASE_SUBJECTS,
    TOKEN,
    make_release,
    recorded_calls,
    write_synapse_stand_in,
)

from spockmip.datasets.download import download_release
from spockmip.errors import DownloadError

ENVIRON = {"SYNAPSE_AUTH_TOKEN": TOKEN}


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Where the stand-in packages go; imported afresh by each test."""
    folder = tmp_path / "stand_in"
    monkeypatch.syspath_prepend(str(folder))
    for package in ("synapseclient", "synapseutils"):
        monkeypatch.delitem(sys.modules, package, raising=False)
    return folder


@pytest.mark.parametrize("wrapped", [False, True], ids=["layout at the top", "layout in a folder"])
def test_the_release_is_downloaded_through_a_staging_folder(
    phantom_dir: Path, tmp_path: Path, stand_in: Path, wrapped: bool
) -> None:
    served = tmp_path / "served"
    make_release(phantom_dir, served / "SMILE-UHURA" if wrapped else served)
    record = write_synapse_stand_in(stand_in, served)
    destination = tmp_path / "data" / "release"
    staging = destination.with_name(".release.download")
    (staging / "train").mkdir(parents=True)
    (staging / "train" / "half.nii.gz").write_bytes(b"left by a killed download")
    assert download_release(destination, environ=ENVIRON) == destination
    assert sorted(p.name for p in destination.iterdir()) == [
        "train",
        "train_label",
        "validate",
        "validate_label",
    ]
    assert sorted(p.stem.split(".")[0] for p in destination.glob("*/*")) == sorted([*RELEASE_SUBJECTS] * 2)
    assert not staging.exists()
    (call,) = recorded_calls(record)
    assert call == {"entity": "syn47164761", "path": str(staging), "manifest": "suppress",
                    "token_sha256": hashlib.sha256(TOKEN.encode()).hexdigest()}  # fmt: skip


def test_an_interrupted_download_leaves_nothing_and_never_shows_the_token(
    phantom_dir: Path, tmp_path: Path, stand_in: Path
) -> None:
    write_synapse_stand_in(stand_in, make_release(phantom_dir, tmp_path / "served"), fail_after=3)
    destination = tmp_path / "data" / "release"
    with pytest.raises(DownloadError) as failure:
        download_release(destination, environ=ENVIRON)
    message = str(failure.value)
    assert message.startswith("downloading Synapse project syn47164761 failed: ConnectionError: ")
    assert TOKEN not in message and "<token>" in message
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == []


def test_a_download_without_the_release_layout_names_what_is_missing(
    phantom_dir: Path, tmp_path: Path, stand_in: Path
) -> None:
    served = make_release(phantom_dir, tmp_path / "served")
    for label in served.glob("validate_label/*"):
        label.unlink()
    (served / "validate_label").rmdir()
    write_synapse_stand_in(stand_in, served)
    destination = tmp_path / "data" / "release"
    with pytest.raises(
        DownloadError, match=r"has no validate_label/ \(it holds: train, train_label, validate\)"
    ):
        download_release(destination, environ=ENVIRON)
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == []


def test_without_synapseclient_the_extra_to_install_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "synapseclient", None)  # makes `import synapseclient` fail
    with pytest.raises(DownloadError, match=r"pip install 'spockmip\[synapse\]'"):
        download_release(tmp_path / "release", environ=ENVIRON)
    assert not (tmp_path / "release").exists()
