"""What ``mediamill serve`` accepts: its settings and the speech request, validated like OpenAI's API.

Unknown request fields are ignored, as OpenAI's server does, so OpenAI SDKs
work unchanged; documented fields out of range get a 422 naming the field.
OpenAI's own fields mean what they mean there: ``speed`` a finite JSON number
from 0.25 to 4 (never a string or a boolean), ``voice`` a name or
``{"id": name}``, ``stream_format`` ``audio`` or ``sse``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# OpenAI clients always send one of these; they mean "the server's default voice" here.
STOCK_VOICES = {
    "alloy",
    "ash",
    "ballad",
    "cedar",
    "coral",
    "echo",
    "fable",
    "marin",
    "nova",
    "onyx",
    "sage",
    "shimmer",
    "verse",
}
# Reachable without the API key (GET only): the health check and the playground page.
OPEN_PATHS = {"/", "/health"}
MAX_PROMPT_PATH = 4096


class ServeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MEDIAMILL_SERVE_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    engine: Literal["voxcpm", "piper"] = "voxcpm"
    api_key: SecretStr | None = None
    voices: list[Path] = Field(default_factory=list, description="Voice registry folders; the first takes uploads.")
    prompts: list[Path] = Field(default_factory=list, description="Extra folders prompt_wav_path may read from.")
    max_input_chars: int = Field(4096, ge=1, le=100_000)
    max_body_mb: float = Field(25.0, gt=0)
    max_pending: int = Field(16, ge=1, description="Requests generating or waiting before 429.")
    strict: bool = Field(False, description="Refuse (422) what the engine cannot do, not ignore it with a header.")


class SpeechRequest(BaseModel):
    # Unknown fields are ignored, as OpenAI's server does, so OpenAI SDKs work unchanged.
    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    input: str = Field(min_length=1)
    voice: str | None = Field(None, description='A voice name, or OpenAI\'s custom-voice form {"id": name}.')
    prompt_wav_path: str | None = None
    prompt_text: str | None = None
    instructions: str | None = Field(
        None,
        max_length=1000,
        description=(
            "Voice design / style (VoxCPM2); an engine without voice design ignores it, saying so in "
            "X-Instructions-Ignored, unless the server is strict (422)."
        ),
    )
    response_format: Literal["wav", "mp3", "flac", "opus", "aac", "pcm"] = "wav"
    # A JSON number, as OpenAI's API takes it: strict refuses "2" and true (ints still pass), and a NaN or an
    # infinity is refused as not finite rather than as past a bound it is not past.
    speed: float = Field(
        1.0,
        ge=0.25,
        le=4.0,
        strict=True,
        allow_inf_nan=False,
        description="Speed of speech, 1 = the voice's own (OpenAI's range).",
    )
    stream_format: Literal["audio", "sse"] = Field("audio", description="sse: OpenAI's server-sent audio events.")
    max_length: int = Field(2048, ge=1, le=2048, description="Longest generation per piece, in model steps.")
    cfg_value: float = Field(2.0, ge=0, le=10)
    inference_timesteps: int = Field(10, ge=1, le=100)
    seed: int | None = Field(None, ge=0, le=2**31 - 1)

    @field_validator("voice", mode="before")
    @classmethod
    def _voice_id(cls, value: object) -> object:
        # OpenAI's SDKs name custom voices as {"id": ...}: here that is a voice name like any other.
        if isinstance(value, dict) and set(value) == {"id"}:
            return value["id"]
        return value
