"""Markdown -> Manuscript, with markdown-it-py (CommonMark, tables, footnotes).

Chapters start at ``#`` and ``##`` headings (one ``#`` above several ``##``
is the book's title). A YAML-style front matter block (``title:``,
``author:``, ``lang:`` lines between ``---`` lines) gives the metadata.
Footnote references (``[^1]``) are dropped and their texts kept as notes;
code blocks and raw HTML are skipped (listed); images give alt text only with
``--alt-text``. Anchors are ``L<line>``: the line where the block starts.
Decoded as plain text is (``sources.read_text_source``).
"""

from __future__ import annotations

import re
from pathlib import Path

import lxml.html

from ..clean import clean_text, strip_note_markers, word_count
from ..model import INSTALL_HINT, Block, IngestError, Manuscript, Mark, Note, Skipped
from ..sources import encoding_remark, read_text_source
from . import heading_marks

_FRONT = re.compile(r"\A---\s*\n(.*?)\n(---|\.\.\.)\s*\n", re.S)


def read_markdown(path: Path, *, alt_text: bool, tables: str) -> Manuscript:
    text, encoding = read_text_source(path, "markdown")
    ms = Manuscript("markdown", [], encoding=encoding)
    if remark := encoding_remark(path.name, encoding):
        ms.remarks.append(remark)
    offset = 0
    front = _FRONT.match(text)
    if front:
        for line in front.group(1).splitlines():
            key, _, value = line.partition(":")
            value = value.strip().strip("\"'")
            if key.strip().lower() == "title":
                ms.title = value or None
            elif key.strip().lower() in ("author", "creator"):
                ms.author = value or None
            elif key.strip().lower() in ("lang", "language"):
                ms.language = value or None
        offset = text[: front.end()].count("\n")
        text = "\n" * offset + text[front.end() :]
    try:
        from markdown_it import MarkdownIt
        from mdit_py_plugins.footnote import footnote_plugin
    except ImportError:
        raise IngestError(f"reading Markdown needs the ingest extra: {INSTALL_HINT}") from None
    md = MarkdownIt("commonmark").use(footnote_plugin).enable("table")
    try:
        tokens = md.parse(text)
    except Exception as exc:  # noqa: BLE001 - the parser's own errors are not part of its API
        raise IngestError(f"{path.name}: cannot parse the Markdown ({exc})") from None
    stream: list[Block | Mark] = []
    in_footnote: str | None = None
    note_parts: list[str] = []
    row_cells: list[str] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        line = f"L{tok.map[0] + 1}" if tok.map else ""
        if tok.type == "footnote_open":
            in_footnote, note_parts = str(tok.meta.get("label", tok.meta.get("id"))), []
        elif tok.type == "footnote_close" and in_footnote is not None:
            body = clean_text(" ".join(note_parts))
            ms.notes[f"fn:{in_footnote}"] = Note(f"fn:{in_footnote}", in_footnote, body, "")
            ms.skipped.append(
                Skipped(
                    "note",
                    "note text (read at the chapter's end with --notes end)",
                    f"[^{in_footnote}]",
                    word_count(body),
                )
            )
            in_footnote = None
        elif tok.type == "heading_open":
            inline = tokens[i + 1]
            content, refs, _ = _inline(inline, alt_text)
            if content:
                stream.append(Block("heading", content, line, int(tok.tag[1]), noterefs=refs))
            i += 2
        elif tok.type == "inline" and in_footnote is not None:
            note_parts.append(_inline(tok, False)[0])
        elif tok.type == "inline" and tokens[i - 1].type == "paragraph_open":
            content, refs, alts = _inline(tok, alt_text)
            src = f"L{where[0] + 1}" if (where := tokens[i - 1].map) else line
            if content:
                stream.append(Block("para", content, src, noterefs=refs))
            stream.extend(Block("alt", a, src) for a in alts)
        elif tok.type == "hr" and stream and isinstance(stream[-1], Block):
            stream[-1].break_after = True
        elif tok.type in ("fence", "code_block"):
            ms.skipped.append(Skipped("code block", "code is not read", line, word_count(tok.content)))
        elif tok.type == "html_block":
            inner = clean_text(lxml.html.fromstring(tok.content).text_content()) if tok.content.strip(" \n<!-") else ""
            if inner and not tok.content.lstrip().startswith("<!--"):
                stream.append(Block("para", inner, line))
        elif tok.type == "table_open":
            if tables != "read":
                close = next(j for j in range(i, len(tokens)) if tokens[j].type == "table_close")
                words = sum(word_count(t.content) for t in tokens[i:close] if t.type == "inline")
                ms.skipped.append(Skipped("table", "tables are skipped (--tables read reads them)", line, words))
                i = close
        elif tok.type == "tr_open":
            row_cells, row_line = [], line
        elif tok.type == "inline" and tokens[i - 1].type in ("th_open", "td_open"):
            cell = _inline(tok, False)[0]
            if cell:
                row_cells.append(cell)
        elif tok.type == "tr_close" and row_cells:
            joined = ", ".join(row_cells)
            stream.append(Block("table", joined if joined[-1] in ".!?" else joined + ".", row_line))
        i += 1
    ms.stream = heading_marks(stream)
    ms.raw_parts["all"] = clean_text(" ".join(t.content for t in tokens if t.type == "inline"))
    if not ms.stream:
        raise IngestError(f"{path.name} holds no text to read")
    return ms


def _inline(token, alt_text: bool) -> tuple[str, list[str], list[str]]:
    parts: list[str] = []
    refs: list[str] = []
    alts: list[str] = []
    for child in token.children or []:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
        elif child.type == "footnote_ref":
            refs.append(f"fn:{child.meta.get('label', child.meta.get('id'))}")
        elif child.type == "image" and alt_text:
            alt = clean_text("".join(c.content for c in child.children or []) or child.content)
            if alt:
                alts.append(alt)
    return clean_text(strip_note_markers("".join(parts))), refs, alts
