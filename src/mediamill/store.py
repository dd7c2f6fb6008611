"""The content-addressed store of generated media, its claims and its hosted-task journal.

A generated file lives at ``<root>/.store/objects/<k[:2]>/<key><ext>`` beside
``<key>.json``. The JSON is written last and is the only proof that the media
is complete: a run killed at any point leaves at most a temp folder or a media
file without its JSON, and both are treated as not done.

Several processes (workers on different machines over a shared filesystem)
may produce the same manifest at once. A key is generated only under its
claim, an exclusive ``flock`` on ``.store/claims/<key>.lock``: the kernel
drops it when its holder dies, so a killed worker never leaves a claim
behind (on NFS the server does the same once the client's lease expires).
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .core.files import commit_file, scratch_dir, sweep_partials, sweep_scratch, write_json_atomic


@dataclass(frozen=True)
class Entry:
    key: str
    path: Path
    meta: dict[str, Any]

    @property
    def duration_s(self) -> float:
        return float(self.meta["duration_s"])


class Journal:
    """A durable note about hosted work in flight for one content key.

    A hosted backend writes the service's task id here *before* it starts
    waiting, so a run that is killed resumes that task instead of paying for
    a new one. Cleared once the result is in the store.
    """

    def __init__(self, path: Path):
        self.path = path

    def read(self) -> dict[str, Any] | None:
        try:
            doc = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        return doc if isinstance(doc, dict) else None

    def write(self, record: dict[str, Any]) -> None:
        write_json_atomic(self.path, record)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


class Claim:
    """An exclusive, crash-safe hold on one key across processes and machines."""

    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        """Take the claim if nobody holds it; never waits."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            # The holder before us unlinks the file as it lets go: a lock on that
            # unlinked file guards nothing, so take the current one instead.
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self._fd = fd
                return True
            os.close(fd)

    def release(self) -> None:
        if self._fd is None:
            return
        self.path.unlink(missing_ok=True)  # no litter: one lock file per key in flight, not per key ever
        os.close(self._fd)
        self._fd = None


class Store:
    """Generated media by content key, shared by every manifest under one outputs root."""

    TMP_MAX_AGE_S = 24 * 3600

    def __init__(self, outputs: Path):
        self.root = Path(outputs) / ".store"
        self.objects = self.root / "objects"
        self.tmp = self.root / "tmp"
        self.journals = self.root / "journal"
        self.claims = self.root / "claims"

    def _meta_path(self, key: str) -> Path:
        return self.objects / key[:2] / f"{key}.json"

    def get(self, key: str) -> Entry | None:
        """The finished entry for ``key``, or None if there is none (or only a partial one)."""
        try:
            meta = json.loads(self._meta_path(key).read_text())
            path = self.objects / key[:2] / meta["file"]
            if path.stat().st_size != meta["size"]:
                return None
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return Entry(key, path, meta)

    def claim(self, key: str) -> Claim:
        return Claim(self.claims / f"{key}.lock")

    def journal(self, key: str) -> Journal:
        return Journal(self.journals / f"{key}.json")

    @contextmanager
    def workdir(self, key: str) -> Iterator[Path]:
        """A private scratch folder for generating ``key``, owned while in use; removed afterwards."""
        with scratch_dir(self.tmp, f"{key[:16]}-") as path:
            yield path

    def put(self, key: str, produced: Path, meta: dict[str, Any], extras: dict[str, Any] | None = None) -> Entry:
        """Move a finished file from a workdir into the store, then record it.

        ``extras`` are JSON documents kept beside the media (``<key>.<name>``, e.g. ``words.json``), written
        before the record, so a record never points at extras that are not there.
        """
        folder = self.objects / key[:2]
        folder.mkdir(parents=True, exist_ok=True)
        dest = folder / f"{key}{produced.suffix.lower()}"
        for name, doc in (extras or {}).items():
            write_json_atomic(folder / f"{key}.{name}", doc)
        commit_file(produced, dest)
        meta = {**meta, "key": key, "file": dest.name, "size": dest.stat().st_size}
        write_json_atomic(self._meta_path(key), meta)
        return Entry(key, dest, meta)

    def annotate(self, entry: Entry, fields: dict[str, Any], extras: dict[str, Any] | None = None) -> Entry:
        """Add fields to a stored record (and extras beside it), the media untouched."""
        folder = entry.path.parent
        for name, doc in (extras or {}).items():
            write_json_atomic(folder / f"{entry.key}.{name}", doc)
        meta = {**entry.meta, **fields}
        write_json_atomic(self._meta_path(entry.key), meta)
        return Entry(entry.key, entry.path, meta)

    def extra(self, entry: Entry, name: str) -> Path:
        """Where a stored record's extra document lives (it may not exist)."""
        return entry.path.with_name(f"{entry.key}.{name}")

    def sweep_tmp(self) -> int:
        """Remove scratch folders of runs that are gone (their owner's lock is free); return how many."""
        return len(sweep_scratch(self.tmp, self.TMP_MAX_AGE_S))

    def sweep_partials(self, keys: Iterable[str]) -> int:
        """Remove temporary files no live run is writing: hosted-task notes and the records of ``keys``."""
        removed = len(sweep_partials(self.journals, recursive=False))
        for prefix in sorted({key[:2] for key in keys}):
            removed += len(sweep_partials(self.objects / prefix, recursive=False))
        return removed
