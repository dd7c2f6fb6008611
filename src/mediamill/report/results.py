"""The results table: one row per manifest row, as Parquet and CSV.

Column names and types are a contract other tools rely on; add columns,
never rename them.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..core.files import atomic_path, write_bytes_atomic

STATUSES = ("done", "cached", "failed")


@dataclass
class RowResult:
    id: str
    row: int
    kind: str
    chapter: str | None
    backend: str
    model: str
    status: str  # done | cached | failed
    attempts: int
    error: str | None
    output: str | None
    audio_s: float | None
    sample_rate: int | None
    elapsed_s: float
    compute_s: float | None
    queue_s: float | None
    cost_usd: float | None
    cost_source: str | None
    task_id: str | None
    key: str
    created_at: str
    # Added for local engines: generations made (bad-case retakes included), text pieces, device, notes.
    takes: int | None = None
    pieces: int | None = None
    device: str | None = None
    warnings: str | None = None
    qc: str | None = None  # per-row checks: speech rate far from the text, long silences inside
    # Added for verification: did the take say its text (pass, fail, skipped, error), and if not, what was
    # missing or extra and where; which recogniser judged; generations made again because a take failed.
    verified: str | None = None
    wer: float | None = None
    missing: str | None = None
    extra: str | None = None
    verify_engine: str | None = None
    retakes: int | None = None


SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("row", pa.int32()),
        ("kind", pa.string()),
        ("chapter", pa.string()),
        ("backend", pa.string()),
        ("model", pa.string()),
        ("status", pa.string()),
        ("attempts", pa.int32()),
        ("error", pa.string()),
        ("output", pa.string()),
        ("audio_s", pa.float64()),
        ("sample_rate", pa.int32()),
        ("elapsed_s", pa.float64()),
        ("compute_s", pa.float64()),
        ("queue_s", pa.float64()),
        ("cost_usd", pa.float64()),
        ("cost_source", pa.string()),
        ("task_id", pa.string()),
        ("key", pa.string()),
        ("created_at", pa.string()),
        ("takes", pa.int32()),
        ("pieces", pa.int32()),
        ("device", pa.string()),
        ("warnings", pa.string()),
        ("qc", pa.string()),
        ("verified", pa.string()),
        ("wer", pa.float64()),
        ("missing", pa.string()),
        ("extra", pa.string()),
        ("verify_engine", pa.string()),
        ("retakes", pa.int32()),
    ]
)
assert SCHEMA.names == [f.name for f in fields(RowResult)]

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: Any) -> Any:
    # Spreadsheets execute text that starts like a formula; a leading quote keeps it text.
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return "" if value is None else value


def write_results(folder: Path, results: Sequence[RowResult]) -> tuple[Path, Path]:
    """Write ``results.parquet`` and ``results.csv`` atomically; return their paths."""
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist([asdict(r) for r in results], schema=SCHEMA)
    parquet, csv_path = folder / "results.parquet", folder / "results.csv"
    with atomic_path(parquet) as tmp:
        pq.write_table(table, tmp)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(SCHEMA.names)
    for r in results:
        writer.writerow([_csv_cell(v) for v in asdict(r).values()])
    write_bytes_atomic(csv_path, buf.getvalue().encode("utf-8"))
    return parquet, csv_path


def read_results(folder: Path) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    return pq.read_table(folder / "results.parquet").to_pylist()
