"""What a delivery produced: each delivered file with its measurement and its rules' verdicts.

Also what every profile's mastering shares: judging an encoded file by its
profile, the manifest's files by setting, the whole speech as one track, and
the speech rows as captions see them (``caption_rows``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from ..assemble import BookOutputs, build_timeline
from ..manifest import SpeechRow
from ..media import master
from ..media.measure import Measurement, measure
from ..plan import Plan
from ..profiles import Profile, Verdict
from ..store import Entry
from .captions import CaptionRow


@dataclass(frozen=True)
class Production:
    """What every profile delivers from: the plan, the stitched book, the stored media, the output folder."""

    plan: Plan
    book: BookOutputs
    entries: dict[str, Entry]
    out_dir: Path


@dataclass
class DeliveredFile:
    path: Path
    measurement: Measurement
    verdicts: list[Verdict]

    @property
    def ok(self) -> bool:
        return all(v.ok for v in self.verdicts)


@dataclass
class Delivery:
    profile: str
    files: list[DeliveredFile] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # failures found before encoding (an over-long chapter)
    outputs: list[Path] = field(default_factory=list)  # delivered files that are not measured as audio (an EPUB)
    notes: list[str] = field(default_factory=list)  # what the delivery did that a producer should know
    reused: bool = False
    doc: dict[str, Any] | None = None  # the QC record, when reused from an earlier run

    @property
    def ok(self) -> bool:
        if self.doc is not None:
            return bool(self.doc["ok"])
        return not self.problems and all(f.ok for f in self.files)

    def failures(self) -> list[str]:
        if self.doc is not None:
            return list(self.doc.get("failures", []))
        out = list(self.problems)
        for f in self.files:
            out += [f"{f.path.name}: {v}" for v in f.verdicts if not v.ok]
        return out


def resolve_file(plan: Plan, value: str | None) -> Path | None:
    if not value:
        return None
    path = Path(value)
    return path if path.is_absolute() else plan.manifest.base_dir / path


def judge_file(path: Path, profile: Profile, extra: dict[str, Any] | None = None) -> DeliveredFile:
    m = measure(path)
    facts = {"duration_min": m.duration_s / 60, **(extra or {})}
    return DeliveredFile(path, m, profile.judge(m, facts))


def speech_track(book: BookOutputs, work: Path) -> Path:
    """All chapters, in order, as one lossless file (the episode's or the video's narration)."""
    if len(book.chapters) == 1:
        return book.chapters[0]
    out = work / "speech.flac"
    master.run_ffmpeg(*master.concat_args(book.chapters, work, "speech"), "-c:a", "flac", out)
    return out


def row_words(p: Production, key: str, offset_s: float) -> tuple[tuple[str, float, float], ...] | None:
    """A stored take's word timings (relative to the take) moved by ``offset_s``; None when it has none."""
    entry = p.entries.get(key)
    path = entry.path.with_name(f"{key}.words.json") if entry is not None else None
    if path is None or not path.is_file():
        return None
    try:
        words = json.loads(path.read_text())["words"]
        return tuple((str(w["word"]), offset_s + float(w["start_s"]), offset_s + float(w["end_s"])) for w in words)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def caption_rows(p: Production, in_book: bool, chapter: int | None = None) -> list[CaptionRow]:
    """The speech rows as captions see them: times in the whole book (``in_book``) or in one chapter's audio."""
    timeline = build_timeline(p.plan, p.entries)
    jobs = {j.id: j for j in p.plan.jobs}
    rows: list[CaptionRow] = []
    for span in timeline.chapters:
        if chapter is not None and span.number != chapter:
            continue
        base = span.start_s if in_book else 0.0
        for i, row in enumerate(span.rows):
            job = jobs[row.id]
            start = base + row.start_s
            until = base + (span.rows[i + 1].start_s if i + 1 < len(span.rows) else span.duration_s)
            rows.append(
                CaptionRow(
                    cast(SpeechRow, job.row).text,  # the timeline holds speech rows only
                    start,
                    base + row.end_s,
                    until,
                    row_words(p, job.key, start),
                    job.language,
                )
            )
    return rows
