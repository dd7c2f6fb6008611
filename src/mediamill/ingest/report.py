"""The import report: what went in, what was left out and why, how long and how costly.

Returned as data (``ImportReport``, ``to_dict()`` for JSON) and printed as
text (``to_text()``). Durations are predicted the way mediamill predicts row
lengths (about 14 Latin characters a second, 4.5 for CJK, plus punctuation
pauses) with every row's ``pause_after`` added. The coverage figure is the
share of the source's body words (the text of every document part that holds
a read chapter, less the front/back matter sections and the note texts
skipped in it) that reach the manifest, counted as a multiset of words; what
else is deliberately left out inside the body (tables, page numbers, alt
text) counts as missing and is listed under "Skipped".
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field

from ..backends.base import CostEstimate
from .model import Skipped


@dataclass
class ChapterSummary:
    number: int
    title: str
    rows: int
    words: int
    chars: int
    predicted_s: float
    source: str


@dataclass
class ImportReport:
    source: str
    format: str
    name: str
    title: str
    author: str | None
    language: str | None
    chapters: list[ChapterSummary] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    remarks: list[str] = field(default_factory=list)
    costs: list[CostEstimate] = field(default_factory=list)
    rows: int = 0
    ids_kept: int = 0
    ids_new: int = 0
    ids_gone: int = 0
    body_words: int = 0
    body_words_in_manifest: int = 0
    outputs: dict[str, str] = field(default_factory=dict)
    encoding: str | None = None  # a text source's encoding, as it was decoded

    @property
    def coverage(self) -> float:
        return self.body_words_in_manifest / self.body_words if self.body_words else 1.0

    @property
    def words(self) -> int:
        return sum(c.words for c in self.chapters)

    @property
    def predicted_s(self) -> float:
        return sum(c.predicted_s for c in self.chapters)

    def to_dict(self) -> dict:
        doc = asdict(self)
        doc["costs"] = [c.to_dict() for c in self.costs]
        doc.update(coverage=round(self.coverage, 4), words=self.words, predicted_s=round(self.predicted_s, 1))
        return doc

    def to_text(self) -> str:
        by = f" by {self.author}" if self.author else ""
        lines = [
            f"Imported {self.source} ({self.format}{', ' + self.encoding if self.encoding else ''}): "
            f'"{self.title}"{by}, language {self.language or "unknown"}',
            f"  {len(self.chapters)} chapters, {self.rows:,} rows, {self.words:,} words, "
            f"predicted {_duration(self.predicted_s)} (speech and pauses)",
            f"  body words reaching the manifest: {self.coverage:.1%} "
            f"({self.body_words_in_manifest:,} of {self.body_words:,})",
        ]
        if self.ids_kept or self.ids_gone:
            lines.append(
                f"  ids: {self.ids_kept:,} kept from the previous import, {self.ids_new:,} new, "
                f"{self.ids_gone:,} no longer present"
            )
        lines.append("Chapters")
        width = max((len(c.title) for c in self.chapters), default=10)
        width = min(width, 48)
        for c in self.chapters:
            lines.append(
                f"  {c.number:>3}  {_cut(c.title, width):<{width}}  {c.rows:>5} rows  {c.words:>7,} words  "
                f"{_duration(c.predicted_s):>10}"
            )
        if self.skipped:
            lines.append("Skipped")
            grouped: dict[str, list[Skipped]] = defaultdict(list)
            for s in self.skipped:
                grouped[s.reason].append(s)
            for reason, items in grouped.items():
                words = sum(s.words for s in items)
                if len(items) == 1 or all(s.what not in ("note", "table", "navigation list", "math") for s in items):
                    for s in items:
                        lines.append(f"  {_cut(s.what, 40)}: {reason}, at {s.source}, {s.words:,} words")
                else:
                    lines.append(
                        f"  {len(items)} x {items[0].what}: {reason}, {words:,} words (first at {items[0].source})"
                    )
        if self.costs:
            lines.append("Cost")
            for cost in self.costs:
                usd = "unknown" if cost.usd is None else f"${cost.usd:,.2f}"
                lines.append(f"  {cost.backend}: {usd} ({cost.basis})")
        if self.remarks:
            lines.append("Notes")
            lines += [f"  - {r}" for r in self.remarks]
        if self.outputs:
            lines.append("Wrote " + ", ".join(self.outputs.values()))
        return "\n".join(lines)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "\u2026"


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h} h {m:02d} min" if h else f"{m} min {s:02d} s"
