"""Fetching the SMILE-UHURA release from Synapse into the folder that ingestion reads.

The release is open only to registered challenge participants, so it is fetched only on request and with
the user's own Synapse personal access token, read from ``SYNAPSE_AUTH_TOKEN``. The token goes to the
Synapse client and nowhere else: it is never logged, never written, and scrubbed from the client's error
messages. The files land in a staging folder beside the destination, which gets the release's name only
once the download is complete (every file the project lists is on disk, and the client logged no error) and
has the release's layout: a download that fails or is killed never looks like a release (the next attempt
removes what a killed one left). docs/data.md lists the REST calls the download makes.

``synapseclient`` is an optional dependency (``pip install 'spockmip[synapse]'``), imported only here.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

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


class _LoggedErrors(logging.Handler):
    """The errors the client logs while it syncs, each as ``Type: message``.

    The client's sync reports a file or folder it could not fetch only in its log and carries on
    (``FailureStrategy.LOG_EXCEPTION``, its default); the strategy that raises instead (``RAISE_EXCEPTION``)
    leaves the sync waiting forever in synapseclient 4.14.0, as the worker that raises never marks its
    item done.
    """

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.errors: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        error = record.exc_info[1] if record.exc_info else None
        self.errors.append(f"{type(error).__name__}: {error}" if error else record.getMessage())


def _client_classes() -> tuple[Any, Any]:
    """synapseclient's ``Synapse`` and ``Project``; the extra to install when the client is missing."""
    try:
        from synapseclient import Synapse
        from synapseclient.models import Project
    except ImportError:
        raise DownloadError(
            "dataset.download needs the synapseclient package: pip install 'spockmip[synapse]'"
        ) from None
    return Synapse, Project


def _sync(project: str, token: str, folder: Path) -> None:
    """Every folder and file of ``project`` into ``folder``, its folders reproduced; any error ends it.

    The client's own checks are skipped (``skip_checks``): they ask the package registry for a newer client
    and probe each endpoint, neither of which the download needs. The endpoints are the client's own (the
    ``[endpoints]`` of ``~/.synapseConfig``, else Synapse's).
    """
    Synapse, Project = _client_classes()
    logged = _LoggedErrors()
    try:
        client = Synapse(skip_checks=True)
        client.login(authToken=token, silent=True)
        client.logger.addHandler(logged)
        try:
            synced = _sync_tree(client, Project(id=project), folder)
        finally:
            client.logger.removeHandler(logged)
    except Exception as error:  # the client's errors vary by version; each says what went wrong
        raise DownloadError(_failure(project, f"{type(error).__name__}: {error}", token)) from None
    _check_every_file_fetched(project, synced.flatten_file_list(), logged.errors, token)


def _sync_tree(client: Any, project: Any, folder: Path) -> Any:
    """The project's folders and files, fetched into ``folder``; returns the synced project.

    Only folders and files are walked (a project may hold tables and views, which ingestion never reads),
    and no manifest and no provenance are fetched or written: ingestion reads the volumes only.
    """
    return project.sync_from_synapse(
        path=str(folder),
        include_types=["folder", "file"],
        include_activity=False,
        manifest="suppress",
        synapse_client=client,
    )


def _check_every_file_fetched(project: str, files: list[Any], errors: list[str], token: str) -> None:
    """Refuse a sync that logged an error or left a file it listed without its bytes on disk."""
    missing = [file.name for file in files if not (file.path and Path(file.path).is_file())]
    if errors or missing:
        first = errors[0] if errors else "the client reported no error"
        reason = f"{len(missing)} of {len(files)} files not fetched, the first error: {first}"
        raise DownloadError(_failure(project, reason, token))


def _failure(project: str, reason: str, token: str) -> str:
    """The one-line message of a failed download: the client's ``reason``, the token replaced.

    The client's HTTP errors put the server's reason on a line of their own; a job log's last line must
    hold the whole error.
    """
    message = f"downloading Synapse project {project} failed: {reason}"
    return " ".join(message.replace(token, "<token>").split())


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
