"""``import_manuscript``: a manuscript file -> ``<name>.csv`` + ``<name>.toml`` (+ cover) and a report.

Everything is read and decided before anything is written; then the cover,
the sidecar and the manifest are written together (``core.files.atomic_paths``:
each under a temporary name, then all renamed, the manifest last), so a
failed import leaves the folder as it was (a folder it made is removed) and
a reader never sees half a manifest or a manifest without its sidecar. A
failed write is an ``IngestError`` naming the output it could not write. A previous import in the folder
(``<name>.csv``) lends its ids to rows whose text is unchanged (see
``ids.py``), its extra columns (voice, style, ...) to those rows, and its
hand-added rows (those without a ``source``) are kept after the row they
followed.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.files import atomic_paths
from ..core.hashing import file_digest
from ..manifest.tables import csv_bytes
from ..text.pace import predicted_seconds
from .chapters import build_chapters
from .clean import word_bag, word_count
from .costs import estimate
from .ids import assign_ids, normalise
from .matter import classify
from .model import Block, Chapter, IngestError, Manuscript, Skipped, part_of
from .options import ImportOptions
from .report import ChapterSummary, ImportReport
from .sidecar import render_sidecar
from .sources import check_rows, check_size, check_source
from .units import PAUSE_CHAPTER, PAUSE_PARAGRAPH, RowText, chapter_rows

COLUMNS = ["id", "chapter", "text", "pause_after", "source"]
IMPORTER_VERSION = 1
_SUFFIXES = {
    ".epub": "epub",
    ".docx": "docx",
    ".md": "markdown",
    ".markdown": "markdown",
    ".mdown": "markdown",
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
    ".txt": "text",
    ".text": "text",
    ".pdf": "pdf",
}
_RESERVED = {"con", "prn", "aux", "nul"} | {f"{p}{i}" for p in ("com", "lpt") for i in range(1, 10)}


@dataclass
class ImportResult:
    manifest: Path
    sidecar: Path
    cover: Path | None
    columns: list[str]
    rows: list[dict[str, Any]]
    report: ImportReport


def safe_name(stem: str) -> str:
    """A manifest name from a file name: ASCII letters, digits, '.', '_' and '-', starting with a letter or digit."""
    ascii_name = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode("ascii").lower()
    name = re.sub(r"[^a-z0-9._-]+", "-", ascii_name).strip("-._")[:80].rstrip("-._")
    name = re.sub(r"\.{2,}", ".", name)
    if not name:
        return "book"
    return f"book-{name}" if name.split(".")[0] in _RESERVED else name


def detect_format(path: Path, forced: str | None = None) -> str:
    if forced:
        if forced not in set(_SUFFIXES.values()):
            raise IngestError(f"unknown format '{forced}' (known: {', '.join(sorted(set(_SUFFIXES.values())))})")
        return forced
    with path.open("rb") as fh:
        head = fh.read(8)
    if head.startswith(b"%PDF"):
        return "pdf"
    if head.startswith(b"PK"):
        import zipfile

        try:
            with zipfile.ZipFile(path) as z:
                names = set(z.namelist())
        except zipfile.BadZipFile:
            raise IngestError(f"{path.name} looks like a ZIP archive but cannot be opened") from None
        if "word/document.xml" in names:
            return "docx"
        if "META-INF/container.xml" in names or path.suffix.lower() == ".epub":
            return "epub"
        raise IngestError(f"{path.name} is a ZIP archive but neither an EPUB nor a DOCX file")
    fmt = _SUFFIXES.get(path.suffix.lower())
    if fmt is None or fmt in ("epub", "docx", "pdf"):
        known = ", ".join(sorted(_SUFFIXES))
        raise IngestError(f"{path.name}: cannot tell what kind of manuscript this is (known: {known})")
    return fmt


def _read(path: Path, fmt: str, o: ImportOptions) -> Manuscript:
    if fmt == "epub":
        from .readers.epub import read_epub

        return read_epub(path, alt_text=o.alt_text, tables=o.tables, keep=o.keep)
    if fmt == "docx":
        from .readers.docx import read_docx

        return read_docx(path, alt_text=o.alt_text, tables=o.tables)
    if fmt == "markdown":
        from .readers.markdown import read_markdown

        return read_markdown(path, alt_text=o.alt_text, tables=o.tables)
    if fmt == "html":
        from .readers.html import read_html

        return read_html(path, alt_text=o.alt_text, tables=o.tables, keep=o.keep)
    if fmt == "text":
        from .readers.text import read_text

        return read_text(path)
    from .readers.pdf import read_pdf

    return read_pdf(path)


def _merge_heading_only(chapters: list[tuple[Chapter, bool]]) -> list[tuple[Chapter, bool]]:
    """A read chapter that is only headings ("Part Two" on its own page) opens the next read chapter."""
    out: list[tuple[Chapter, bool]] = []
    carry: list[Chapter] = []
    for chapter, read in chapters:
        if read and all(b.kind == "heading" for b in chapter.blocks):
            carry.append(chapter)
            continue
        if read and carry:
            # The opening's headings (the book's title) are read first but do not name the chapter.
            prefix = ": ".join(
                c.title for c in carry if c.title and c.title != chapter.title and "opening" not in c.hints
            )
            chapter.blocks = [b for c in carry for b in c.blocks] + chapter.blocks
            chapter.title = f"{prefix}: {chapter.title}" if prefix else chapter.title
            carry = []
        out.append((chapter, read))
    if carry and out:
        for c in carry:
            out[-1][0].blocks.extend(c.blocks)
    return out


def _notes_for(chapter: Chapter, ms: Manuscript) -> list[Block]:
    keys = list(dict.fromkeys(k for b in chapter.blocks for k in b.noterefs))
    blocks = []
    for key in keys:
        note = ms.notes.get(key)
        if note and note.text:
            label = f"Note {note.label}." if note.label else "Note."
            blocks.append(Block("note", f"{label} {note.text}", note.source))
    return blocks


def _read_previous(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    if not path.is_file():
        return [], []
    with path.open("rb") as fh:
        bom = fh.read(2)
    encoding = "utf-16" if bom in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"
    try:
        with path.open(newline="", encoding=encoding) as fh:
            reader = csv.reader(fh)
            header = [h.strip().lower() for h in next(reader, [])]
            rows = [dict(zip(header, cells)) for cells in reader if any(c.strip() for c in cells)]
    except (UnicodeError, csv.Error, OSError):
        return [], []
    if "id" not in header or "text" not in header:
        return [], []
    return header, rows


def import_manuscript(source: Path, out_dir: Path, options: ImportOptions | None = None) -> ImportResult:
    """Import ``source`` into ``out_dir`` (see the module docstring); raises ``IngestError`` on bad input."""
    options = options or ImportOptions()
    source, out_dir = Path(source), Path(out_dir)
    check_source(source)
    fmt = detect_format(source, options.format)
    check_size(source, fmt)
    ms = _read(source, fmt, options)
    name = safe_name(options.name or source.stem)
    title = ms.title or source.stem.replace("_", " ").replace("-", " ").strip().title() or name

    judged: list[tuple[Chapter, bool]] = []
    # Note texts read at their chapter's end are not "skipped".
    skipped = [s for s in ms.skipped if options.notes == "skip" or s.what not in ("note", "footnotes")]
    for chapter in build_chapters(ms.stream, title, options.toc_depth):
        texts = [b.text for b in chapter.blocks if b.kind != "heading"]
        if chapter.blocks and not texts:
            judged.append((chapter, True))  # headings alone: they open the next chapter (see _merge_heading_only)
            continue
        headings = [b.text for b in chapter.blocks if b.kind == "heading"]
        verdict = classify(
            chapter.title,
            texts,
            chapter.hints,
            book_title=title,
            keep=options.keep,
            headings=headings,
            author=ms.author,
        )
        if not verdict.read:
            words = sum(word_count(b.text) for b in chapter.blocks)
            skipped.append(Skipped(chapter.title or "(untitled)", verdict.reason(), chapter.source, words))
        elif not chapter.blocks:
            continue
        judged.append((chapter, verdict.read))
    judged = _merge_heading_only(judged)
    chapters = [c for c, read in judged if read and c.blocks]
    if not chapters:
        raise IngestError(
            f"{source.name}: no text to read was found"
            + (f" ({len(skipped)} section(s) skipped as front/back matter; --keep all reads them)" if skipped else "")
        )

    drafts: list[tuple[int, RowText]] = []
    for number, chapter in enumerate(chapters, 1):
        notes = _notes_for(chapter, ms) if options.notes == "end" else []
        for draft in chapter_rows(chapter, options.unit, options.max_chars, options.headings, notes):
            drafts.append((number, draft))
    if not drafts:
        raise IngestError(f"{source.name}: no text to read was found")
    check_rows(len(drafts), source.name)

    manifest_path = out_dir / f"{name}.csv"
    prev_header, prev_rows = _read_previous(manifest_path)
    imported_prev = [r for r in prev_rows if (r.get("source") or "").strip()]
    ids, kept = assign_ids(
        [(n, r.text) for n, r in drafts], [(r.get("id", "").strip(), r.get("text", "")) for r in imported_prev]
    )
    extra_columns = [c for c in prev_header if c and c not in COLUMNS]
    prev_by_id = {r.get("id", "").strip(): r for r in imported_prev}

    rows: list[dict[str, Any]] = []
    last_chapter = None
    for row_id, (number, draft) in zip(ids, drafts):
        chapter_title = chapters[number - 1].title
        row: dict[str, Any] = {
            "id": row_id,
            "chapter": chapter_title if number != last_chapter else None,
            "text": draft.text,
            "pause_after": draft.pause_after,
            "source": draft.source,
        }
        last_chapter = number
        previous = prev_by_id.get(row_id)
        if previous and normalise(previous.get("text", "")) == normalise(draft.text):
            for column in extra_columns:
                if previous.get(column, "").strip():
                    row[column] = previous[column]
        rows.append(row)
    remarks = list(ms.remarks)
    rows = _keep_hand_rows(rows, prev_rows, extra_columns, remarks)
    check_rows(len(rows), source.name)
    gone = len({r.get("id", "").strip() for r in imported_prev} - set(ids))

    # The report.
    report = ImportReport(
        source.name,
        ms.format,
        name,
        title,
        ms.author,
        ms.language,
        skipped=skipped,
        remarks=remarks,
        rows=len(rows),
        ids_kept=kept,
        ids_new=len(ids) - kept,
        ids_gone=gone,
        encoding=ms.encoding,
    )
    by_chapter: dict[int, list[RowText]] = {}
    for number, draft in drafts:
        by_chapter.setdefault(number, []).append(draft)
    speech = {id(d): predicted_seconds(d.text) for _, d in drafts}
    for number, chapter in enumerate(chapters, 1):
        mine = by_chapter.get(number, [])
        report.chapters.append(
            ChapterSummary(
                number,
                chapter.title,
                len(mine),
                sum(word_count(d.text) for d in mine),
                sum(len(d.text) for d in mine),
                round(sum(speech[id(d)] + d.pause_after for d in mine), 1),
                chapter.source,
            )
        )
    _coverage(report, ms, chapters, judged, [d for _, d in drafts], notes_read=options.notes == "end")
    speech_s = sum(speech.values())
    report.costs = [estimate(b, [d.text for _, d in drafts], speech_s) for b in options.backends]

    # Writing: cover, sidecar and manifest together (the manifest last), or nothing.
    outputs: list[tuple[Path, bytes]] = []
    cover_path = None
    if ms.cover:
        data, ext = ms.cover
        cover_path = out_dir / f"{name}-cover{ext}"
        outputs.append((cover_path, data))
    sidecar_path = out_dir / f"{name}.toml"
    generated = {
        "title": title,
        "author": ms.author,
        "language": ms.language,
        "cover": cover_path.name if cover_path else None,
        "pause_after": PAUSE_PARAGRAPH,
        "chapter_pause": PAUSE_CHAPTER,
    }
    source_table = {
        "file": source.name,
        "format": ms.format,
        "sha256": file_digest(source),
        "unit": options.unit,
        "max_chars": options.max_chars,
        "importer": IMPORTER_VERSION,
    }
    outputs.append((sidecar_path, render_sidecar(sidecar_path, manifest_path.name, generated, source_table)))
    columns = COLUMNS + extra_columns
    outputs.append((manifest_path, csv_bytes(columns, rows)))
    _write_together(out_dir, outputs)
    report.outputs = {"manifest": str(manifest_path), "sidecar": str(sidecar_path)}
    if cover_path:
        report.outputs["cover"] = str(cover_path)
    return ImportResult(manifest_path, sidecar_path, cover_path, columns, rows, report)


def _write_together(out_dir: Path, outputs: list[tuple[Path, bytes]]) -> None:
    """Every output or none (see the module docstring); a failure names the output, not the source."""
    made = not out_dir.exists()
    names = {str(dest): dest for dest, _ in outputs}
    current = out_dir
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with atomic_paths([dest for dest, _ in outputs]) as temps:
            for tmp, (dest, data) in zip(temps, outputs):
                current = dest
                tmp.write_bytes(data)
    except OSError as exc:
        if made:
            try:
                out_dir.rmdir()  # only if empty: what it holds is someone's
            except OSError:
                pass
        # A temp file's name means nothing to the producer: name the output it stood for.
        where = next((names[f] for f in (exc.filename, exc.filename2) if f in names), current)
        raise IngestError(f"cannot write {where}: {exc.strerror or exc}; the import was not written") from None


def _keep_hand_rows(
    rows: list[dict[str, Any]], previous: list[dict[str, str]], extra: list[str], remarks: list[str]
) -> list[dict[str, Any]]:
    """Rows a producer added by hand (no ``source``) stay, after the row they followed."""
    after: dict[str | None, list[dict[str, Any]]] = {}
    anchor = None
    count = 0
    used = {r["id"] for r in rows}
    for prev in previous:
        if (prev.get("source") or "").strip():
            anchor = prev.get("id", "").strip()
            continue
        if not prev.get("id", "").strip() or prev["id"].strip() in used:
            continue
        hand = {c: (prev.get(c) or None) for c in COLUMNS + extra}
        hand["id"] = prev["id"].strip()
        after.setdefault(anchor, []).append(hand)
        count += 1
    if not count:
        return rows
    out = list(after.pop(None, []))
    for row in rows:
        out.append(row)
        out.extend(after.pop(row["id"], []))
    orphans = [r for group in after.values() for r in group]
    out.extend(orphans)
    remarks.append(
        f"kept {count} hand-added row(s) from the previous import"
        + (f"; {len(orphans)} moved to the end (the row they followed is gone)" if orphans else "")
    )
    return out


def _coverage(
    report: ImportReport,
    ms: Manuscript,
    chapters: list[Chapter],
    judged: list[tuple[Chapter, bool]],
    drafts: list[RowText],
    notes_read: bool,
) -> None:
    parts = {part_of(b.source) for c in chapters for b in c.blocks}
    raw = word_bag(ms.raw_parts.get(p, "") for p in sorted(parts))
    if not notes_read:  # notes are not body text; read at chapter ends, they count like any row
        raw.subtract(word_bag(n.text for n in ms.notes.values() if part_of(n.source) in parts))
    for chapter, read in judged:
        if not read:
            matter = word_bag(b.text for b in chapter.blocks if part_of(b.source) in parts)
            raw.subtract(matter)
    raw = +raw  # drop counts at or below zero
    got = word_bag(d.text for d in drafts)
    report.body_words = sum(raw.values())
    report.body_words_in_manifest = sum(min(n, got[w]) for w, n in raw.items())


__all__ = ["ImportResult", "detect_format", "import_manuscript", "safe_name"]
