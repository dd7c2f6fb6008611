"""Run-wide settings, read from the environment (prefix ``MEDIAMILL_``): the one place every one is declared.

``settings()`` is how code reads them: built once per distinct ``MEDIAMILL_*``
environment, so a call per row costs nothing, and a test or a long-lived
worker that changes the environment sees the change. A value that does not
parse fails there, naming the variable. Every field is a row of README's
settings tables (a test holds them together). Engines keep their own classes
for their own prefixes (``VOXCPM_``, ``MEDIAMILL_SERVE_``), and hosted
services their credentials (``WIRO_API_KEY`` and the like); nothing here is
secret. This module imports nothing of mediamill, so every layer may read it.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Annotated, Literal, TypeVar

from pydantic import BaseModel, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Folders given as one variable, separated as PATH is (":" here, ";" on Windows).
Folders = Annotated[list[Path], NoDecode]


class RetryPolicy(BaseModel):
    """How a failing row is retried: exponential backoff with random jitter."""

    retries: int = Field(3, ge=0, le=20)
    delay_s: float = Field(2.0, ge=0)
    jitter: float = Field(0.5, ge=0, le=1)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MEDIAMILL_", extra="ignore", frozen=True)

    outputs: Path = Field(Path("outputs"), description="Root of run outputs and the shared store.")
    backend: str = Field("piper", description="Backend for rows and manifests that name none.")
    ffmpeg: str | None = Field(None, description="Path of the ffmpeg binary to use.")

    # Per-backend limits: a JSON object, e.g. MEDIAMILL_CONCURRENCY='{"piper": 2}'.
    concurrency: dict[str, int] = Field(default_factory=dict)
    retries: int = Field(3, ge=0, le=20, description="Retries per row after the first attempt.")
    retry_delay_s: float = Field(2.0, ge=0, description="First retry delay; doubles each retry.")
    retry_jitter: float = Field(0.5, ge=0, le=1, description="Random +/- fraction added to each delay.")
    # Per-backend overrides, e.g. MEDIAMILL_RETRY='{"wiro": {"retries": 6, "delay_s": 30}}'.
    retry: dict[str, dict[str, float]] = Field(default_factory=dict)
    # Rows per Prefect task, per backend (default: the backend's own), e.g. '{"piper": 10}'.
    batch_rows: dict[str, int] = Field(default_factory=dict)
    limits: Literal["auto", "server", "local"] = Field(
        "auto", description="Where concurrency limits live: auto = on the Prefect server when one is configured."
    )
    machine: str | None = Field(
        None,
        description="This machine's name in its per-machine limits (`mediamill-<backend>-<machine>`); default: "
        "the hostname. Set it where hostnames change (containers) or where several workers stand for machines.",
    )
    lease_s: float = Field(
        300.0,
        ge=60,
        le=86_400,
        description="Server slots are leased for this long and renewed while held; a dead worker's come back then.",
    )
    max_rows: int = Field(100_000, ge=1, description="Rows a manifest may have; more is refused before any work.")
    cancel_check_s: float = Field(5.0, gt=0, description="How often a run checks whether it was cancelled.")
    sweep_in_flight: int = Field(
        4, ge=1, le=1000, description="Manifests a sweep keeps in production at once (child runs on a pool, or here)."
    )
    fleet_rows: int = Field(
        100,
        ge=1,
        description="A run of the produce deployments with at least twice this many rows to generate spreads "
        "them over the pool's online workers, at least this many rows each (`shards` / `--shards` overrides).",
    )
    # Verification of speech takes against their text (see mediamill.verify).
    verify: Literal["pocketsphinx", "whisper", "off"] = Field(
        "pocketsphinx", description="The recogniser that checks each speech take, or off."
    )
    verify_max_takes: int = Field(3, ge=1, le=10, description="Generations per row at most, retakes included.")
    verify_keep_failed: bool = Field(False, description="Keep (and flag) a row whose every take fails, not fail it.")
    verify_concurrency: int = Field(1, ge=1, le=64, description="Takes verified at once in a process.")
    # A take is one row's audio; decoding and recognising it takes memory in proportion to its length
    # (an hour took 2.7 GB with pocketsphinx), so longer ones are refused rather than heard.
    verify_max_seconds: float = Field(1200.0, gt=0, description="Longest take verified, in seconds.")
    # faster-whisper, when it is the recogniser: a CTranslate2 model folder (no download at run time).
    whisper_model: str | None = Field(None, description="faster-whisper model folder (MEDIAMILL_VERIFY=whisper).")
    whisper_device: str = Field("auto", description="faster-whisper device: auto, cpu or cuda.")
    whisper_compute_type: str = Field("default", description="faster-whisper compute type (float32, int8...).")

    # Where a manifest may read from, and which voices it finds.
    asset_roots: Folders = Field(default_factory=list, description="Folders manifests may read files from.")
    allow_private_urls: bool = Field(False, description="Let manifests name URLs on private or internal hosts.")
    voices: Folders = Field(default_factory=list, description="Voice registry folders besides ./voices.")
    piper_voices: Folders = Field(default_factory=list, description="Folders of extra Piper voices (.onnx + .json).")
    cache_dir: Path | None = Field(None, description="Where file digests are remembered; unset: the user cache.")

    # Hosted services: prices for the ones that report no cost, and bounds on what they send back.
    prices: str = Field("", description="JSON, or the path of a JSON file, of prices by backend:model or backend.")
    max_download_mb: float = Field(2048.0, gt=0, description="Largest output file accepted from a service.")
    download_timeout_s: float = Field(600.0, gt=0, description="One download attempt, start to end.")

    @field_validator("asset_roots", "voices", "piper_voices", mode="before")
    @classmethod
    def _folders(cls, value: object) -> object:
        if isinstance(value, str):
            return [Path(part).expanduser() for part in value.split(os.pathsep) if part.strip()]
        return value

    def cache_folder(self) -> Path:
        """``cache_dir``, else ``$XDG_CACHE_HOME/mediamill`` (``~/.cache/mediamill``)."""
        if self.cache_dir is not None:
            return self.cache_dir.expanduser()
        return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mediamill"

    def retry_policy(self, backend: str) -> RetryPolicy:
        base = {"retries": self.retries, "delay_s": self.retry_delay_s, "jitter": self.retry_jitter}
        return RetryPolicy(**{**base, **self.retry.get(backend, {})})


class SettingsError(ValueError):
    """A ``MEDIAMILL_*`` variable that does not parse: every one that does not, by name, with what is wrong."""


def settings() -> Settings:
    """The settings for the environment as it is now (see the module doc); frozen, shared by every caller."""
    try:
        return from_environment(Settings, "MEDIAMILL_")
    except ValidationError as exc:
        problems = [
            f"MEDIAMILL_{str(error['loc'][0]).upper()}: {error['msg']} (it is {error.get('input')!r})"
            for error in exc.errors()
        ]
        raise SettingsError("; ".join(problems)) from None


S = TypeVar("S", bound=BaseSettings)


def from_environment(cls: type[S], prefix: str) -> S:
    """``cls()`` for the environment as it is now, built once per distinct set of ``prefix`` variables.

    Building settings costs milliseconds (pydantic-settings inspects every field) and callers ask per row;
    a worker whose environment changes still gets the new values.
    """
    prefix = prefix.upper()
    return _built(cls, tuple(sorted((k, v) for k, v in os.environ.items() if k.upper().startswith(prefix))))


@functools.lru_cache(maxsize=32)
def _built(cls: type[S], environment: tuple[tuple[str, str], ...]) -> S:
    return cls()
