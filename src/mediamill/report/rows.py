"""Result rows: what the results table says of one job, generated, found in the store, or failed.

A row found in the store cost nothing in this run (``cost_source`` =
``cached``); its origin stays traceable by ``task_id`` and ``key``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..backends import Job
from ..store import Entry
from .results import RowResult


def now_utc() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def row_result(job: Job, status: str, **fields: Any) -> RowResult:
    """A result row for ``job`` with everything not given left empty."""
    base: dict[str, Any] = dict(
        id=job.id,
        row=job.row_number,
        kind=job.kind,
        chapter=job.row.chapter,
        backend=job.backend,
        model=job.spec.model,
        status=status,
        attempts=0,
        error=None,
        output=None,
        audio_s=None,
        sample_rate=None,
        elapsed_s=0.0,
        compute_s=None,
        queue_s=None,
        cost_usd=None,
        cost_source=None,
        task_id=None,
        key=job.key,
        created_at=now_utc(),
    )
    base.update(fields)
    return RowResult(**base)


def stored_result(
    job: Job, entry: Entry, status: str, output: Path, attempts: int, elapsed: float, retakes: int | None = None
) -> RowResult:
    """A result row for a job whose media is in the store: ``done`` (made by this run) or ``cached``."""
    m = entry.meta
    fresh = status == "done"
    return row_result(
        job,
        status,
        attempts=attempts,
        output=output.as_posix(),
        audio_s=m.get("duration_s"),
        sample_rate=m.get("sample_rate"),
        elapsed_s=round(elapsed, 3),
        compute_s=m.get("compute_s") if fresh else 0.0,
        queue_s=m.get("queue_s") if fresh else None,
        cost_usd=m.get("cost_usd") if fresh else 0.0,
        cost_source=m.get("cost_source") if fresh else "cached",
        task_id=m.get("task_id"),
        created_at=m.get("created_at") or now_utc(),
        takes=m.get("attempts_inside") if fresh else 0,
        pieces=m.get("pieces"),
        device=m.get("device"),
        warnings=m.get("warnings"),
        qc=m.get("qc"),
        verified=m.get("verified"),
        wer=m.get("wer"),
        missing=m.get("missing"),
        extra=m.get("extra"),
        verify_engine=m.get("verify_engine"),
        retakes=(retakes if retakes is not None else m.get("retakes")) if fresh else 0,
    )
