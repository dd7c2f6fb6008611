"""Row models, one per kind of row, and the registry of kinds.

Each row has a ``kind`` (``tts`` when the column is absent or empty) that
selects its model; a new kind is a new model class in ``ROW_KINDS``. A
column a kind does not have is reported when a row of that kind fills it.
"""

from __future__ import annotations

import json
import re
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..core.ids import check_safe_id
from .inputs import private_url_problem


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
    # Where the row came from in its manuscript (``mediamill import``): never part of a content key.
    source: str | None = Field(None, max_length=2000, description="Source anchor, e.g. text/ch1.xhtml#p12.")
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
                raise ValueError(f'must be a JSON object, e.g. {{"volume": 0.8}} ({exc.msg})') from None
        if not isinstance(value, dict):
            raise ValueError('must be a JSON object, e.g. {"volume": 0.8}')
        return value


_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")


def check_language(value: str | None) -> str | None:
    """A BCP 47 language tag such as ``en`` or ``en-GB``, kept as written but for case."""
    if value is None:
        return None
    if not _LANGUAGE.match(value):
        raise ValueError("must be a language tag such as 'en', 'de' or 'pt-BR'")
    head, *rest = value.split("-")
    return "-".join([head.lower(), *[part.upper() if len(part) == 2 else part for part in rest]])


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
    language: str | None = Field(None, max_length=35, description="The row's language (BCP 47); verification reads it.")

    _check_language = field_validator("language")(check_language)


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
    def _needs_a_voice(self) -> CloneRow:
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
        if not re.search(rf"\[({'|'.join(SONG_SECTIONS)})\]", value, re.IGNORECASE):
            raise ValueError("lyrics need section tags such as [verse], [chorus], [bridge] or [outro]")
        return value

    @model_validator(mode="after")
    def _clone_type_needs_reference(self) -> SongRow:
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
