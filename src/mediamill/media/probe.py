"""Read what a media file holds (streams, duration, tags, chapters) with PyAV.

PyAV bundles FFmpeg's libraries, so probing needs no ffprobe binary.
"""

from __future__ import annotations

import os
import wave
from dataclasses import dataclass, field
from pathlib import Path

from .ffmpeg import MediaError


@dataclass(frozen=True)
class ChapterMark:
    title: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class MediaInfo:
    duration_s: float
    format: str
    bit_rate: int | None
    audio_codec: str | None = None
    sample_rate: int | None = None
    channels: int | None = None
    video_codec: str | None = None
    width: int | None = None
    height: int | None = None
    tags: dict[str, str] = field(default_factory=dict)
    chapters: list[ChapterMark] = field(default_factory=list)


def _probe_wav(path: Path | str) -> MediaInfo | None:
    """Plain PCM WAV, the common case for generated speech: read the header directly."""
    try:
        with wave.open(str(path), "rb") as wav:
            rate, frames, width = wav.getframerate(), wav.getnframes(), wav.getsampwidth()
            channels = wav.getnchannels()
    except (wave.Error, EOFError, OSError, RuntimeError):  # RuntimeError: a chunk larger than its parent
        return None  # float or extensible WAV, or not WAV at all: let FFmpeg judge
    if width != 2 or rate <= 0 or frames * channels * width > os.path.getsize(path):
        return None  # a header that promises more samples than the file holds: truncated
    return MediaInfo(
        duration_s=frames / rate,
        format="wav",
        bit_rate=rate * channels * 16,
        audio_codec="pcm_s16le",
        sample_rate=rate,
        channels=channels,
    )


def probe(path: Path | str) -> MediaInfo:
    if str(path).lower().endswith(".wav"):
        info = _probe_wav(path)
        if info is not None:
            return info
    import av

    try:
        with av.open(str(path)) as container:
            audio = next(iter(container.streams.audio), None)
            video = next(iter(container.streams.video), None)
            duration = None
            for stream in (audio, video):
                if stream is not None and stream.duration is not None and stream.time_base:
                    duration = float(stream.duration * stream.time_base)
                    break
            if duration is None and container.duration is not None:
                duration = container.duration / 1_000_000
            chapters = [
                ChapterMark(
                    title=str(c.get("metadata", {}).get("title", "")),
                    start_s=float(c["start"] * c["time_base"]),  # type: ignore[operator]  # FFmpeg sets time_base
                    end_s=float(c["end"] * c["time_base"]),  # type: ignore[operator]  # FFmpeg sets time_base
                )
                for c in container.chapters()
            ]
            return MediaInfo(
                duration_s=duration or 0.0,
                format=container.format.name,
                bit_rate=container.bit_rate or None,
                audio_codec=audio.codec_context.name if audio else None,
                sample_rate=audio.codec_context.sample_rate if audio else None,
                channels=audio.codec_context.channels if audio else None,
                video_codec=video.codec_context.name if video else None,
                width=video.codec_context.width if video else None,
                height=video.codec_context.height if video else None,
                tags={k.lower(): v for k, v in container.metadata.items()},
                chapters=chapters,
            )
    except (av.error.FFmpegError, OSError, StopIteration) as exc:
        raise MediaError(f"cannot read media file {path}: {exc}") from None
