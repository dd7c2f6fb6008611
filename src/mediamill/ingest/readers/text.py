"""Plain text -> Manuscript.

Decoding: ``sources.read_text_source`` (UTF-16 with a BOM, UTF-8, else
Windows-1252, named in the report; binary data is refused). Paragraphs are separated
by blank lines; a file without blank lines but with indented first lines is
split at the indents; one whose lines are all long (> 150 characters: one
paragraph per line) is split at every line. Lines inside a paragraph are
joined, repairing line-end hyphenation (``hyphen.py``). A paragraph that is a
single chapter line (``headings.py``) is a heading and a mark; a short
title-like paragraph right after it is the chapter's subtitle ("Chapter XII:
The Storm"). The first paragraph, when short and followed by "by <name>",
gives the title and author; Project Gutenberg header/licence text and its
"Title:"/"Author:"/"Language:" lines are used and skipped, as are the
producers' credits right after its start marker ("Produced by ...",
``gutenberg.is_credit``). Anchors are ``L<line>``.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..clean import clean_text, is_scene_break, strip_note_markers, word_count
from ..gutenberg import CREDIT_WORDS, END, START, header_fields, is_credit
from ..headings import chapter_line, is_numeral_line, looks_like_subtitle, title_case
from ..hyphen import Vocabulary, join_lines
from ..model import Block, IngestError, Manuscript, Mark, Skipped
from ..sources import encoding_remark, read_text_source

_PG_START = re.compile(r"^" + START.pattern, re.I | re.M)
_PG_END = re.compile(r"^" + END.pattern, re.I | re.M)
_BY = re.compile(r"^by\s+(.{2,80})$", re.I)


def _paragraphs(lines: list[str]) -> list[tuple[int, list[str]]]:
    """(first line number, lines) per paragraph."""
    blank = sum(1 for ln in lines if not ln.strip())
    nonblank = [ln for ln in lines if ln.strip()]
    if nonblank and blank < len(nonblank) / 20:
        if all(len(ln) > 150 or chapter_line(ln) for ln in nonblank[:50]):
            return [(i + 1, [ln]) for i, ln in enumerate(lines) if ln.strip()]
        indented = sum(1 for ln in nonblank if re.match(r"^(\s{2,}|\t)\S", ln))
        if indented > len(nonblank) / 10:
            out: list[tuple[int, list[str]]] = []
            for i, ln in enumerate(lines):
                if not ln.strip():
                    continue
                if not out or re.match(r"^(\s{2,}|\t)\S", ln) or chapter_line(ln):
                    out.append((i + 1, [ln]))
                else:
                    out[-1][1].append(ln)
            return out
    out = []
    current: list[str] = []
    start = 0
    for i, line in enumerate(lines + [""]):
        if line.strip():
            if not current:
                start = i + 1
            current.append(line)
        elif current:
            out.append((start, current))
            current = []
    return out


def _credit(lines: list[str]) -> bool:
    text = " ".join(lines)
    return len(text.split()) <= CREDIT_WORDS and is_credit(text)


def read_text(path: Path) -> Manuscript:
    text, encoding = read_text_source(path, "text")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    ms = Manuscript("text", [], encoding=encoding)
    if remark := encoding_remark(path.name, encoding):
        ms.remarks.append(remark)
    start, end = _PG_START.search(text), _PG_END.search(text)
    first_line = 0
    if start:
        header = text[: start.start()]
        for key, value in header_fields(header).items():
            setattr(ms, key, value)
        ms.skipped.append(Skipped("Project Gutenberg header", "publisher's boilerplate", "L1", word_count(header)))
        first_line = text[: start.end()].count("\n") + 1
    if end:
        ms.skipped.append(
            Skipped(
                "Project Gutenberg licence",
                "publisher's boilerplate",
                f"L{text[: end.start()].count(chr(10)) + 1}",
                word_count(text[end.start() :]),
            )
        )
        text = text[: end.start()]
    lines = text.split("\n")
    for i in range(first_line):
        lines[i] = ""  # keep line numbers true to the file
    paras = _paragraphs(lines)
    if start:
        # Only the paragraphs right after the marker: the same words later on are the book's.
        while paras and _credit(paras[0][1]):
            line_no, plines = paras.pop(0)
            ms.skipped.append(
                Skipped(
                    "Project Gutenberg credits", "publisher's boilerplate", f"L{line_no}", word_count(" ".join(plines))
                )
            )
    if not paras:
        raise IngestError(f"{path.name} holds no text to read")
    vocab = Vocabulary(ln for _, p in paras for ln in p)
    numerals = sum(1 for _, p in paras if len(p) == 1 and is_numeral_line(p[0])) >= 3

    if not ms.title and len(paras) > 2 and len(paras[0][1]) <= 2 and not chapter_line(paras[0][1][0]):
        by = _BY.match(" ".join(paras[1][1]).strip())
        if by and len(" ".join(paras[0][1])) < 100:
            ms.title, ms.author = title_case(clean_text(" ".join(paras[0][1]))), clean_text(by.group(1))
            ms.skipped.append(
                Skipped(ms.title, "title page (content)", f"L{paras[0][0]}", word_count(ms.title + " " + by.group(0)))
            )
            paras = paras[2:]

    stream: list[Block | Mark] = []
    raw: list[str] = []
    pending_heading: Block | None = None
    for line_no, plines in paras:
        joined = clean_text(strip_note_markers(join_lines(plines, vocab)))
        raw.append(join_lines(plines, vocab))
        if not joined:
            continue
        source = f"L{line_no}"
        level = chapter_line(joined, numerals) if len(plines) <= 2 else None
        if level:
            title = title_case(joined)
            heading = Block("heading", title, source, level)
            stream += [Mark(level, title, source), heading]
            pending_heading = heading
            continue
        if pending_heading is not None and looks_like_subtitle(joined):
            subtitle = title_case(joined)
            pending_heading.text = f"{pending_heading.text}: {subtitle}"
            mark = stream[-2]
            if isinstance(mark, Mark):
                mark.title = pending_heading.text
            pending_heading = None
            continue
        pending_heading = None
        if is_scene_break(joined):
            if stream and isinstance(stream[-1], Block):
                stream[-1].break_after = True
            continue
        stream.append(Block("para", joined, source))
    ms.stream = stream
    ms.raw_parts["all"] = clean_text(" ".join(raw))
    return ms
