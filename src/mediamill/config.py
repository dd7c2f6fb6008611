"""Run-wide settings, read from the environment (prefix ``MEDIAMILL_``).

Backends that talk to hosted services read their own credentials
(``WIRO_API_KEY`` and the like) in their own modules; nothing here is secret.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class RetryPolicy(BaseModel):
    """How a failing row is retried: exponential backoff with random jitter."""

    retries: int = Field(3, ge=0, le=20)
    delay_s: float = Field(2.0, ge=0)
    jitter: float = Field(0.5, ge=0, le=1)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MEDIAMILL_", extra="ignore")

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
    lease_s: float = Field(
        300.0, ge=60, le=86_400,
        description="Server slots are leased for this long and renewed while held; a dead worker's come back then.",
    )  # fmt: skip
    max_rows: int = Field(100_000, ge=1, description="Rows a manifest may have; more is refused before any work.")
    cancel_check_s: float = Field(5.0, gt=0, description="How often a run checks whether it was cancelled.")
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

    def retry_policy(self, backend: str) -> RetryPolicy:
        base = {"retries": self.retries, "delay_s": self.retry_delay_s, "jitter": self.retry_jitter}
        return RetryPolicy(**{**base, **self.retry.get(backend, {})})


def settings() -> Settings:
    """Fresh settings each call, so tests and long-lived workers see env changes."""
    return Settings()
