"""The ``readalong`` profile's delivery: the production as an EPUB 3 read-along, ``readalong/<name>.epub``.

For a manifest imported from an EPUB (its sidecar's ``[source]`` names the
book, which lies beside the manifest with the recorded SHA-256), the
original book gets the overlays; otherwise (no source, or the book changed
or went missing, which the delivery notes) the book is made from the
manifest's own text and chapters. Each row's clip runs from its start to the
next row's start, so the pauses play too; word timings from verification,
where the store has them, give word-level sync.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import cast

from ...assemble import build_timeline
from ...core.hashing import file_digest
from ...manifest import SPEECH_KINDS, SpeechRow
from ...profiles import READALONG
from ..base import Delivery, Production
from .build import build_readalong
from .model import ReadalongBook, ReadalongChapter, ReadalongError, ReadalongRow


def source_epub(p: Production) -> tuple[Path | None, str | None]:
    """The manuscript EPUB to add overlays to, or None with why it is not used."""
    source = p.plan.manifest.meta.source
    if source is None or not source.format.lower().startswith("epub"):
        return None, None
    path = p.plan.manifest.base_dir / source.file
    if not path.is_file():
        return None, f"the source book {source.file} is not beside the manifest: built from the manifest's text"
    if source.sha256 and file_digest(path) != source.sha256:
        return None, f"the source book {source.file} changed since the import: built from the manifest's text"
    return path, None


def _words(p: Production, key: str, start_s: float) -> tuple[tuple[str, float, float], ...] | None:
    """A row's word timings from the store (relative to the row), moved to chapter time."""
    entry = p.entries.get(key)
    words_file = entry.path.with_name(f"{key}.words.json") if entry else None
    if words_file is None or not words_file.is_file():
        return None
    try:
        doc = json.loads(words_file.read_text())
        return tuple((str(w["word"]), start_s + float(w["start_s"]), start_s + float(w["end_s"])) for w in doc["words"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def readalong_book(p: Production) -> tuple[ReadalongBook, list[str]]:
    plan, meta = p.plan, p.plan.manifest.meta
    notes: list[str] = []
    epub, why = source_epub(p)
    if why:
        notes.append(why)
    timeline = build_timeline(plan, p.entries)
    jobs = {j.id: j for j in plan.jobs if j.kind in SPEECH_KINDS}
    chapters = []
    for span, audio in zip(timeline.chapters, p.book.chapters):
        rows = []
        for i, row in enumerate(span.rows):
            job = jobs[row.id]
            end = span.rows[i + 1].start_s if i + 1 < len(span.rows) else span.duration_s
            rows.append(
                ReadalongRow(
                    row.id,
                    cast(SpeechRow, job.row).text,  # the timeline holds speech rows only
                    getattr(job.row, "source", None) if epub else None,
                    row.start_s,
                    end,
                    _words(p, job.key, row.start_s),
                )
            )
        chapters.append(ReadalongChapter(span.title, audio, tuple(rows)))
    cover = None
    if meta.cover:
        cover = Path(meta.cover) if Path(meta.cover).is_absolute() else plan.manifest.base_dir / meta.cover
    book = ReadalongBook(
        title=plan.manifest.title,
        author=meta.author,
        language=meta.language,
        cover=cover,
        source_epub=epub,
        chapters=tuple(chapters),
        narrator=meta.narrator,
    )
    return book, notes


def deliver_readalong(p: Production, work: Path) -> Delivery:
    delivery = Delivery(READALONG.name)
    if p.book.incomplete or len(p.book.chapters) != len(p.plan.chapters) or not p.book.chapters:
        delivery.problems.append("no read-along: the book has incomplete chapters or no speech rows")
        return delivery
    book, notes = readalong_book(p)
    dest = p.out_dir / "readalong" / f"{p.plan.name}.epub"
    try:
        build_readalong(dest, book, work=work)
    except ReadalongError as exc:
        delivery.problems.append(str(exc))
        return delivery
    delivery.outputs.append(dest)
    delivery.notes += notes + list(book.warnings)
    return delivery
