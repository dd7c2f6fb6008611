"""Atomic file writes: readers see all of a file or none of it; what a killed writer leaves is swept.

A file is written under a hidden temporary name beside its destination,
flushed to disk, and renamed into place; the folder is flushed too, so the
rename survives a power loss. A run killed mid-write leaves at most a
``.<name>.<hex>.partial<suffix>`` file, which nothing takes for finished work.
``atomic_paths`` does the same for files that belong together: all are
written first, then all are renamed, or (on an error) none is.

The writer holds an exclusive ``flock`` on its temporary file (and on a
scratch folder's ``.owner`` file) for as long as it writes; the kernel drops
it when the writer dies. So ``sweep_partials`` and ``sweep_scratch`` remove
exactly what no live process is writing, on this machine or, over NFS, on
another.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# Temporary names of atomic writes and of link_output's links; anything else is left alone.
PARTIAL_MARKERS = (".partial", ".link")
# A file younger than this is not judged: the moment between its creation and its lock.
MIN_STALE_AGE_S = 2.0
MAKING = ".making"  # the suffix of a scratch folder between its making and its owner's lock
OWNER_FILE = ".owner"


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


def _locked(path: Path, create: bool) -> int | None:
    """An fd holding an exclusive flock on ``path``; None if another process holds it (or it is gone)."""
    flags = os.O_RDWR | (os.O_CREAT if create else 0)
    try:
        fd = os.open(path, flags, 0o644)
    except (FileNotFoundError, IsADirectoryError):
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if create else fcntl.LOCK_NB))
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


@contextmanager
def atomic_path(dest: Path) -> Iterator[Path]:
    """Yield a temp path beside ``dest``; on success it replaces ``dest`` atomically.

    The temp file exists (empty) when yielded and stays locked until it is moved into
    place or removed; whoever writes it must write that same file (ffmpeg's ``-y``,
    ``open(..., "wb")`` and the like truncate it in place).
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_name(dest)
    fd = _locked(tmp, create=True)
    try:
        yield tmp
        commit_file(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
        if fd is not None:
            os.close(fd)


@contextmanager
def atomic_paths(dests: Sequence[Path]) -> Iterator[list[Path]]:
    """Yield a temp path for each of ``dests``; on success they replace their destinations, in order.

    A destination that is a folder is refused (``IsADirectoryError`` naming it) before any temp file
    exists. An error while the caller writes removes every temp file, so nothing is left behind; one while
    they are moved into place (rare: nothing but the renames is left to fail) also removes the
    destinations this call had created, leaving at most the ones it replaced.
    """
    for dest in dests:
        if dest.is_dir():
            raise IsADirectoryError(errno.EISDIR, "is a folder, not a file", str(dest))
    tmps: list[Path] = []
    fds: list[int] = []
    try:
        for dest in dests:
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = partial_name(dest)
            fd = _locked(tmp, create=True)
            tmps.append(tmp)
            if fd is not None:
                fds.append(fd)
        yield list(tmps)
        created: list[Path] = []
        try:
            for tmp, dest in zip(tmps, dests):
                fresh = not os.path.lexists(dest)
                commit_file(tmp, dest)
                if fresh:
                    created.append(dest)
        except BaseException:
            for dest in created:
                dest.unlink(missing_ok=True)
            raise
    finally:
        for tmp in tmps:
            tmp.unlink(missing_ok=True)
        for fd in fds:
            os.close(fd)


def write_bytes_atomic(dest: Path, data: bytes) -> None:
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)


def write_json_atomic(dest: Path, doc: Any) -> None:
    write_bytes_atomic(dest, json.dumps(doc, indent=2, sort_keys=True, default=str).encode())


def _is_partial(name: str) -> bool:
    return name.startswith(".") and any(marker in name for marker in PARTIAL_MARKERS)


def _stale(path: Path, now: float) -> bool:
    try:
        return now - path.lstat().st_mtime >= MIN_STALE_AGE_S
    except OSError:
        return False


def sweep_partials(folder: Path, recursive: bool = True) -> list[Path]:
    """Remove temporary files of writes that no live process holds; return what was removed."""
    if not folder.is_dir():
        return []
    removed = []
    now = time.time()
    candidates = folder.rglob(".*") if recursive else folder.glob(".*")
    for path in candidates:
        if not _is_partial(path.name) or not path.is_file() or not _stale(path, now):
            continue
        fd = _locked(path, create=False)
        if fd is None:
            continue  # a live writer holds it
        try:
            path.unlink(missing_ok=True)
            removed.append(path)
        finally:
            os.close(fd)
    return removed


@contextmanager
def scratch_dir(parent: Path, prefix: str) -> Iterator[Path]:
    """A private scratch folder under ``parent``, owned (locked) while in use and removed afterwards."""
    parent.mkdir(parents=True, exist_ok=True)
    path = parent / f"{prefix}{uuid.uuid4().hex[:8]}"
    # Made under a passing name and renamed once its owner file is locked: a kill between the two leaves a
    # folder that says it was never finished (``MAKING``), which the sweep removes at once rather than by age.
    making = parent / f".{path.name}{MAKING}"
    making.mkdir()
    fd = _locked(making / OWNER_FILE, create=True)
    os.rename(making, path)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        if fd is not None:
            os.close(fd)


def sweep_scratch(parent: Path, max_age_s: float) -> list[Path]:
    """Remove scratch folders whose owner is gone (and, of folders without an owner file, the old ones)."""
    if not parent.is_dir():
        return []
    removed = []
    now = time.time()
    for path in parent.iterdir():
        if not path.is_dir() or not _stale(path, now):
            continue
        owner = path / OWNER_FILE
        if owner.exists():
            fd = _locked(owner, create=False)
            if fd is None:
                continue  # its run is alive
            try:
                shutil.rmtree(path, ignore_errors=True)
            finally:
                os.close(fd)
        else:
            try:
                if not path.name.endswith(MAKING) and now - path.stat().st_mtime < max_age_s:
                    continue
            except OSError:
                continue
            shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed
