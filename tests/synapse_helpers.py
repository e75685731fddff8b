"""A fake Synapse on 127.0.0.1 for the real synapseclient: the REST calls a project download makes.

:class:`FakeSynapse` serves a local folder as a Synapse project (folders and files as entities, each file
with a file handle and its MD5) and answers only what the download asks; anything else is a 404 that the
request log shows. Two servers share it, as Synapse and S3 are two hosts: ``repo`` answers the repository
and file services, ``storage`` the pre-signed URLs the file service hands out. Every request is logged,
so a test can show which calls the download made and that it asked nothing of anyone else.

:func:`client_environment` is how a process's client finds it: the ``[endpoints]`` section of the
``~/.synapseConfig`` that synapseclient reads, in a home folder of the test's own. The production code
knows nothing of this.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from spockmip.datasets.smile_uhura import SYNAPSE_PROJECT

# The token the fake service accepts; it must appear in nothing spockmip writes or says.
TOKEN = "test-token-7f3a9c"
NOT_FOUND = "The resource you are attempting to access cannot be found"
CONCRETE = "org.sagebionetworks.repo.model."

# What a test process runs: the download as the workflow's job runs it, logging at INFO to stderr, an error
# ending it with a traceback whose last line is the error's message.
DOWNLOAD = [
    sys.executable,
    "-c",
    "import logging, sys; logging.basicConfig(level=logging.INFO); "
    "from spockmip.datasets.download import download_release; download_release(sys.argv[1])",
]


@dataclass(frozen=True)
class Entity:
    """A project, folder or file of the fake service; a file's bytes stay on disk until downloaded."""

    id: str
    name: str
    parent: str | None
    kind: str  # Project, Folder or FileEntity
    path: Path
    handle: str | None = None

    def as_json(self) -> dict[str, Any]:
        entity: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "concreteType": CONCRETE + self.kind,
            "etag": f"etag-{self.id}",
            "versionNumber": 1,
            "versionLabel": "1",
            "isLatestVersion": True,
            "createdOn": "2023-01-01T00:00:00.000Z",
            "modifiedOn": "2023-01-01T00:00:00.000Z",
            "createdBy": "1",
            "modifiedBy": "1",
        }
        if self.parent is not None:
            entity["parentId"] = self.parent
        if self.handle is not None:
            entity["dataFileHandleId"] = self.handle
        return entity

    def file_handle(self) -> dict[str, Any]:
        """The S3 file handle Synapse keeps for a file: name, size and MD5 of its bytes."""
        data = self.path.read_bytes()
        return {
            "id": self.handle,
            "concreteType": "org.sagebionetworks.repo.model.file.S3FileHandle",
            "fileName": self.name,
            "contentType": "application/octet-stream",
            "contentMd5": hashlib.md5(data).hexdigest(),
            "contentSize": len(data),
            "bucketName": "fake-bucket",
            "key": f"{self.handle}/{self.name}",
            "storageLocationId": 1,
            "etag": f"etag-{self.handle}",
            "createdBy": "1",
            "createdOn": "2023-01-01T00:00:00.000Z",
        }


@dataclass(frozen=True)
class Request:
    """One request a server got: which server, method, path (query left out), whether it carried a token."""

    server: str
    method: str
    path: str
    authorised: bool


@dataclass
class FakeSynapse:
    """The state the two servers share: the project, what each request got, and the test's refusals."""

    release: Path
    project: str = SYNAPSE_PROJECT
    token: str = TOKEN
    entities: dict[str, Entity] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    # path pattern -> (status, reason): the answer to every request whose path matches, instead of the
    # normal one.
    refusals: dict[str, tuple[int, str]] = field(default_factory=dict)
    # The file service's answer for each file: its handle and URL, or this failure code (as for a user who
    # has not met the file's access requirements).
    file_failure: str | None = None
    # When set, storage sends this file (relative to the release) with its first byte changed, so that its
    # MD5 is not the one its file handle states.
    corrupt: str | None = None
    # When set, storage sends half of this file (relative to the release), signals ``trickling`` and waits
    # for ``resume``.
    trickle: str | None = None
    trickling: threading.Event = field(default_factory=threading.Event)
    resume: threading.Event = field(default_factory=threading.Event)
    repo_url: str = ""
    storage_url: str = ""

    def __post_init__(self) -> None:
        self._add(self.release, self.project, None)

    def _add(self, path: Path, entity_id: str, parent: str | None) -> None:
        if path.is_file():
            handle = str(1000 + len(self.entities))
            self.entities[entity_id] = Entity(entity_id, path.name, parent, "FileEntity", path, handle)
            return
        self.entities[entity_id] = Entity(
            entity_id, path.name, parent, "Folder" if parent else "Project", path
        )
        for child in sorted(path.iterdir()):
            self._add(child, f"syn{90000000 + len(self.entities)}", entity_id)

    def children(self, parent: str) -> list[Entity]:
        return [entity for entity in self.entities.values() if entity.parent == parent]

    def file_of(self, handle: str) -> Entity:
        (entity,) = [e for e in self.entities.values() if e.handle == handle]
        return entity

    def calls(self) -> set[str]:
        """Every request as ``METHOD path``, entity ids as ``{id}`` and storage as ``<pre-signed URL>``."""
        return {
            f"{r.method} <pre-signed URL>"
            if r.server == "storage"
            else f"{r.method} {_ID.sub('{id}', r.path)}"
            for r in self.requests
        }


_ID = re.compile(r"syn\d+")


class _HttpError(Exception):
    """An error answer: status and the JSON ``reason`` Synapse puts in its error bodies."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the service keeps its own log (:attr:`FakeSynapse.requests`)."""

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length)) if length else None

    def _send(self, status: int, data: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self) -> None:
        fake, path = self.server.fake, self.path.split("?")[0]
        authorisation = self.headers.get("Authorization")
        fake.requests.append(Request(self.server.role, self.command, path, authorisation is not None))
        body = self._body()
        try:
            for pattern, (status, reason) in fake.refusals.items():
                if re.fullmatch(pattern, path):
                    raise _HttpError(status, reason)
            if self.server.role == "storage":
                self._serve_file(path)
                return
            if authorisation != f"Bearer {fake.token}":
                raise _HttpError(401, "Invalid access token")
            for method, pattern, answer in _ROUTES:
                match = re.fullmatch(pattern, path)
                if method == self.command and match:
                    self._send(200, json.dumps(answer(fake, body, *match.groups())).encode())
                    return
            raise _HttpError(404, NOT_FOUND)
        except _HttpError as answer:
            self._send(answer.status, json.dumps({"reason": answer.reason}).encode())

    do_GET = do_POST = do_PUT = do_DELETE = _handle

    def _serve_file(self, path: str) -> None:
        match = re.fullmatch(r"/fake-bucket/(\d+)/[^/]+", path)
        if not match:
            raise _HttpError(404, NOT_FOUND)
        fake = self.server.fake
        entity = fake.file_of(match.group(1))
        data = entity.path.read_bytes()
        if fake.corrupt is not None and entity.path == fake.release / fake.corrupt:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if fake.trickle is not None and entity.path == fake.release / fake.trickle:
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            fake.trickling.set()
            fake.resume.wait(timeout=60)
            return
        self.wfile.write(data)


def _user_profile(fake: FakeSynapse, body: Any) -> dict[str, Any]:
    return {"ownerId": "1", "userName": "participant", "displayName": "Challenge Participant", "emails": []}


def _bundle(fake: FakeSynapse, body: Any, entity_id: str) -> dict[str, Any]:
    entity = fake.entities.get(entity_id)
    if entity is None:
        raise _HttpError(404, NOT_FOUND)
    bundle: dict[str, Any] = {"entity": entity.as_json(), "entityType": entity.kind.lower()}
    if entity.handle is not None:
        bundle["fileHandles"] = [entity.file_handle()]
    return bundle


def _children(fake: FakeSynapse, body: Any) -> dict[str, Any]:
    if body["parentId"] not in fake.entities:
        raise _HttpError(404, NOT_FOUND)
    wanted = set(body.get("includeTypes", ["file", "folder"]))
    page = [
        {"id": e.id, "name": e.name, "type": CONCRETE + e.kind, "versionNumber": 1, "versionLabel": "1"}
        for e in fake.children(body["parentId"])
        if {"Folder": "folder", "FileEntity": "file"}[e.kind] in wanted
    ]
    return {"page": page}


def _file_handles(fake: FakeSynapse, body: Any) -> dict[str, Any]:
    answers = []
    for request in body["requestedFiles"]:
        entity = fake.file_of(request["fileHandleId"])
        if fake.file_failure is not None:
            answers.append({"fileHandleId": entity.handle, "failureCode": fake.file_failure})
        else:
            url = f"{fake.storage_url}/fake-bucket/{entity.handle}/{entity.name}"
            answers.append(
                {"fileHandleId": entity.handle, "fileHandle": entity.file_handle(), "preSignedURL": url}
            )
    return {"requestedFiles": answers}


_ROUTES: list[tuple[str, str, Callable[..., dict[str, Any]]]] = [
    ("GET", r"/repo/v1/userProfile", _user_profile),
    ("POST", r"/repo/v1/entity/(syn\d+)/bundle2", _bundle),
    ("POST", r"/repo/v1/entity/children", _children),
    ("POST", r"/file/v1/fileHandle/batch", _file_handles),
]


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakeSynapse, role: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake, self.role = fake, role


@contextmanager
def serve(fake: FakeSynapse) -> Iterator[FakeSynapse]:
    """Run ``fake`` on two ports of 127.0.0.1 (repository and storage) for the ``with`` block."""
    servers = [_Server(fake, "repo"), _Server(fake, "storage")]
    fake.repo_url, fake.storage_url = (f"http://127.0.0.1:{s.server_address[1]}" for s in servers)
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield fake
    finally:
        fake.resume.set()
        for server in servers:
            server.shutdown()
            server.server_close()


def client_environment(fake: FakeSynapse, home: Path, token: str | None = TOKEN) -> dict[str, str]:
    """The environment of a process whose synapseclient talks to ``fake`` and to no one else.

    HOME is ``home``, holding a ``.synapseConfig`` whose ``[endpoints]`` name the fake service (and no
    credentials); the client's cache lands there too. Synapse profiles and the AWS token lookup are unset,
    and every proxy variable names a closed port of 127.0.0.1, so a request to any other host fails at once
    instead of leaving the machine.
    """
    home.mkdir(parents=True, exist_ok=True)
    endpoints = {
        "repoEndpoint": f"{fake.repo_url}/repo/v1",
        "authEndpoint": f"{fake.repo_url}/auth/v1",
        "fileHandleEndpoint": f"{fake.repo_url}/file/v1",
        "portalEndpoint": f"{fake.repo_url}/",
    }
    lines = ["[endpoints]", *(f"{key} = {value}" for key, value in endpoints.items())]
    (home / ".synapseConfig").write_text("\n".join(lines) + "\n")
    dropped = ("SYNAPSE_", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "SPOCKMIP_DATA")
    env = {key: value for key, value in os.environ.items() if not key.upper().startswith(dropped)}
    closed = "http://127.0.0.1:9"
    env.update(HOME=str(home), HTTP_PROXY=closed, HTTPS_PROXY=closed, ALL_PROXY=closed, NO_PROXY="127.0.0.1")
    if token is not None:
        env["SYNAPSE_AUTH_TOKEN"] = token
    return env


def download(destination: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """The download into ``destination`` in a process of its own, with ``env``."""
    return subprocess.run([*DOWNLOAD, str(destination)], env=env, capture_output=True, text=True, timeout=120)
