"""PDF with a text layer -> Manuscript, with pdfminer.six (layout) and pypdf (metadata, encryption).

Page furniture is dropped: a line in the top or bottom 12% of a page that is
a bare page number ("12", "- 12 -", "Page 12 of 80", "xii"), or whose text
(digits masked) recurs in that band on another page (running heads, book and
chapter titles, footers). Superscript digits and note symbols (smaller than
three quarters of the line's type and raised) are note markers and dropped;
lines in small type at a page's foot that start with a number or symbol are
footnotes (kept as skipped notes). Paragraphs are rebuilt from geometry: a new
paragraph starts after a vertical gap of more than 1.5 line spacings, at a
first-line indent, or after a short line ending a sentence; a paragraph
carries across a page break otherwise. Lines set at least 15% larger than the
body type, or that read as chapter lines ("CHAPTER XII"), are headings (the
largest size is level 1). Hyphenation at line ends is repaired
(``hyphen.py``). One column is assumed. A PDF without a text layer (a scan)
is refused: run OCR first. Anchors are ``pg<page>.p<n>``: the n-th paragraph
starting on that page.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from ..clean import clean_text, is_scene_break, strip_note_markers, word_count
from ..headings import chapter_line, title_case
from ..hyphen import Vocabulary, join_lines
from ..model import INSTALL_HINT, Block, IngestError, Manuscript, Mark, Skipped

_PAGE_NUMBER = re.compile(
    r"^(?:page\s+)?(?:\d{1,5}|[ivxlcdm]{1,8})(?:\s*(?:of|/)\s*\d{1,5})?$|^[-\u2013\u2014]\s*\d{1,5}\s*[-\u2013\u2014]$",
    re.I,
)
_NOTE_START = re.compile(r"^[\d*\u2020\u2021\u00a7]{1,3}[.)]?\s")
_MARKS = set("0123456789*\u2020\u2021\u00a7")
BAND = 0.12


@dataclass
class _Line:
    page: int
    x0: float
    x1: float
    y0: float
    y1: float
    size: float
    text: str
    page_h: float

    @property
    def in_band(self) -> bool:
        return self.y1 > self.page_h * (1 - BAND) or self.y0 < self.page_h * BAND


def _lines(path: Path) -> tuple[list[_Line], int, bool]:
    try:
        from pdfminer.high_level import extract_pages
        from pdfminer.layout import LAParams, LTChar, LTFigure, LTImage, LTTextLineHorizontal
    except ImportError:
        raise IngestError(f"reading PDF needs the ingest extra: {INSTALL_HINT}") from None

    lines: list[_Line] = []
    pages = 0
    images = False

    def visit(obj, page_no: int, page_h: float) -> None:
        nonlocal images
        if isinstance(obj, (LTImage, LTFigure)):
            images = True
        if isinstance(obj, LTTextLineHorizontal):
            chars = [c for c in obj if isinstance(c, LTChar)]
            if not chars:
                return
            size = statistics.median(c.size for c in chars)
            base = statistics.median(c.y0 for c in chars)
            out = []
            for c in obj:
                text = c.get_text()
                if isinstance(c, LTChar) and text in _MARKS and c.size < 0.75 * size and c.y0 > base + 0.15 * size:
                    continue  # a raised, smaller mark: a note reference
                out.append(text)
            text = "".join(out).strip("\n")
            if text.strip():
                lines.append(_Line(page_no, obj.x0, obj.x1, obj.y0, obj.y1, round(size * 2) / 2, text, page_h))
            return
        if hasattr(obj, "__iter__"):
            for child in obj:
                visit(child, page_no, page_h)

    try:
        for page_no, page in enumerate(extract_pages(str(path), laparams=LAParams()), 1):
            pages = page_no
            visit(page, page_no, page.height)
    except Exception as exc:  # noqa: BLE001 - pdfminer raises many unrelated types for damaged files
        raise IngestError(f"{path.name} is not a readable PDF ({type(exc).__name__}: {exc})") from None
    return lines, pages, images


def _metadata(path: Path) -> tuple[str | None, str | None]:
    try:
        from pypdf import PdfReader
        from pypdf.errors import PdfReadError
    except ImportError:
        raise IngestError(f"reading PDF needs the ingest extra: {INSTALL_HINT}") from None

    try:
        reader = PdfReader(str(path))
        if reader.is_encrypted and not reader.decrypt(""):
            raise IngestError(f"{path.name} is password-protected; import an unprotected copy")
        meta = reader.metadata
    except PdfReadError as exc:
        raise IngestError(f"{path.name} is not a readable PDF ({exc})") from None
    if meta is None:
        return None, None
    return (meta.title or None), (meta.author or None)


def _furniture(lines: list[_Line], pages: int) -> set[int]:
    """Indexes of running heads/feet and page numbers."""

    def key(line: _Line) -> str:
        return re.sub(r"\d+", "#", " ".join(line.text.split()).casefold())

    seen: dict[str, set[int]] = defaultdict(set)
    for line in lines:
        if line.in_band:
            seen[key(line)].add(line.page)
    sizes: Counter[float] = Counter()
    for line in lines:
        sizes[line.size] += len(line.text)
    body_size = sizes.most_common(1)[0][0] if sizes else 0
    drop = set()
    for i, line in enumerate(lines):
        if not line.in_band:
            continue
        pages_with = len(seen[key(line)])
        # Headings in display type recur at the top of chapter pages ("Chapter #"): not furniture,
        # unless they are on most pages.
        display = line.size >= body_size * 1.15 and pages_with < 0.6 * pages
        if _PAGE_NUMBER.match(line.text.strip()) or (pages > 1 and pages_with >= 2 and not display):
            drop.add(i)
    return drop


def read_pdf(path: Path) -> Manuscript:
    title, author = _metadata(path)
    lines, pages, images = _lines(path)
    chars = sum(len(ln.text.strip()) for ln in lines)
    if pages and chars < 20 * max(1, pages // 10):
        what = "only images (a scan?)" if images else "no text"
        raise IngestError(
            f"{path.name} has no text layer: its {pages} page(s) hold {what}. Run OCR first "
            "(for example `ocrmypdf in.pdf out.pdf`) and import the result."
        )
    ms = Manuscript("pdf", [], title=title, author=author)
    drop = _furniture(lines, pages)
    if drop:
        ms.skipped.append(
            Skipped(
                "running heads, feet and page numbers",
                "page furniture",
                "",
                sum(word_count(lines[i].text) for i in drop),
            )
        )
    body = [ln for i, ln in enumerate(lines) if i not in drop]
    if not body:
        raise IngestError(f"{path.name} holds no text to read")
    sizes: Counter[float] = Counter()
    for ln in body:
        sizes[ln.size] += len(ln.text)
    body_size = sizes.most_common(1)[0][0]
    heading_sizes = sorted({ln.size for ln in body if ln.size >= body_size * 1.15}, reverse=True)
    normal = [ln for ln in body if abs(ln.size - body_size) < 0.6]
    left = statistics.quantiles([ln.x0 for ln in normal], n=10)[0] if len(normal) > 10 else min(ln.x0 for ln in normal)
    right = (
        statistics.quantiles([ln.x1 for ln in normal], n=10)[-1] if len(normal) > 10 else max(ln.x1 for ln in normal)
    )
    gaps = [a.y0 - b.y0 for a, b in zip(normal, normal[1:]) if a.page == b.page and 0 < a.y0 - b.y0 < 3 * body_size]
    spacing = statistics.median(gaps) if gaps else body_size * 1.2
    vocab = Vocabulary(ln.text for ln in body)

    groups: list[tuple[str, str, list[_Line]]] = []  # (kind, source, lines)
    per_page: Counter[int] = Counter()
    notes_words = 0
    prev: _Line | None = None
    for line in body:
        text = line.text.strip()
        small_foot = line.size < body_size * 0.85 and line.y0 < line.page_h * 0.3
        if small_foot and (
            _NOTE_START.match(text) or (groups and groups[-1][0] == "note" and prev and prev.page == line.page)
        ):
            notes_words += word_count(text)
            if _NOTE_START.match(text) or not groups or groups[-1][0] != "note":
                groups.append(("note", "", [line]))
            else:
                groups[-1][2].append(line)
            prev = line
            continue
        is_heading = (line.size in heading_sizes and len(text) <= 100) or (
            chapter_line(text) is not None
            and len(text) <= 60
            and abs(line.size - body_size) < 0.6
            and (prev is None or prev.page != line.page or prev.y0 - line.y0 > 1.5 * spacing)
        )
        kind = "heading" if is_heading else "para"
        new = True
        if groups and prev is not None and groups[-1][0] == kind:
            if kind == "heading":
                new = not (prev.page == line.page and prev.size == line.size and prev.y0 - line.y0 < 2 * line.size)
            else:
                new = _starts_paragraph(prev, line, left, right, spacing, body_size)
        if new:
            per_page[line.page] += 1
            groups.append((kind, f"pg{line.page}.p{per_page[line.page]}", [line]))
        else:
            groups[-1][2].append(line)
        prev = line
    if notes_words:
        ms.skipped.append(Skipped("footnotes", "note text at the foot of the page", "", notes_words))

    stream: list[Block | Mark] = []
    for kind, source, glines in groups:
        if kind == "note":
            continue
        joined = join_lines([ln.text for ln in glines], vocab)
        ms.raw_parts[source.split(".")[0]] = (ms.raw_parts.get(source.split(".")[0], "") + " " + joined).strip()
        text = clean_text(strip_note_markers(joined))
        if not text:
            continue
        if kind == "heading":
            size = glines[0].size
            level = heading_sizes.index(size) + 1 if size in heading_sizes else len(heading_sizes) + 1
            title = title_case(text)
            stream += [Mark(level, title, source), Block("heading", title, source, level)]
        elif is_scene_break(text):
            if stream and isinstance(stream[-1], Block):
                stream[-1].break_after = True
        else:
            stream.append(Block("para", text, source))
    ms.stream = stream
    return ms


def _starts_paragraph(prev: _Line, line: _Line, left: float, right: float, spacing: float, size: float) -> bool:
    leading = len(line.text) - len(line.text.lstrip(" \u00a0"))  # some writers indent with spaces
    indent = line.x0 > left + 0.8 * size or leading >= 2
    short_end = prev.x1 < right - 2 * size and prev.text.rstrip()[-1:] in ".!?:\"'\u201d\u2019"
    if prev.page != line.page:
        return indent or short_end
    return prev.y0 - line.y0 > 1.5 * spacing or indent or short_end
