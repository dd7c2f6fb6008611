"""The sidecar ``<manifest>.toml``: production-wide settings (title, pauses, delivery profiles, music).

Profile names are checked against the one registry of profiles
(``mediamill.profiles.PROFILES``), so a new profile is added there alone.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..profiles import PROFILES
from .rows import check_language


def check_profiles(names: list[str]) -> list[str]:
    unknown = [n for n in names if n not in PROFILES]
    if unknown:
        known = ", ".join(f"'{n}'" for n in PROFILES)
        raise ValueError(f"unknown delivery profile {', '.join(repr(n) for n in unknown)} (known: {known})")
    return names


class Meta(BaseModel):
    """Production-wide settings from the sidecar ``<manifest>.toml``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)

    title: str | None = None
    author: str | None = None
    narrator: str | None = None
    backend: str | None = None
    pause_after: float = Field(0.5, ge=0, le=60, description="Default silence after each row, seconds.")
    chapter_pause: float = Field(1.5, ge=0, le=60, description="Silence closing each chapter, seconds.")
    profiles: list[str] = Field(default_factory=lambda: ["audiobook"], description="Delivery profiles to master for.")
    cover: str | None = Field(None, description="Cover image for the M4B, relative to the manifest.")
    podcast: PodcastMeta = Field(default_factory=lambda: PodcastMeta())
    video: VideoMeta = Field(default_factory=lambda: VideoMeta())
    language: str | None = Field(None, description="The rows' language (BCP 47, e.g. 'en'), unless a row says its own.")
    lexicon: str | None = Field(None, description="Pronunciation lexicon CSV, relative to the manifest.")
    source: SourceMeta | None = Field(None, description="The manuscript the manifest was imported from.")
    reading: Literal["plain", "layout", "espeak"] | None = Field(
        None, description="How text is prepared for the engine (text/reading.py); unset: each engine's own style."
    )

    # Settings added after fingerprints were first written: left out of them while unset, so
    # productions made before they existed keep their fingerprints (nothing is redone for them).
    ADDED_LATER: ClassVar[tuple[str, ...]] = ("language", "lexicon", "source", "reading")

    def fingerprint_doc(self) -> dict:
        """The settings as fingerprints record them (see ``ADDED_LATER``)."""
        doc = self.model_dump(mode="json")
        for name in self.ADDED_LATER:
            if doc.get(name) is None:
                doc.pop(name, None)
        return doc

    _known_profiles = field_validator("profiles")(check_profiles)
    _check_language = field_validator("language")(check_language)

    def files(self) -> dict[str, str]:
        """Settings that name files, by setting name: checked when the manifest is loaded."""
        named = {
            "cover": self.cover,
            "podcast.intro": self.podcast.intro,
            "podcast.outro": self.podcast.outro,
            "podcast.bed": self.podcast.bed,
            "lexicon": self.lexicon,
        }
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


class SourceMeta(BaseModel):
    """The ``[source]`` table ``mediamill import`` writes: which manuscript the rows came from.

    The read-along delivery finds the original book by ``file`` (beside the
    manifest) and uses it only while its SHA-256 still matches.
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)

    file: str
    format: str
    sha256: str | None = None
    unit: str | None = None
    max_chars: int | None = None
    importer: int | None = None


Meta.model_rebuild()
