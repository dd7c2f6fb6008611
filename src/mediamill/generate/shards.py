"""One production's rows split over several runs (shards), and what each shard made, for the run that stitches.

A big manifest on a fleet is produced by one parent run and ``n`` shard runs on the pool's machines. Every
run reads the same plan, so each can tell, from the plan alone, which content keys are its own: the plan's
distinct keys in manifest order, dealt round-robin (a chapter's rows spread over every machine, and rows
already in the store fall evenly). A shard appends each result row to its own file as the row finishes
(one JSON object per line: a killed shard loses at most the line it was writing, which a reader skips), so
the parent can count progress while shards run and take their rows afterwards with what they cost.

A shard holds a claim on its ``<shard>.alive`` file while it runs and leaves ``<shard>.end`` when it
finishes; the kernel drops the claim when the process dies, however it dies. A parent that finds the file
there, unheld and without the end mark, knows the shard's machine or worker is gone, even where nothing
was left to tell the orchestrator (a killed worker's flow run stays Running). Nothing here knows Prefect.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path

from ..backends import Job
from ..report import RowResult
from ..store import Claim

SHARDS_DIR = ".shards"  # inside the production's output folder; removed when the parent is done


def own_groups(jobs: list[Job], groups: list[list[Job]], shard: int, shards: int) -> list[list[Job]]:
    """The groups (rows sharing a key) of ``groups`` that shard ``shard`` of ``shards`` generates."""
    if not 0 <= shard < shards:
        raise ValueError(f"shard {shard} of {shards}")
    order: dict[str, int] = {}
    for job in jobs:
        order.setdefault(job.key, len(order))
    return [g for g in groups if order[g[0].key] % shards == shard]


def shard_folder(out_dir: Path, parent: str) -> Path:
    """Where the shards of one parent run write their results."""
    return out_dir / SHARDS_DIR / parent


class ShardLog:
    """A shard's results file, appended to row by row; while open (``with``), the sign that the shard lives."""

    def __init__(self, folder: Path, shard: int):
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{shard}.jsonl"
        self.ended = folder / f"{shard}.end"
        self.alive = Claim(folder / f"{shard}.alive")

    def __enter__(self) -> ShardLog:
        while not self.alive.try_acquire():  # a parent looking in holds it for a moment
            time.sleep(0.05)
        return self

    def __exit__(self, kind: object, *exc: object) -> None:
        # Marked ended only when the shard's rows ran their course: one stopped by a signal is as good as dead
        # (its orchestrator may never hear of it). The mark first: a parent must never see the claim gone
        # without it.
        if kind is None:
            self.ended.touch()
        self.alive.release()

    def add(self, results: Iterable[RowResult]) -> None:
        lines = "".join(json.dumps(asdict(r), sort_keys=True) + "\n" for r in results)
        with self.path.open("a", encoding="utf-8") as fh:  # one write per outcome: lines stay whole
            fh.write(lines)
            fh.flush()
            os.fsync(fh.fileno())


class ShardReader:
    """The results the shards of ``folder`` have written, by row id, read as they grow: each look reads only
    what was appended since the last (a parent looks every few seconds while its shards run).

    A row made by one shard beats its failure in another. A line not yet ended (still being written, or torn
    by a killed shard) is left for a later look."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.made: dict[str, RowResult] = {}
        self._read: dict[str, int] = {}  # bytes read of each shard's file

    def read(self) -> dict[str, RowResult]:
        if not self.folder.is_dir():
            return self.made
        for path in sorted(self.folder.glob("*.jsonl")):
            start = self._read.get(path.name, 0)
            with path.open("rb") as fh:
                fh.seek(start)
                data = fh.read()
            whole = data.rfind(b"\n") + 1
            self._read[path.name] = start + whole
            for line in data[:whole].decode("utf-8", errors="replace").splitlines():
                self._add(line)
        return self.made

    def _add(self, line: str) -> None:
        try:
            result = RowResult(**json.loads(line))
        except (ValueError, TypeError):
            return
        known = self.made.get(result.id)
        if known is None or known.status == "failed" or (known.status == "cached" and result.status == "done"):
            self.made[result.id] = result


def shard_gone(folder: Path, shard: int) -> bool:
    """Whether shard ``shard`` began, has not ended and nobody holds its claim: its process died.

    A shard caught between creating its file and claiming it looks gone for that instant, so callers should
    see this twice, a poll apart, before they act on it."""
    if (folder / f"{shard}.end").exists():
        return False
    try:
        fd = os.open(folder / f"{shard}.alive", os.O_RDWR)  # never create it: a shard not yet begun is not gone
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # closing lets go of the lock too, and leaves the file for the next look
    return not (folder / f"{shard}.end").exists()
