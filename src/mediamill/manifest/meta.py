"""The sidecar ``<manifest>.toml``: production-wide settings (title, pauses, delivery profiles, music).

Profile names are checked against the one registry of profiles
(``mediamill.profiles.PROFILES``), so a new profile is added there alone.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..profiles import PROFILES


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
    podcast: "PodcastMeta" = Field(default_factory=lambda: PodcastMeta())
    video: "VideoMeta" = Field(default_factory=lambda: VideoMeta())

    _known_profiles = field_validator("profiles")(check_profiles)

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
