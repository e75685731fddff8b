"""The SMILE-UHURA download with the real synapseclient, offline: a fake Synapse on 127.0.0.1 serves a
fabricated release (tests/synapse_helpers.py).

Each download runs in a process of its own whose client reads the fake's endpoints from the
``~/.synapseConfig`` of a home folder made for the test; the servers' request log shows every call it made.
"""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from release_helpers import RELEASE_SUBJECTS, make_release
from synapse_helpers import DOWNLOAD, NOT_FOUND, TOKEN, FakeSynapse, client_environment, download, serve

from spockmip.datasets.download import RELEASE_LAYOUT, download_release, release_root
from spockmip.datasets.smile_uhura import scan_release
from spockmip.errors import DownloadError

# Every call the download makes (docs/data.md lists them): the token check, then the project's tree walked
# entity by entity, then each file's handle and its bytes.
REST_CALLS = {
    "GET /repo/v1/userProfile",
    "POST /repo/v1/entity/{id}/bundle2",
    "POST /repo/v1/entity/children",
    "POST /file/v1/fileHandle/batch",
    "GET <pre-signed URL>",
}


def _served_files(root: Path) -> dict[str, bytes]:
    """Each file below ``root`` (path relative to it) and its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def served(phantom_dir: Path, tmp_path: Path) -> Path:
    """The fabricated release as the project holds it: the four folders inside one folder."""
    make_release(phantom_dir, tmp_path / "served" / "SMILE-UHURA")
    return tmp_path / "served"


@pytest.mark.synapse
def test_the_release_lands_where_ingestion_reads_it(served: Path, tmp_path: Path) -> None:
    destination = tmp_path / "data" / "release"
    with serve(FakeSynapse(served)) as fake:
        result = download(destination, client_environment(fake, tmp_path / "home"))
    assert result.returncode == 0, result.stderr
    assert _served_files(destination) == _served_files(served / "SMILE-UHURA")
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["release"], "no staging folder left"
    assert sorted((p.subject, p.part) for p in scan_release(destination)) == sorted(RELEASE_SUBJECTS.items())
    # The calls are exactly the documented ones (any other would show in the log), the storage never saw
    # the token, and the token is in nothing written or said.
    assert fake.calls() == REST_CALLS
    assert all(r.authorised != (r.server == "storage") for r in fake.requests)
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert not [p for p in written if TOKEN.encode() in p.read_bytes()], "the token was written"
    assert TOKEN not in result.stderr + result.stdout


# id -> (token, how the fake refuses, the reason the one line gives)
REFUSALS = {
    "wrong token (401)": (
        "wrong-token-51d2e8",
        {},
        "SynapseAuthenticationError: You are not logged in",
    ),
    "missing project (404)": (
        TOKEN,
        {"refusals": {r"/repo/v1/entity/syn47164761(/.*)?": (404, NOT_FOUND)}},
        f"SynapseHTTPError: 404 Client Error: {NOT_FOUND}",
    ),
    "terms not accepted (403)": (
        TOKEN,
        {"refusals": {r"/file/v1/fileHandle/batch": (403, "Terms of use have not been accepted")}},
        "8 of 8 files not fetched, the first error: SynapseHTTPError: 403 Client Error: Terms of use",
    ),
    "terms not accepted (UNAUTHORIZED file results)": (
        TOKEN,
        {"file_failure": "UNAUTHORIZED"},
        "8 of 8 files not fetched, the first error: SynapseAuthorizationError: You are not authorized",
    ),
    "a file's bytes do not match its MD5": (
        TOKEN,
        {"corrupt": "SMILE-UHURA/validate/sub017.nii.gz"},
        "1 of 8 files not fetched, the first error: SynapseMd5MismatchError: Downloaded file",
    ),
}


@pytest.mark.synapse
@pytest.mark.parametrize(("token", "refusal", "reason"), REFUSALS.values(), ids=REFUSALS.keys())
def test_a_refused_download_ends_in_one_line_without_the_token(
    served: Path, tmp_path: Path, token: str, refusal: dict, reason: str
) -> None:
    with serve(FakeSynapse(served, **refusal)) as fake:
        result = download(tmp_path / "data" / "release", client_environment(fake, tmp_path / "home", token))
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("spockmip.errors.DownloadError: downloading Synapse project syn47164761 failed: ")
    assert reason in last
    assert token not in result.stderr + result.stdout
    assert list((tmp_path / "data").iterdir()) == [], "no release, no staging folder"
    assert fake.calls() <= REST_CALLS


@pytest.mark.synapse
def test_a_download_killed_mid_transfer_leaves_no_release_and_the_rerun_completes(
    served: Path, tmp_path: Path
) -> None:
    destination = tmp_path / "data" / "release"
    staging = tmp_path / "data" / ".release.download"
    trickled = (served / "SMILE-UHURA" / "train" / "sub002.nii.gz").read_bytes()
    with serve(FakeSynapse(served, trickle="SMILE-UHURA/train/sub002.nii.gz")) as fake:
        env = client_environment(fake, tmp_path / "home")
        process = subprocess.Popen(
            [*DOWNLOAD, str(destination)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        assert fake.trickling.wait(timeout=60), "the trickled file was never asked for"
        deadline = time.monotonic() + 10
        while not _holds_part_of(staging, "sub002.nii.gz", trickled) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _holds_part_of(staging, "sub002.nii.gz", trickled), "the transfer had not begun"
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
        assert not destination.exists(), "a killed download must not look like a release"
        fake.trickle = None
        fake.resume.set()
        result = download(destination, env)
    assert result.returncode == 0, result.stderr
    assert "left by an interrupted download" in result.stderr
    assert _served_files(destination) == _served_files(served / "SMILE-UHURA")
    assert not staging.exists()


def _holds_part_of(folder: Path, name: str, data: bytes) -> bool:
    """Whether ``folder`` holds, under a name beginning with ``name``, a file shorter than ``data`` that
    begins it (the client reads in large chunks: the part may still be empty)."""
    return any(
        p.stat().st_size < len(data) and data.startswith(p.read_bytes())
        for p in folder.rglob(f"{name}*")
        if p.is_file()
    )


@pytest.mark.parametrize("wrapped", [False, True], ids=["layout at the top", "layout in a folder"])
def test_the_release_root_is_the_folder_holding_the_four_folders(tmp_path: Path, wrapped: bool) -> None:
    root = tmp_path / "download" / "SMILE-UHURA" if wrapped else tmp_path / "download"
    for name in RELEASE_LAYOUT:
        (root / name).mkdir(parents=True)
    assert release_root(tmp_path / "download") == root


def test_a_download_without_the_release_layout_names_what_is_missing(tmp_path: Path) -> None:
    for name in RELEASE_LAYOUT[:3]:
        (tmp_path / name).mkdir()
    with pytest.raises(
        DownloadError, match=r"has no validate_label/ \(it holds: train, train_label, validate\)"
    ):
        release_root(tmp_path)


def test_without_synapseclient_the_extra_to_install_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "synapseclient", None)  # makes `import synapseclient` fail
    with pytest.raises(DownloadError, match=r"pip install 'spockmip\[synapse\]'"):
        download_release(tmp_path / "release", environ={"SYNAPSE_AUTH_TOKEN": TOKEN})
    assert not (tmp_path / "release").exists()
