"""The timeline: where every row's speech sits in its chapter's audio and in the whole book.

Stitching lays a chapter out as each segment followed by its pause, so a
row starts where the previous row's segment and pause end. Captions and the
read-along book read these offsets; word timings from verification are
relative to a row's start and shift by it (``RowSpan.shift``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..plan import Plan
from ..store import Entry


@dataclass(frozen=True)
class RowSpan:
    id: str
    chapter: int  # the chapter's number
    start_s: float  # where the row's speech starts in its chapter's audio
    end_s: float  # where it ends (its pause follows)
    book_start_s: float  # where it starts in the whole book

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    def shift(self, seconds: float, in_book: bool = False) -> float:
        """A time relative to the row's start, as a time in its chapter (or, with ``in_book``, in the book)."""
        return (self.book_start_s if in_book else self.start_s) + seconds


@dataclass(frozen=True)
class ChapterSpan:
    number: int
    title: str
    start_s: float  # where the chapter starts in the book
    duration_s: float
    rows: list[RowSpan] = field(default_factory=list)


@dataclass(frozen=True)
class Timeline:
    chapters: list[ChapterSpan]

    def row(self, row_id: str) -> RowSpan | None:
        for chapter in self.chapters:
            for span in chapter.rows:
                if span.id == row_id:
                    return span
        return None

    def to_json(self) -> dict[str, Any]:
        return {"chapters": [asdict(c) for c in self.chapters]}


def build_timeline(plan: Plan, entries: dict[str, Entry]) -> Timeline:
    """Offsets of every speech row of complete chapters, from the stored segments' durations and the pauses."""
    chapters: list[ChapterSpan] = []
    book = 0.0
    for chapter in plan.chapters:
        if not all(s.job.key in entries for s in chapter.segments):
            continue  # not stitched: no audio to point into
        at = 0.0
        spans = []
        for segment in chapter.segments:
            duration = entries[segment.job.key].duration_s
            spans.append(
                RowSpan(segment.job.id, chapter.number, round(at, 4), round(at + duration, 4), round(book + at, 4))
            )
            at += duration + segment.pause_after
        chapters.append(ChapterSpan(chapter.number, chapter.title, round(book, 4), round(at, 4), spans))
        book += at
    return Timeline(chapters)
