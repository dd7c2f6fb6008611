"""What the read-along builder is given: the book, its chapters' audio, and each row's stretch of it.

Times are seconds within the chapter's audio file. A row's stretch is
``[start_s, end_s)``: reading systems play exactly that clip, so the timeline
should give a row the pause after it (``end_s`` = the next row's ``start_s``),
or pauses are skipped in playback. ``words`` are (word, start_s, end_s) in the
same clock, for rows a word aligner has timed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path


class ReadalongError(Exception):
    """The read-along book cannot be built from what was given."""


@dataclass(frozen=True)
class ReadalongRow:
    id: str
    text: str
    source: str | None  # "<href relative to the OPF folder>#<fragment>" for rows imported from an EPUB
    start_s: float
    end_s: float
    words: tuple[tuple[str, float, float], ...] | None = None


@dataclass(frozen=True)
class ReadalongChapter:
    title: str
    audio: Path  # the chapter's lossless audio (FLAC from stitching)
    rows: tuple[ReadalongRow, ...]


@dataclass(frozen=True)
class ReadalongBook:
    title: str
    author: str | None
    language: str | None
    cover: Path | None
    source_epub: Path | None
    chapters: tuple[ReadalongChapter, ...]
    narrator: str | None = None
    modified: datetime | None = None  # dcterms:modified; default: now
    audio_bitrate: str = "64k"
    warnings: list[str] = field(default_factory=list, compare=False)  # filled while building

    def check(self) -> None:
        """Refuse times that cannot make valid clips."""
        if not self.chapters:
            raise ReadalongError("the book has no chapters")
        seen: set[str] = set()
        for chapter in self.chapters:
            if not Path(chapter.audio).is_file():
                raise ReadalongError(f"chapter '{chapter.title}': audio file not found: {chapter.audio}")
            last_end = 0.0
            for row in chapter.rows:
                if row.id in seen:
                    raise ReadalongError(f"row id '{row.id}' appears twice")
                seen.add(row.id)
                if row.start_s < 0 or row.end_s <= row.start_s:
                    raise ReadalongError(f"row {row.id}: its stretch {row.start_s}-{row.end_s} s is empty or negative")
                if row.start_s < last_end - 0.0005:
                    raise ReadalongError(
                        f"row {row.id} starts at {row.start_s} s, before the previous row ends ({last_end} s)"
                    )
                last_end = row.end_s
