"""Atomic file writes: readers see all of a file or none of it.

A file is written under a hidden temporary name beside its destination,
flushed to disk, and renamed into place; the folder is flushed too, so the
rename survives a power loss. A run killed mid-write leaves at most a
``.<name>.<hex>.partial<suffix>`` file, which nothing takes for finished work.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def fsync_path(path: Path) -> None:
    """Flush a file's or a folder's entries to disk (folders: so a rename survives power loss)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def commit_file(tmp: Path, dest: Path) -> None:
    """Move a finished file into place so readers see all of it or none of it."""
    fsync_path(tmp)
    os.replace(tmp, dest)
    fsync_path(dest.parent)


def partial_name(dest: Path) -> Path:
    """A fresh temporary name beside ``dest``, keeping its suffix (ffmpeg picks formats by extension)."""
    return dest.with_name(f".{dest.stem}.{uuid.uuid4().hex[:8]}.partial{dest.suffix}")


@contextmanager
def atomic_path(dest: Path) -> Iterator[Path]:
    """Yield a temp path beside ``dest``; on success it replaces ``dest`` atomically."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_name(dest)
    try:
        yield tmp
        commit_file(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(dest: Path, data: bytes) -> None:
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)


def write_json_atomic(dest: Path, doc: Any) -> None:
    write_bytes_atomic(dest, json.dumps(doc, indent=2, sort_keys=True, default=str).encode())
