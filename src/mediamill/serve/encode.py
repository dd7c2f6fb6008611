"""Encoding generated speech for an answer: WAV as made, raw PCM, or through ffmpeg (mp3, flac, opus, aac).

``encode`` turns a finished reading (a WAV file) into the requested format,
re-timed first when the request asked for another speed. ``encode_stream``
does the same to PCM chunks while they are still being generated, through
ffmpeg running for the whole answer (``media.pipe``), so a stream is one
valid file of its format; raw PCM at the voice's own speed passes straight
through.
"""

from __future__ import annotations

import wave
from collections.abc import Iterable, Iterator
from pathlib import Path

from ..media import run_ffmpeg
from ..media.pipe import pipe_pcm
from ..media.tempo import change_tempo, tempo_stream

FORMATS = {
    "wav": ("audio/wav", None),
    "mp3": ("audio/mpeg", ["-c:a", "libmp3lame", "-b:a", "128k", "-f", "mp3"]),
    "flac": ("audio/flac", ["-c:a", "flac", "-f", "flac"]),
    "opus": ("audio/ogg", ["-c:a", "libopus", "-b:a", "64k", "-f", "ogg"]),
    "aac": ("audio/aac", ["-c:a", "aac", "-b:a", "128k", "-f", "adts"]),
    "pcm": ("audio/pcm", None),
}
# WAV streamed is ffmpeg's: its header cannot know the length, and ffmpeg marks it unknown, as players
# expect of a stream (Python's wave module writes it when the audio is whole).
STREAMED = {"wav": ["-c:a", "pcm_s16le", "-f", "wav"]}


def write_wav(chunks, path: Path, sample_rate: int) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        for chunk in chunks:
            wav.writeframes(chunk)


def encode(wav_path: Path, fmt: str, tempo: float | None = None) -> tuple[str, bytes]:
    if tempo is not None:
        wav_path = change_tempo(wav_path, wav_path.with_name(f"{wav_path.stem}-tempo.wav"), tempo)
    media_type, codec = FORMATS[fmt]
    if fmt == "wav":
        return media_type, wav_path.read_bytes()
    if fmt == "pcm":
        with wave.open(str(wav_path)) as wav:
            return media_type, wav.readframes(wav.getnframes())
    out = wav_path.with_suffix(f".{fmt}")
    assert codec is not None  # only wav and pcm, answered above, have none
    run_ffmpeg("-i", wav_path, *codec, out)
    return media_type, out.read_bytes()


def encode_stream(chunks: Iterable[bytes], sample_rate: int, fmt: str, tempo: float | None = None) -> Iterator[bytes]:
    """16-bit mono PCM chunks as the bytes of one ``fmt`` stream, re-timed by ``tempo`` when given."""
    if tempo is not None:
        chunks = tempo_stream(chunks, sample_rate, tempo)
    if fmt == "pcm":
        return iter(chunks)
    codec = STREAMED.get(fmt) or FORMATS[fmt][1]
    assert codec is not None
    return pipe_pcm(chunks, sample_rate, codec)
