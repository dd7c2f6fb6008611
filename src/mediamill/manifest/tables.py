"""Manifest tables on disk: CSV (UTF-8, or UTF-16 with a BOM) and Parquet, read as raw cells and written back.

Reading interprets nothing: it returns each row's cells by lower-cased
column name, with the CSV line each row starts on, and problems (bad
encoding, broken quoting, oversized cells, too many rows) instead of
exceptions. ``READERS`` is the one list of manifest suffixes; a sweep and a
run accept the same files. ``write_table`` writes a manifest atomically, for
the importers and tools that make manifests (``csv_bytes`` gives the CSV for
one that writes it together with other files).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import settings
from ..core.files import atomic_path, write_bytes_atomic
from .problems import Problem


@dataclass
class RawTable:
    columns: list[str]
    rows: list[dict[str, Any]]
    lines: list[int | None]


def read_table(path: Path) -> tuple[RawTable, list[Problem]]:
    """Read a CSV or Parquet file into raw cells, without interpreting them."""
    suffix = path.suffix.lower()
    reader = READERS.get(suffix)
    if reader is None:
        return RawTable([], [], []), [Problem(f"unsupported manifest type '{suffix}'; use .csv or .parquet")]
    try:
        return reader(path)
    except OSError as exc:
        return RawTable([], [], []), [Problem(f"cannot read the file: {exc.strerror or exc}")]


def _normalise_header(names: list[str]) -> tuple[list[str], list[Problem]]:
    columns = [str(n).strip().lower() for n in names]
    problems = []
    seen: set[str] = set()
    for name in columns:
        if not name:
            problems.append(Problem("the header has an empty column name"))
        elif name in seen:
            problems.append(Problem("appears twice in the header", column=name))
        seen.add(name)
    return columns, problems


# A whole chapter may be one cell; far beyond that is a broken quote swallowing the file.
MAX_CELL_CHARS = 4 * 1024 * 1024


def _csv_encoding(path: Path) -> str:
    """UTF-8 (with or without a BOM), or UTF-16 when a BOM says so (Excel's "Unicode text")."""
    with path.open("rb") as fh:
        head = fh.read(2)
    return "utf-16" if head in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"


def _read_csv(path: Path) -> tuple[RawTable, list[Problem]]:
    problems: list[Problem] = []
    rows: list[dict[str, Any]] = []
    lines: list[int | None] = []
    csv.field_size_limit(MAX_CELL_CHARS)
    reader = None
    try:
        with path.open(newline="", encoding=_csv_encoding(path)) as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                return RawTable([], [], []), [Problem("the file is empty; it needs a header row")]
            columns, problems = _normalise_header(header)
            line, limit, over = reader.line_num, max_rows(), 0
            for cells in reader:
                start, line = line + 1, reader.line_num
                if not any(c.strip() for c in cells):
                    continue  # blank lines are layout, not rows
                if len(rows) >= limit:
                    over += 1  # counted, not kept: a hostile file must not fill the memory
                    continue
                if len(cells) > len(columns):
                    problems.append(
                        Problem(
                            f"has {len(cells)} cells but the header has {len(columns)} (a comma in unquoted text?)",
                            row=len(rows) + 1,
                            line=start,
                        )
                    )
                rows.append({c: (v if v.strip() != "" else None) for c, v in zip(columns, cells)})
                lines.append(start)
    except UnicodeError as exc:
        reason = exc.reason if isinstance(exc, UnicodeDecodeError) else str(exc)
        return RawTable([], [], []), [Problem(f"is not UTF-8 or UTF-16 text ({reason}); save it as UTF-8 CSV")]
    except csv.Error as exc:
        where = f"line {reader.line_num}: " if reader is not None and reader.line_num else ""
        message = str(exc)
        if "field larger than field limit" in message:
            message = f"a cell is over {MAX_CELL_CHARS} characters (an unclosed quote?)"
        return RawTable([], [], []), [Problem(f"is not valid CSV: {where}{message}")]
    if over:
        return RawTable([], [], []), [_too_many_rows(len(rows) + over)]
    return RawTable(columns, rows, lines), problems


def max_rows() -> int:
    return settings().max_rows


def _too_many_rows(count: int) -> Problem:
    return Problem(f"has {count} rows; a manifest may have at most {max_rows()} (MEDIAMILL_MAX_ROWS): split it")


def _read_parquet(path: Path) -> tuple[RawTable, list[Problem]]:
    import pyarrow.parquet as pq
    from pyarrow import ArrowException

    try:
        count = pq.ParquetFile(path).metadata.num_rows
        if count > max_rows():
            return RawTable([], [], []), [_too_many_rows(count)]
        table = pq.read_table(path)
    except (ArrowException, ValueError) as exc:
        return RawTable([], [], []), [Problem(f"is not a readable Parquet file: {exc}")]
    columns, problems = _normalise_header(table.column_names)
    table = table.rename_columns(columns)
    rows = [{k: (None if isinstance(v, str) and not v.strip() else v) for k, v in r.items()} for r in table.to_pylist()]
    return RawTable(columns, rows, [None] * len(rows)), problems


READERS = {".csv": _read_csv, ".parquet": _read_parquet, ".pq": _read_parquet}
MANIFEST_SUFFIXES = tuple(READERS)


def _checked(columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    if len(set(columns)) != len(columns):
        raise ValueError("duplicate column names")
    rows = list(rows)  # all of them before a byte is written: a failing source leaves the old file
    for row in rows:
        unknown = set(row) - set(columns)
        if unknown:
            raise ValueError(f"a row has values for unknown columns: {sorted(unknown)}")
    return rows


def csv_bytes(columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> bytes:
    """A manifest's CSV as ``write_table`` writes it, for a writer that puts it in place with other files."""
    rows = _checked(columns, rows)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else row.get(c) for c in columns])
    return buf.getvalue().encode("utf-8")


def write_table(path: Path, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> Path:
    """Write rows (mappings by column name) as a manifest, CSV or Parquet by ``path``'s suffix, atomically.

    UTF-8 without a byte-order mark, a header row, the csv module's minimal
    quoting, which every spreadsheet and the loader read; None is an empty
    cell; columns are written in the order given, and a value for a column
    not given is an error rather than silently dropped.
    """
    suffix = path.suffix.lower()
    if suffix == ".csv":
        write_bytes_atomic(path, csv_bytes(columns, rows))
        return path
    if suffix in (".parquet", ".pq"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = _checked(columns, rows)
        table = pa.Table.from_pylist([{c: row.get(c) for c in columns} for row in rows])
        with atomic_path(path) as tmp:
            pq.write_table(table, tmp)
        return path
    raise ValueError(f"cannot write a manifest as '{suffix}'; use .csv or .parquet")
