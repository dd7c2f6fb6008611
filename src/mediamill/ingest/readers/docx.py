"""Word (.docx) -> Manuscript, with python-docx.

Body paragraphs and tables in document order. ``Heading 1``/``Heading 2``
(or any style or paragraph with outline level 0/1) start chapters; deeper
headings are read as headings. The first ``Title`` paragraph is the book's
title (``Subtitle`` paragraphs are left out); else the document properties'
title. Author and language come from the document properties. Footnote
references are dropped and the footnotes' texts kept as notes (word/
footnotes.xml); a run of superscript digits typed by hand is dropped as a
marker. ``TOC`` styled paragraphs (a generated contents list) are skipped.
Anchors: ``p<N>`` is the N-th body paragraph (1-based, empty ones counted),
``t<N>.r<M>`` row M of the N-th table. The ZIP is checked for bombs
(``archive.check_archive``) before python-docx, which inflates parts whole,
reads it.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

from lxml import etree

from ...epub.archive import check_archive
from ..clean import clean_text, is_scene_break, strip_note_markers, word_count
from ..model import INSTALL_HINT, Block, IngestError, Manuscript, Mark, Note, Skipped
from . import heading_marks

W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
NS = {"w": W, "wp": "http://schemas.openxmlformats.org/drawingml/2006/wordprocessingDrawing"}
_HEADING = re.compile(r"^heading\s*(\d)$", re.I)
_SUPER_MARK = re.compile(r"^[\d*\u2020\u2021]{1,4}$")


def _outline_level(paragraph) -> int | None:
    """The heading level (1 = top) from the style name, or an outline level on the paragraph or its styles."""
    style = paragraph.style
    name = style.name if style is not None else ""
    match = _HEADING.match(name or "")
    if match:
        return int(match.group(1))
    levels = paragraph._p.xpath("./w:pPr/w:outlineLvl/@w:val")
    node = style
    while not levels and node is not None:
        levels = node.element.xpath("./w:pPr/w:outlineLvl/@w:val")
        node = node.base_style
    if levels and levels[0].isdigit() and int(levels[0]) < 9:
        return int(levels[0]) + 1
    return None


def _footnotes(document) -> dict[str, str]:
    out = {}
    for rel in document.part.rels.values():
        if rel.reltype.endswith("/footnotes") and not rel.is_external:
            root = etree.fromstring(rel.target_part.blob)
            for note in root.findall("w:footnote", NS):
                ident = note.get(f"{{{W}}}id")
                if note.get(f"{{{W}}}type") in ("separator", "continuationSeparator", "continuationNotice"):
                    continue
                text = clean_text("".join(note.itertext()))
                if ident and text:
                    out[ident] = text
    return out


def _paragraph_text(paragraph, alt_text: bool) -> tuple[str, list[str], list[str]]:
    parts: list[str] = []
    refs: list[str] = []
    for run in paragraph._p.xpath("./w:r | ./w:hyperlink/w:r | ./w:ins/w:r | ./w:smartTag/w:r"):
        refs += [f"fn:{i}" for i in run.xpath("./w:footnoteReference/@w:id")]
        text = "".join(
            t.text or ""
            if t.tag == f"{{{W}}}t"
            else (" " if t.tag in (f"{{{W}}}tab", f"{{{W}}}br", f"{{{W}}}cr") else "")
            for t in run.iterchildren()
        )
        superscript = run.xpath("./w:rPr/w:vertAlign/@w:val") == ["superscript"]
        if superscript and _SUPER_MARK.match(text.strip()):
            continue
        parts.append(text)
    alts = [clean_text(a) for a in paragraph._p.xpath(".//wp:docPr/@descr") if clean_text(a)] if alt_text else []
    return clean_text(strip_note_markers("".join(parts))), refs, alts


def read_docx(path: Path, *, alt_text: bool, tables: str) -> Manuscript:
    try:
        import docx
        from docx.table import Table
        from docx.text.paragraph import Paragraph
    except ImportError:
        raise IngestError(f"reading Word documents needs the ingest extra: {INSTALL_HINT}") from None
    try:
        with zipfile.ZipFile(path) as archive:
            check_archive(archive, path.name)
        document = docx.Document(str(path))
    except (zipfile.BadZipFile, KeyError, ValueError, etree.XMLSyntaxError) as exc:
        raise IngestError(f"{path.name} is not a readable Word document ({exc})") from None
    props = document.core_properties
    ms = Manuscript("docx", [], author=props.author or None, language=props.language or None)
    notes = _footnotes(document)
    stream: list[Block | Mark] = []
    raw: list[str] = []
    contents_words = 0
    p_index = t_index = 0
    for item in document.iter_inner_content():
        if isinstance(item, Paragraph):
            p_index += 1
            style = (item.style.name if item.style is not None else "") or ""
            text, refs, alts = _paragraph_text(item, alt_text)
            if not text and not alts:
                continue
            raw.append(text)
            source = f"p{p_index}"
            if style.lower().startswith("toc"):
                contents_words += word_count(text)
                continue
            if style.lower() == "title":
                if ms.title is None:
                    ms.title = text
                    ms.skipped.append(Skipped(text, "the book's title (Title style)", source, word_count(text)))
                    continue
            if style.lower() == "subtitle":
                ms.skipped.append(Skipped(text, "subtitle (Subtitle style)", source, word_count(text)))
                continue
            level = _outline_level(item)
            if text and level:
                stream.append(Block("heading", text, source, level, noterefs=refs))
            elif text and is_scene_break(text):
                if stream and isinstance(stream[-1], Block):
                    stream[-1].break_after = True
            elif text:
                stream.append(Block("para", text, source, noterefs=refs))
            stream.extend(Block("alt", a, source) for a in alts)
        elif isinstance(item, Table):
            t_index += 1
            rows = []
            for r_index, row in enumerate(item.rows, 1):
                cells = list(dict.fromkeys(clean_text(c.text) for c in row.cells if clean_text(c.text)))
                if cells:
                    rows.append((f"t{t_index}.r{r_index}", ", ".join(cells)))
            raw += [t for _, t in rows]
            if tables == "read":
                stream += [Block("table", t if t[-1] in ".!?" else t + ".", s) for s, t in rows]
            elif rows:
                ms.skipped.append(
                    Skipped(
                        "table",
                        "tables are skipped (--tables read reads them)",
                        f"t{t_index}",
                        sum(word_count(t) for _, t in rows),
                    )
                )
    if contents_words:
        ms.skipped.append(Skipped("Contents", "toc (TOC style)", "", contents_words))
    if not ms.title and props.title:
        ms.title = props.title
    for key, text in notes.items():
        ms.notes[f"fn:{key}"] = Note(f"fn:{key}", "", text, f"footnote {key}")
    referenced = {k for b in stream if isinstance(b, Block) for k in b.noterefs}
    if referenced:
        ms.skipped.append(
            Skipped(
                "footnotes",
                "note texts (read at the chapter's end with --notes end)",
                "",
                sum(word_count(ms.notes[k].text) for k in referenced if k in ms.notes),
            )
        )
    _number_notes(stream, ms)
    ms.stream = heading_marks(stream)
    ms.raw_parts["all"] = clean_text(" ".join(raw))
    if not ms.stream:
        raise IngestError(f"{path.name} holds no text to read")
    return ms


def _number_notes(stream: list[Block | Mark], ms: Manuscript) -> None:
    """Word numbers footnotes in order of reference; the notes read as "Note 1." and so on."""
    n = 0
    for block in stream:
        if isinstance(block, Block):
            for key in block.noterefs:
                note = ms.notes.get(key)
                if note is not None and not note.label:
                    n += 1
                    note.label = str(n)
