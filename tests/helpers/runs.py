"""A production run in this process (the `produce` flow on the test Prefect API) and the results it wrote."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pyarrow.parquet as pq

from mediamill.flows import produce


def run(manifest: Path, outputs: Path, backend: str | None = None):
    """Run ``produce`` on a manifest; its final Prefect state."""
    return asyncio.run(produce(manifest=str(manifest), backend=backend, outputs=str(outputs), return_state=True))


def results(outputs: Path, name: str) -> list[dict]:
    """The rows of a manifest's results table, in order."""
    return pq.read_table(outputs / name / "results.parquet").to_pylist()


def results_by_id(outputs: Path, name: str) -> dict[str, dict]:
    """The rows of a manifest's results table, by row id."""
    return {r["id"]: r for r in results(outputs, name)}
