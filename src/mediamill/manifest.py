"""Manifests: CSV or Parquet tables of rows, one row per piece of media.

Loading never stops at the first problem: every problem found is collected
with its row number and column, so a producer fixes the whole file at once.
Row numbers count data rows from 1 (the header is not a row); for CSV the
physical line is given too, since spreadsheets and editors show lines.

Each row has a ``kind`` (``tts`` when the column is absent or empty) that
selects its model; a new kind is a new model class in ``ROW_KINDS``.
"""

from __future__ import annotations

import csv
import json
import re
import tomllib
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .inputs import outside_roots, private_url_problem

MANIFEST_SUFFIXES = (".csv", ".parquet", ".pq")

# Conservative on purpose: ids become file names on every OS and in URLs.
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_RESERVED_NAMES = {"con", "prn", "aux", "nul"} | {f"{p}{i}" for p in ("com", "lpt") for i in range(1, 10)}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a manifest; ``row`` is None for file-wide problems."""

    message: str
    row: int | None = None
    column: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        where = []
        if self.row is not None:
            where.append(f"row {self.row}" + (f" (line {self.line})" if self.line else ""))
        if self.column:
            where.append(f"column '{_one_line(self.column)}'")
        return (", ".join(where) + ": " if where else "") + _one_line(self.message)


_LINE_BREAKS = {"\u0085", "\u2028", "\u2029"}


def _one_line(text: str) -> str:
    """``text`` with line breaks and other control characters escaped: one problem, one line.

    Messages quote the manifest's own values, and a cell may hold a newline."""
    if text.isprintable():
        return text
    return "".join(
        ch.encode("unicode_escape").decode("ascii") if unicodedata.category(ch) == "Cc" or ch in _LINE_BREAKS else ch
        for ch in text
    )


class ManifestError(Exception):
    """A manifest that cannot be run, with every problem found in it."""

    def __init__(self, path: Path | str, problems: list[Problem]):
        self.path = Path(path)
        self.problems = problems
        super().__init__(str(self))

    def __str__(self) -> str:
        n = len(self.problems)
        head = f"{self.path}: {n} problem{'s' if n != 1 else ''}"
        return "\n".join([head, *(f"  - {p}" for p in self.problems)])


def check_safe_id(value: str) -> str:
    """Ids name output files, so they must be safe file names everywhere."""
    if not _SAFE_ID.match(value) or ".." in value:
        raise ValueError(
            "must be 1-100 characters of letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    if value.split(".")[0].lower() in _RESERVED_NAMES:
        raise ValueError(f"'{value}' is a reserved file name on Windows")
    return value


class Row(BaseModel):
    """Columns every kind of row shares."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)

    # Columns holding paths to input files, checked for readability up front.
    file_columns: ClassVar[tuple[str, ...]] = ()

    id: str
    kind: str
    backend: str | None = None
    model: str | None = None
    chapter: str | None = None
    order: float | None = None
    pause_after: float | None = Field(None, ge=0, le=60, description="Seconds of silence after this row.")
    options: dict[str, Any] = Field(default_factory=dict, description="Engine-specific options (JSON object).")

    _check_id = field_validator("id")(check_safe_id)

    @field_validator("options", mode="before")
    @classmethod
    def _options_from_json(cls, value: Any) -> Any:
        if value is None or value == "":
            return {}
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"must be a JSON object, e.g. {{\"volume\": 0.8}} ({exc.msg})") from None
        if not isinstance(value, dict):
            raise ValueError("must be a JSON object, e.g. {\"volume\": 0.8}")
        return value


def is_url(value: str) -> bool:
    return "://" in value


def check_input_ref(value: str | None) -> str | None:
    """A file input is a path (checked for readability when planning) or an http(s) URL."""
    if value is None or not is_url(value):
        return value
    parsed = urlsplit(value)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError("must be a file path or an http(s):// URL")
    problem = private_url_problem(value)
    if problem:
        raise ValueError(f"the URL {problem}")
    return value


def split_multi(value: Any) -> Any:
    """Multi-valued cells: 'pop; rock' or 'pop, rock' in CSV, a list in Parquet."""
    if isinstance(value, str):
        return [v.strip() for v in re.split(r"[;,]", value) if v.strip()]
    return value


class SpeechRow(Row):
    """Columns shared by the speech kinds."""

    text: str = Field(min_length=1)
    voice: str | None = None
    style: str | None = Field(None, description="Voice design text, for engines that take one (VoxCPM2).")
    speed: float | None = Field(None, ge=0.25, le=4.0, description="Speaking rate, 1.0 = the voice's own.")
    seed: int | None = Field(None, ge=0)
    cfg_value: float | None = Field(None, ge=0, le=10, description="Guidance strength (VoxCPM).")
    inference_timesteps: int | None = Field(None, ge=1, le=100, description="Diffusion steps (VoxCPM).")


class TtsRow(SpeechRow):
    """Text to speech in a named voice."""

    kind: Literal["tts"] = "tts"


class CloneRow(SpeechRow):
    """Speech in the voice of a reference recording."""

    file_columns: ClassVar[tuple[str, ...]] = ("reference",)

    kind: Literal["clone"] = "clone"
    reference: str | None = Field(None, description="Reference audio: a file or an http(s) URL.")
    reference_text: str | None = Field(None, description="What the reference says (prompt-continuation mode).")

    _check_reference = field_validator("reference")(check_input_ref)

    @model_validator(mode="after")
    def _needs_a_voice(self) -> "CloneRow":
        if not self.reference and not self.voice:
            raise ValueError("a clone row needs a reference recording (reference column) or a registered voice")
        return self


SONG_SECTIONS = ("verse", "chorus", "bridge", "outro", "intro", "pre-chorus", "hook")
CLONE_TYPES = ("vocal", "instrumental", "both")


class SongRow(Row):
    """A song from lyrics, optionally in the style of a reference track."""

    file_columns: ClassVar[tuple[str, ...]] = ("reference",)

    kind: Literal["song"] = "song"
    lyrics: str = Field(min_length=1)
    reference: str | None = Field(None, description="Reference track: a file or an http(s) URL.")
    clone_type: Literal["vocal", "instrumental", "both"] | None = None
    genre: list[str] = Field(default_factory=list)
    instrument: list[str] = Field(default_factory=list)
    mood: list[str] = Field(default_factory=list)
    gender: list[str] = Field(default_factory=list)
    timbre: list[str] = Field(default_factory=list)
    seed: int | None = Field(None, ge=0)

    _check_reference = field_validator("reference")(check_input_ref)
    _split = field_validator("genre", "instrument", "mood", "gender", "timbre", mode="before")(split_multi)

    @field_validator("lyrics")
    @classmethod
    def _has_sections(cls, value: str) -> str:
        if not re.search(r"\[(%s)\]" % "|".join(SONG_SECTIONS), value, re.IGNORECASE):
            raise ValueError("lyrics need section tags such as [verse], [chorus], [bridge] or [outro]")
        return value

    @model_validator(mode="after")
    def _clone_type_needs_reference(self) -> "SongRow":
        if self.clone_type and not self.reference:
            raise ValueError("clone_type applies only with a reference track")
        return self


class VideoRow(Row):
    """A video clip (with sound) from an image and a prompt."""

    file_columns: ClassVar[tuple[str, ...]] = ("image",)

    kind: Literal["video"] = "video"
    image: str = Field(min_length=1, description="First frame: a file or an http(s) URL.")
    prompt: str = Field(min_length=1)
    negative_prompt: str | None = None
    audio_negative_prompt: str | None = None
    resolution: str | None = None
    steps: int | None = Field(None, ge=1, le=200)
    seed: int | None = Field(None, ge=0)

    _check_image = field_validator("image")(check_input_ref)


ROW_KINDS: dict[str, type[Row]] = {"tts": TtsRow, "clone": CloneRow, "song": SongRow, "video": VideoRow}
SPEECH_KINDS = frozenset({"tts", "clone"})
DEFAULT_KIND = "tts"
# Columns a row may leave empty but that a kind needs in the file.
KNOWN_COLUMNS = {name for model in ROW_KINDS.values() for name in model.model_fields}


class Meta(BaseModel):
    """Production-wide settings from the sidecar ``<manifest>.toml``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)

    title: str | None = None
    author: str | None = None
    narrator: str | None = None
    backend: str | None = None
    pause_after: float = Field(0.5, ge=0, le=60, description="Default silence after each row, seconds.")
    chapter_pause: float = Field(1.5, ge=0, le=60, description="Silence closing each chapter, seconds.")
    profiles: list[Literal["audiobook", "acx", "podcast", "video"]] = Field(
        default_factory=lambda: ["audiobook"], description="Delivery profiles to master for."
    )
    cover: str | None = Field(None, description="Cover image for the M4B, relative to the manifest.")
    podcast: "PodcastMeta" = Field(default_factory=lambda: PodcastMeta())
    video: "VideoMeta" = Field(default_factory=lambda: VideoMeta())

    def files(self) -> dict[str, str]:
        """Settings that name files, by setting name: checked when the manifest is loaded."""
        named = {"cover": self.cover, "podcast.intro": self.podcast.intro, "podcast.outro": self.podcast.outro,
                 "podcast.bed": self.podcast.bed}  # fmt: skip
        return {k: v for k, v in named.items() if v}


class PodcastMeta(BaseModel):
    """The ``[podcast]`` table: music around and under the episode's speech."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)

    intro: str | None = None
    outro: str | None = None
    bed: str | None = Field(None, description="Music under the speech, looped, ducked while someone speaks.")
    bed_gain_db: float = Field(-20.0, ge=-60, le=0, description="The bed's level between lines.")
    duck_db: float = Field(12.0, ge=3, le=40, description="How much further the bed goes down under speech.")
    crossfade_s: float = Field(1.0, ge=0.01, le=10)
    stereo: bool | None = Field(None, description="Default: stereo when there is music, else mono.")


class VideoMeta(BaseModel):
    """The ``[video]`` table: what sound goes with the clips."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)

    track: str | None = Field(None, description="'speech' (the manifest's speech rows) or the id of a song row.")
    mode: Literal["mix", "replace"] = "mix"


Meta.model_rebuild()


@dataclass(frozen=True)
class Manifest:
    path: Path
    name: str
    meta: Meta
    rows: list[Row]
    row_numbers: list[int]  # the data row number of each row, for messages
    problems: list[Problem] = field(default_factory=list)

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    @property
    def title(self) -> str:
        return self.meta.title or self.name.replace("_", " ").replace("-", " ").title()


@dataclass
class RawTable:
    columns: list[str]
    rows: list[dict[str, Any]]
    lines: list[int | None]


def manifest_name(path: Path) -> str:
    return path.stem


def sidecar_path(path: Path) -> Path:
    return path.with_suffix(".toml")


def read_table(path: Path) -> tuple[RawTable, list[Problem]]:
    """Read a CSV or Parquet file into raw cells, without interpreting them."""
    suffix = path.suffix.lower()
    if suffix not in MANIFEST_SUFFIXES:
        return RawTable([], [], []), [Problem(f"unsupported manifest type '{suffix}'; use .csv or .parquet")]
    try:
        if suffix == ".csv":
            return _read_csv(path)
        return _read_parquet(path)
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
                            f"has {len(cells)} cells but the header has {len(columns)} "
                            "(a comma in unquoted text?)",
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
    from .config import settings

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
    rows = [
        {k: (None if isinstance(v, str) and not v.strip() else v) for k, v in r.items()}
        for r in table.to_pylist()
    ]
    return RawTable(columns, rows, [None] * len(rows)), problems


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
            Problem(f"{side.name}: {err['msg']}", column=".".join(map(str, err["loc"])) or None)
            for err in exc.errors()
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


def infer_kind(raw: dict[str, Any]) -> str:
    """A row without a kind is read from what it has: lyrics make a song, an image a clip,
    a reference recording a cloned voice; anything else is plain speech."""
    if raw.get("lyrics") is not None:
        return "song"
    if raw.get("image") is not None:
        return "video"
    if raw.get("reference") is not None:
        return "clone"
    return DEFAULT_KIND


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
        bad = isinstance(value, str) and _CONTROL.search(value)
        if bad:
            # NUL and other control characters break engines, file names and tags; never intended.
            problems.append(Problem(f"contains the control character U+{ord(bad.group()):04X}", number, column, line))
            data[column] = _CONTROL.sub("", value)
    for column in sorted(set(data) - set(model.model_fields)):
        if column in KNOWN_COLUMNS:
            problems.append(Problem(f"does not apply to {data['kind']} rows; leave it empty", number, column, line))
        data.pop(column)
    try:
        return model.model_validate(data), problems
    except ValidationError as exc:
        for err in exc.errors():
            column = str(err["loc"][0]) if err["loc"] else None
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] == "missing":
                message = "is required and empty"
            problems.append(Problem(message, number, column, line))
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
                problems.append(Problem(f"duplicate id '{row_id}' (first on row {first_seen[row_id]})", number, "id", line))
            else:
                first_seen[str(row_id)] = number
        if row is not None:
            rows.append(row)
            numbers.append(number)

    with_order = sum(r.order is not None for r in rows)
    if 0 < with_order < len(rows):
        problems.append(Problem("must be given on every row or on none", column="order"))
    return Manifest(path, manifest_name(path), meta, rows, numbers, problems)


def resolve_input(value: str, base_dir: Path) -> Path:
    """A path written in a manifest is relative to the manifest's folder."""
    p = Path(value)
    if value.startswith("~"):
        try:
            p = p.expanduser()
        except RuntimeError:  # an unknown ~user: left as written, so it is judged and refused
            pass
    return p if p.is_absolute() else base_dir / p
