"""What a delivery produced: each delivered file with its measurement and its rules' verdicts.

Also what every profile's mastering shares: judging an encoded file by its
profile, the manifest's files by setting, and the whole speech as one track.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..assemble import BookOutputs
from ..media import master
from ..media.measure import Measurement, measure
from ..plan import Plan
from ..profiles import Profile, Verdict
from ..store import Entry


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
