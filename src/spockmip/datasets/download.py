"""Fetching the SMILE-UHURA release from Synapse into the folder that ingestion reads.

The release is open only to registered challenge participants, so it is fetched only on request and with
the user's own Synapse personal access token, read from ``SYNAPSE_AUTH_TOKEN``. The token goes to the
Synapse client and nowhere else: it is never logged, never written, and scrubbed from the client's error
messages. The files land in a staging folder beside the destination, which gets the release's name only
once the download is complete and has the release's layout: a download that fails or is killed never looks
like a release (the next attempt removes what a killed one left).

``synapseclient`` is an optional dependency (``pip install 'spockmip[synapse]'``), imported only here.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from spockmip.datasets.smile_uhura import (
    MANUAL_DOWNLOAD_HINT,
    RELEASE_FOLDERS,
    SYNAPSE_PROJECT,
    TOKEN_VARIABLE,
)
from spockmip.errors import DownloadError

log = logging.getLogger(__name__)
RELEASE_LAYOUT = [folder for pair in RELEASE_FOLDERS.items() for folder in pair]


def synapse_token(environ: Mapping[str, str] = os.environ) -> str:
    """The personal access token from ``SYNAPSE_AUTH_TOKEN``, refusing an unset or empty one."""
    token = environ.get(TOKEN_VARIABLE, "").strip()
    if not token:
        raise DownloadError(
            f"dataset.download is true but {TOKEN_VARIABLE} is not set: create a personal access token "
            f"(view and download) in your Synapse account settings and export {TOKEN_VARIABLE}=<token>, or "
            f"set dataset.download: false and {MANUAL_DOWNLOAD_HINT}"
        )
    return token


def _sync(project: str, token: str, folder: Path) -> None:
    """Every file of ``project`` into ``folder``, its folders reproduced (synapseutils.syncFromSynapse)."""
    try:
        import synapseclient
        import synapseutils
    except ImportError:
        raise DownloadError(
            "dataset.download needs the synapseclient package: pip install 'spockmip[synapse]'"
        ) from None
    try:
        client = synapseclient.Synapse()
        client.login(authToken=token, silent=True)
        synapseutils.syncFromSynapse(client, project, path=str(folder), manifest="suppress")
    except Exception as error:  # the client's errors vary by version; each says what went wrong
        message = str(error).replace(token, "<token>")
        raise DownloadError(
            f"downloading Synapse project {project} failed: {type(error).__name__}: {message}"
        ) from None


def release_root(folder: Path, project: str = SYNAPSE_PROJECT) -> Path:
    """``folder`` or the one sub-folder of it that holds the release's four folders.

    Synapse projects often wrap their files in a folder; the layout inside it is what ingestion reads.
    """
    candidates = [folder, *sorted(p for p in folder.iterdir() if p.is_dir())]
    for candidate in candidates:
        if all((candidate / name).is_dir() for name in RELEASE_LAYOUT):
            return candidate
    missing = ", ".join(f"{name}/" for name in RELEASE_LAYOUT if not (folder / name).is_dir())
    found = ", ".join(sorted(p.name for p in folder.iterdir())) or "nothing"
    raise DownloadError(
        f"the download of Synapse project {project} has no {missing} (it holds: {found}); "
        f"{MANUAL_DOWNLOAD_HINT}"
    )


def download_release(
    destination: str | Path, project: str = SYNAPSE_PROJECT, environ: Mapping[str, str] = os.environ
) -> Path:
    """Download the release into ``destination`` (which must not hold anything yet) and return it."""
    destination = Path(destination)
    token = synapse_token(environ)
    if destination.exists() and any(destination.iterdir()):
        raise DownloadError(f"{destination}: not empty; the release is downloaded into a new folder only")
    staging = destination.with_name(f".{destination.name}.download")
    if staging.exists():
        log.info("removing %s, left by an interrupted download", staging)
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    try:
        log.info("downloading Synapse project %s into %s", project, staging)
        _sync(project, token, staging)
        release_root(staging, project).replace(destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("release in %s", destination)
    return destination
