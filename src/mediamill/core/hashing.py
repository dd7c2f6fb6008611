"""Content hashes of input files and model folders, computed once per file and remembered.

A file's digest is the SHA-256 of its bytes. Content, never a file's time or
place, decides a key: two machines with their own copies of the same weights
(copied, synced, unpacked at different times) get the same digests, so a
fleet sharing one store never generates a row twice. Hashing gigabytes on
every plan would be slow, so each digest is remembered, in this process and
in a small cache file (``MEDIAMILL_CACHE_DIR``, default
``$XDG_CACHE_HOME/mediamill``), keyed by the file's real path, size,
modification time, inode and device: a file edited, replaced or copied over
is hashed again.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

from ..config import settings

CACHE_FILE = "digests.json"
CACHE_MAX_ENTRIES = 20_000
# Files in a model folder that do not decide its output.
_NOT_MODEL = {"readme.md", "license", "license.txt", "license.md", "notice", ".gitattributes"}

_memo: dict[str, str] = {}
_lock = threading.Lock()
_loaded_from: Path | None = None


def cache_dir() -> Path:
    """Where digests are remembered: ``MEDIAMILL_CACHE_DIR``, else the user's cache folder."""
    return settings().cache_folder()


def _stamp(path: Path) -> str:
    real = path.resolve()
    st = real.stat()
    return f"{real}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}|{st.st_dev}"


def _load_cache() -> None:
    """Read the cache file once per process (and again if its folder setting changed)."""
    global _loaded_from
    where = cache_dir() / CACHE_FILE
    if _loaded_from == where:
        return
    _loaded_from = where
    try:
        doc = json.loads(where.read_text())
    except (OSError, ValueError):
        return
    if isinstance(doc, dict):
        _memo.update({k: v for k, v in doc.items() if isinstance(k, str) and isinstance(v, str)})


def _save_cache() -> None:
    """Write the cache back (atomically; a lost race only costs another hash later)."""
    from .files import write_bytes_atomic

    entries = dict(list(_memo.items())[-CACHE_MAX_ENTRIES:])
    try:
        write_bytes_atomic(cache_dir() / CACHE_FILE, json.dumps(entries).encode())
    except OSError:
        pass  # a read-only home: digests are still remembered in this process


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes, hashed once per (path, size, mtime, inode) and remembered."""
    stamp = _stamp(path)
    with _lock:
        _load_cache()
        digest = _memo.get(stamp)
    if digest is not None:
        return digest
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    digest = h.hexdigest()
    with _lock:
        _memo[stamp] = digest
        _save_cache()
    return digest


def model_files(folder: Path) -> list[Path]:
    """The files of a model folder that decide what it generates (hidden files and docs left out)."""
    found = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        if path.name.lower() in _NOT_MODEL or path.suffix.lower() in (".md", ".png", ".jpg", ".jpeg", ".gif"):
            continue
        found.append(path)
    return found


def folder_digest(folder: Path) -> str:
    """SHA-256 over the names and digests of a model folder's files (see ``model_files``)."""
    h = hashlib.sha256()
    for path in model_files(folder):
        h.update(f"{path.relative_to(folder).as_posix()}\0{file_digest(path)}\n".encode())
    return h.hexdigest()
