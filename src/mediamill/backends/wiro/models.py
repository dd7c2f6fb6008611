"""Wiro's models as mediamill rows: a row becomes a model's inputs, and what a model refuses is said up front.

Values that are local files stay paths here (hashed into the content key); at
run time ``url_inputs`` are uploaded and replaced by their URL, ``file_inputs``
travel in the multipart Run request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...manifest import CloneRow, SongRow, SpeechRow, VideoRow

__all__ = [
    "ADAPTERS",
    "MODEL_FOR_KIND",
    "OVI",
    "OVI_RESOLUTIONS",
    "VOXCPM",
    "YUE",
    "Adapter",
    "ovi_inputs",
    "unbalanced_tags",
    "voxcpm_inputs",
    "yue_inputs",
]

VOXCPM, YUE, OVI = "openbmb/voxcpm", "wiro/text-to-song-with-reference-yue", "chetwinlow1/ovi"
MODEL_FOR_KIND = {"tts": VOXCPM, "clone": VOXCPM, "song": YUE, "video": OVI}
OVI_RESOLUTIONS = ("default", "512x992", "992x512", "960x512", "512x960", "720x720", "448x1120", "1120x448")


@dataclass(frozen=True)
class Adapter:
    model: str
    url_inputs: tuple[str, ...] = ()  # text fields that take a URL: local files are uploaded first
    file_inputs: tuple[str, ...] = ()  # file fields: local files go in the Run request itself
    output: str = "audio/"


ADAPTERS = {
    VOXCPM: Adapter(VOXCPM, url_inputs=("inputAudioUrl", "inputAudioReferenceUrl")),
    YUE: Adapter(YUE, url_inputs=("inputAudioUrl",)),
    OVI: Adapter(OVI, file_inputs=("inputImage",), output="video/"),
}


def voxcpm_inputs(row: SpeechRow) -> dict[str, Any]:
    inputs: dict[str, Any] = {
        "prompt": row.text,
        "cfgValue": row.cfg_value if row.cfg_value is not None else 2.0,
        "inferenceSteps": row.inference_timesteps or 10,
    }
    if isinstance(row, CloneRow) and row.reference:
        if row.reference_text:  # prompt continuation: the reference and what it says
            inputs["inputAudioReferenceUrl"] = row.reference
            inputs["referencePrompt"] = row.reference_text
        else:
            inputs["inputAudioUrl"] = row.reference
    return inputs


def yue_inputs(row: SongRow) -> dict[str, Any]:
    inputs: dict[str, Any] = {"prompt": row.lyrics}
    for column in ("genre", "instrument", "mood", "gender", "timbre"):
        if getattr(row, column):
            inputs[column] = list(getattr(row, column))
    if row.reference:
        inputs["inputAudioUrl"] = row.reference
        inputs["audio_prompt_type"] = row.clone_type or "both"
    if row.seed is not None:
        inputs["seed"] = str(row.seed)
    return inputs


def ovi_inputs(row: VideoRow) -> dict[str, Any]:
    inputs: dict[str, Any] = {"inputImage": row.image, "prompt": row.prompt, "resolution": row.resolution or "default"}
    optional = {
        "negativePrompt": row.negative_prompt,
        "audioNegativePrompt": row.audio_negative_prompt,
        "steps": row.steps,
        "seed": row.seed,
    }
    inputs.update({k: v for k, v in optional.items() if v is not None})
    return inputs


def unbalanced_tags(prompt: str) -> str | None:
    for opening, closing in (("<S>", "<E>"), ("<AUDCAP>", "<ENDAUDCAP>")):
        if prompt.count(opening) != prompt.count(closing):
            return f"prompt has {prompt.count(opening)} {opening} but {prompt.count(closing)} {closing}"
    return None
