"""A production run in this process (the `produce` flow on the test Prefect API) and the results it wrote."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pyarrow.parquet as pq

from mediamill.flows import produce
from mediamill.report import RowResult


def run(manifest: Path, outputs: Path, backend: str | None = None):
    """Run ``produce`` on a manifest; its final Prefect state."""
    return asyncio.run(produce(manifest=str(manifest), backend=backend, outputs=str(outputs), return_state=True))


def results(outputs: Path, name: str) -> list[dict]:
    """The rows of a manifest's results table, in order."""
    return pq.read_table(outputs / name / "results.parquet").to_pylist()


def results_by_id(outputs: Path, name: str) -> dict[str, dict]:
    """The rows of a manifest's results table, by row id."""
    return {r["id"]: r for r in results(outputs, name)}


def result_row(**fields) -> RowResult:
    """A results-table row made up for a test: a Piper row done, with ``fields`` changed."""
    base = dict(
        id="r1",
        row=1,
        kind="tts",
        chapter=None,
        backend="piper",
        model="m",
        status="done",
        attempts=1,
        error=None,
        output="segments/r1.wav",
        audio_s=1.0,
        sample_rate=22050,
        elapsed_s=0.5,
        compute_s=0.4,
        queue_s=None,
        cost_usd=0.0,
        cost_source="free",
        task_id=None,
        key="k",
        created_at="2026-01-01T00:00:00+00:00",
    )
    base.update(fields)
    return RowResult(**base)
