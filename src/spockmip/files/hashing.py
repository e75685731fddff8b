"""Content hashes of whole files, read once per process.

A training run's identity and the ingestion manifest both name data by the SHA-256 of every byte of each
file: a sampled hash would miss an edited voxel between its samples and resume a run trained on the old
image. Reading every byte costs time (the hash itself is fast; on slow or network storage the reading
dominates), so a file is read at most once per process: the hash is cached under the file's resolved path,
size and modification time, and a file rewritten since is read again. Nothing here needs torch.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

CHUNK_BYTES = 1 << 20


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of the whole file at ``path`` (symlinks followed), from this process's cache when the
    file is unchanged since it was last read."""
    resolved = Path(path).resolve()
    status = resolved.stat()
    return _hash_once(resolved, status.st_size, status.st_mtime_ns)


@functools.cache
def _hash_once(path: Path, size: int, mtime_ns: int) -> str:
    """The hash of ``path``; ``size`` and ``mtime_ns`` are part of the cache key only, so a rewritten file
    (another size or time) is read again."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()
