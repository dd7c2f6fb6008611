"""Loading a manifest: the sidecar, the table, every row validated, problems collected rather than raised.

``load_manifest`` checks structure only (columns, types, ranges, ids, kinds,
the sidecar's settings and files); what needs a backend (voices, options,
backend names) is judged when the manifest is planned (``plan.make_plan``).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..text.lexicon import Lexicon, load_lexicon
from .inputs import outside_roots, resolve_input
from .meta import Meta
from .problems import Problem
from .rows import KNOWN_COLUMNS, ROW_KINDS, Row, infer_kind
from .tables import read_table

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def control_character(value: str) -> str | None:
    """What is wrong with a cell holding a NUL or another control character (tab and line breaks aside), or None.

    They break engines, file names and tags, and are never intended.
    """
    bad = _CONTROL.search(value)
    return f"contains the control character U+{ord(bad.group()):04X}" if bad else None


@dataclass(frozen=True)
class Manifest:
    path: Path
    name: str
    meta: Meta
    rows: list[Row]
    row_numbers: list[int]  # the data row number of each row, for messages
    problems: list[Problem] = field(default_factory=list)
    lexicon: Lexicon | None = None  # the sidecar's pronunciation lexicon, loaded

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    @property
    def title(self) -> str:
        return self.meta.title or self.name.replace("_", " ").replace("-", " ").title()


def manifest_name(path: Path) -> str:
    return path.stem


def sidecar_path(path: Path) -> Path:
    return path.with_suffix(".toml")


def read_meta(path: Path) -> tuple[Meta, list[Problem]]:
    side = sidecar_path(path)
    if not side.exists():
        return Meta(), []
    try:
        data = tomllib.loads(side.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        return Meta(), [Problem(f"{side.name}: cannot read settings: {exc}")]
    try:
        meta = Meta.model_validate(data)
    except ValidationError as exc:
        return Meta(), [
            Problem(f"{side.name}: {err['msg']}", column=".".join(map(str, err["loc"])) or None) for err in exc.errors()
        ]
    problems = []
    for setting, value in meta.files().items():
        target = resolve_input(value, path.parent)
        refused = outside_roots(target, path.parent)
        if refused:
            problems.append(Problem(f"{side.name}: {value} {refused}", column=setting))
        elif not target.is_file():
            problems.append(Problem(f"{side.name}: file not found: {target}", column=setting))
    return meta, problems


def _validate_row(raw: dict[str, Any], number: int, line: int | None) -> tuple[Row | None, list[Problem]]:
    kind = raw.get("kind") or infer_kind(raw)
    model = ROW_KINDS.get(str(kind).strip().lower())
    if model is None:
        known = ", ".join(sorted(ROW_KINDS))
        return None, [Problem(f"unknown kind '{kind}' (known: {known})", number, "kind", line)]
    # Columns of other kinds are fine in the file as long as this row leaves them empty.
    data = {k: v for k, v in raw.items() if v is not None}
    data["kind"] = model.model_fields["kind"].default
    problems = []
    for column, value in sorted(data.items()):
        bad = control_character(value) if isinstance(value, str) else None
        if bad:
            problems.append(Problem(bad, number, column, line))
            data[column] = _CONTROL.sub("", value)
    for column in sorted(set(data) - set(model.model_fields)):
        if column in KNOWN_COLUMNS:
            problems.append(Problem(f"does not apply to {data['kind']} rows; leave it empty", number, column, line))
        data.pop(column)
    try:
        return model.model_validate(data), problems
    except ValidationError as exc:
        for err in exc.errors():
            at = str(err["loc"][0]) if err["loc"] else None
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] == "missing":
                message = "is required and empty"
            problems.append(Problem(message, number, at, line))
        return None, problems


def load_manifest(path: Path | str) -> Manifest:
    """Parse and check a manifest's structure; problems are collected, not raised.

    Checks that need a backend (voices, options, backend names) happen when
    the manifest is planned, see ``plan.make_plan``.
    """
    path = Path(path)
    meta, problems = read_meta(path)
    name = manifest_name(path)
    if name.startswith(".") or not name.isprintable():
        # The name becomes the output folder: "...csv" would otherwise write beside the outputs root.
        problems.append(Problem(f"the file name '{name}' cannot name an output folder; rename the manifest"))
    if not path.is_file():
        return Manifest(path, manifest_name(path), meta, [], [], [*problems, Problem("file not found")])
    table, table_problems = read_table(path)
    problems += table_problems

    unknown = [c for c in table.columns if c and c not in KNOWN_COLUMNS]
    for column in unknown:
        problems.append(Problem(f"unknown column (known: {', '.join(sorted(KNOWN_COLUMNS))})", column=column))
    if table.columns and "id" not in table.columns:
        problems.append(Problem("missing column: every row needs an id", column="id"))
    if not table.rows and not problems:
        problems.append(Problem("has a header but no rows"))

    rows: list[Row] = []
    numbers: list[int] = []
    first_seen: dict[str, int] = {}
    chapter: str | None = None
    for index, raw in enumerate(table.rows):
        number, line = index + 1, table.lines[index]
        raw = {k: v for k, v in raw.items() if k in KNOWN_COLUMNS}
        # A chapter title applies to the rows below it until the next one ("fill down").
        if raw.get("chapter") is not None:
            chapter = str(raw["chapter"]).strip()
        elif chapter is not None:
            raw["chapter"] = chapter
        row, row_problems = _validate_row(raw, number, line)
        problems += row_problems
        row_id = raw.get("id")
        if row_id is not None:
            if row_id in first_seen:
                problems.append(
                    Problem(f"duplicate id '{row_id}' (first on row {first_seen[row_id]})", number, "id", line)
                )
            else:
                first_seen[str(row_id)] = number
        if row is not None:
            rows.append(row)
            numbers.append(number)

    with_order = sum(r.order is not None for r in rows)
    if 0 < with_order < len(rows):
        problems.append(Problem("must be given on every row or on none", column="order"))
    lexicon, lexicon_problems = _lexicon(meta, path)
    problems += lexicon_problems
    return Manifest(path, manifest_name(path), meta, rows, numbers, problems, lexicon)


def _lexicon(meta: Meta, path: Path) -> tuple[Lexicon | None, list[Problem]]:
    """The sidecar's lexicon, with its problems (the file's own existence is checked with the sidecar)."""
    if not meta.lexicon:
        return None, []
    target = resolve_input(meta.lexicon, path.parent)
    if not target.is_file():
        return None, []
    lexicon, found = load_lexicon(target)
    return lexicon, [Problem(f"{target.name}: {p}", column="lexicon") for p in found]
