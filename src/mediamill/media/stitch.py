"""Stitching: segments and pauses into chapter files, chapters into one M4B.

Everything streams through ffmpeg's concat demuxer: memory does not grow
with the length of a book. Segments that already share one PCM format (the
usual case: one voice engine) are read as they are; only the odd ones out
are converted first.
"""

from __future__ import annotations

import wave
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..core.files import atomic_path
from .ffmpeg import MediaError, run_ffmpeg
from .probe import MediaInfo, probe

PCM = "pcm_s16le"


@dataclass(frozen=True)
class Piece:
    path: Path
    pause_after_s: float


@dataclass(frozen=True)
class BookMeta:
    title: str
    author: str | None = None
    narrator: str | None = None


def concat_line(path: Path) -> str:
    """One line of an ffmpeg concat list naming ``path``."""
    # The concat demuxer's quoting: wrap in single quotes, escape embedded ones.
    return "file '" + str(path.resolve()).replace("'", "'\\''") + "'\n"


def _silence(workdir: Path, seconds: float, rate: int, channels: int) -> Path:
    frames = round(seconds * rate)
    path = workdir / f"silence-{rate}-{channels}-{frames}.wav"
    if not path.exists():
        with wave.open(str(path), "wb") as wav:
            wav.setnchannels(channels)
            wav.setsampwidth(2)
            wav.setframerate(rate)
            wav.writeframes(b"\0\0" * channels * frames)
    return path


def _target_format(infos: Sequence[MediaInfo]) -> tuple[int, int]:
    """The (rate, channels) most segments already have; ties go to the higher quality."""
    counts = Counter((i.sample_rate or 0, i.channels or 1) for i in infos)
    return max(counts, key=lambda fmt: (counts[fmt], fmt))


def assemble_chapter(pieces: Sequence[Piece], dest: Path, workdir: Path) -> float:
    """Write the pieces, each followed by its pause, as one FLAC file; return its duration."""
    if not pieces:
        raise MediaError("a chapter needs at least one segment")
    workdir.mkdir(parents=True, exist_ok=True)
    infos = [probe(p.path) for p in pieces]
    rate, channels = _target_format(infos)
    listing = workdir / f"{dest.stem}.concat.txt"
    with listing.open("w", encoding="utf-8") as out:
        for n, (piece, info) in enumerate(zip(pieces, infos)):
            source = piece.path
            if (info.audio_codec, info.sample_rate, info.channels) != (PCM, rate, channels):
                source = workdir / f"{dest.stem}-{n:05d}.wav"
                run_ffmpeg("-i", piece.path, "-vn", "-ar", rate, "-ac", channels, "-c:a", PCM, source)
            out.write(concat_line(source))
            if piece.pause_after_s > 0:
                out.write(concat_line(_silence(workdir, piece.pause_after_s, rate, channels)))
    with atomic_path(dest) as tmp:
        run_ffmpeg("-f", "concat", "-safe", "0", "-i", listing, "-c:a", "flac", "-compression_level", "5", tmp)
    return probe(dest).duration_s


def _ffmeta_escape(text: str) -> str:
    for ch in ("\\", "=", ";", "#", "\n"):
        text = text.replace(ch, "\\" + ch)
    return text


def chapters_metadata(meta: BookMeta, chapters: Sequence[tuple[str, float]]) -> str:
    """An FFMETADATA1 document: book tags, then one [CHAPTER] per (title, duration)."""
    tags = {"title": meta.title, "album": meta.title, "genre": "Audiobook"}
    if meta.author:
        tags["artist"] = tags["album_artist"] = meta.author
    if meta.narrator:
        tags["composer"] = meta.narrator  # where audiobook players look for the narrator
    lines = [";FFMETADATA1"] + [f"{k}={_ffmeta_escape(v)}" for k, v in tags.items()]
    start = 0
    elapsed = 0.0
    for title, duration in chapters:
        elapsed += duration
        end = round(elapsed * 1000)  # cumulative, so rounding never drifts
        lines += ["[CHAPTER]", "TIMEBASE=1/1000", f"START={start}", f"END={end}", f"title={_ffmeta_escape(title)}"]
        start = end
    return "\n".join(lines) + "\n"


def build_m4b(
    chapters: Sequence[tuple[str, Path, float]],
    meta: BookMeta,
    dest: Path,
    workdir: Path,
    bitrate: str = "64k",
    audio_filter: str | None = None,
    cover: Path | None = None,
) -> None:
    """Encode the chapter files, in order, into one AAC M4B with chapter markers, tags and cover.

    ``audio_filter`` (gain and limiter from mastering) applies to the whole book in one pass.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    listing = workdir / "book.concat.txt"
    listing.write_text("".join(concat_line(path) for _, path, _ in chapters), encoding="utf-8")
    metadata = workdir / "book.ffmeta"
    metadata.write_text(chapters_metadata(meta, [(t, d) for t, _, d in chapters]), encoding="utf-8")
    art: list[str | Path] = []
    if cover is not None:
        art = [
            "-i",
            cover,
            "-map",
            "2:v",
            "-c:v",
            "mjpeg",
            "-vf",
            "scale='min(1400,iw)':-2",
            "-disposition:v",
            "attached_pic",
        ]
    with atomic_path(dest) as tmp:
        run_ffmpeg(
            "-f",
            "concat",
            "-safe",
            "0",
            "-i",
            listing,
            "-f",
            "ffmetadata",
            "-i",
            metadata,
            *art[:2],
            "-map",
            "0:a",
            "-map_metadata",
            "1",
            "-map_chapters",
            "1",
            *art[2:],
            *(["-af", audio_filter] if audio_filter else []),
            "-c:a",
            "aac",
            "-b:a",
            bitrate,
            "-movflags",
            "+faststart",
            "-f",
            "mp4",
            tmp,
        )
