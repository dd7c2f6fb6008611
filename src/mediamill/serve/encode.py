"""Encoding generated speech for an answer: WAV as made, raw PCM, or through ffmpeg (mp3, flac, opus, aac)."""

from __future__ import annotations

import wave
from pathlib import Path

from ..media import run_ffmpeg

FORMATS = {
    "wav": ("audio/wav", None),
    "mp3": ("audio/mpeg", ["-c:a", "libmp3lame", "-b:a", "128k", "-f", "mp3"]),
    "flac": ("audio/flac", ["-c:a", "flac", "-f", "flac"]),
    "opus": ("audio/ogg", ["-c:a", "libopus", "-b:a", "64k", "-f", "ogg"]),
    "aac": ("audio/aac", ["-c:a", "aac", "-b:a", "128k", "-f", "adts"]),
    "pcm": ("audio/pcm", None),
}


def write_wav(chunks, path: Path, sample_rate: int) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        for chunk in chunks:
            wav.writeframes(chunk)


def encode(wav_path: Path, fmt: str) -> tuple[str, bytes]:
    media_type, codec = FORMATS[fmt]
    if fmt == "wav":
        return media_type, wav_path.read_bytes()
    if fmt == "pcm":
        with wave.open(str(wav_path)) as wav:
            return media_type, wav.readframes(wav.getnframes())
    out = wav_path.with_suffix(f".{fmt}")
    run_ffmpeg("-i", wav_path, *codec, out)
    return media_type, out.read_bytes()
