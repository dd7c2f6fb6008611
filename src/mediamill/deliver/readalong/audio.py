"""Chapter audio for the package: lossless chapter files -> MP3.

MP3 is an EPUB 3 core media type that every reading system with overlay
support decodes (Thorium, Apple Books, Readium-based apps). It is encoded at a
constant bit rate (64 kb/s mono by default, plenty for speech) so a player can
seek to any ``clipBegin`` by arithmetic, without scanning the file; LAME's
header records the encoder delay, which players use to keep clips on time.
"""

from __future__ import annotations

from pathlib import Path

from ...core.files import atomic_path
from ...media import MediaError, probe, run_ffmpeg
from .model import ReadalongError

_MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)


def encode_mp3(source: Path, dest: Path, bitrate: str = "64k") -> float:
    """Encode ``source`` to CBR MP3 at ``dest``; return the encoded file's duration in seconds."""
    try:
        info = probe(source)
        rate = info.sample_rate if info.sample_rate in _MP3_RATES else 44100
        with atomic_path(dest) as tmp:
            run_ffmpeg(
                "-i",
                source,
                "-vn",
                "-ac",
                "1",
                "-ar",
                rate,
                "-c:a",
                "libmp3lame",
                "-b:a",
                bitrate,
                "-write_xing",
                "1",
                "-id3v2_version",
                "0",
                "-f",
                "mp3",
                tmp,
            )
        return probe(dest).duration_s
    except MediaError as exc:
        raise ReadalongError(f"cannot encode {source.name}: {exc}") from None
