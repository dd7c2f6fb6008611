"""Walking an (X)HTML body into blocks: what is read, in order, and what is left out.

Block-level elements (p, h1-h6, li, blockquote, div, figcaption, pre, dt/dd,
table rows...) become blocks; inline content is joined into their text. Text
directly inside a container (a ``div`` holding text and paragraphs) becomes
blocks anchored to the container. Left out of the text:

- note markers: ``epub:type="noteref"`` (or ``role="doc-noteref"``), links
  whose text is a bare number or symbol inside or around ``<sup>``, links
  with a note-like class, bare ``<sup>1</sup>``; their targets are recorded;
- note bodies: ``footnote``/``endnote``/``rearnote`` elements, containers
  with a notes class, and any block that holds a note target (collected as
  notes, read at the chapter's end with ``--notes end``);
- page-break markers (their text is a page number), verse line numbers
  (class ``lnum``, ``line-number``...), ``script``, ``style``, ``rt``/``rp``
  (ruby annotations), hidden elements, embedded SVG, ``nav``;
- images, unless alt text is asked for; tables, unless asked for (each row
  is then one block, cells joined with commas).

``<hr/>`` and paragraphs such as "* * *" are scene breaks: the block before
them gets a longer pause instead of a row.

Chapter marks (``split_ids``) go before the block whose element carries the
id, except that an anchor after all of a block's text (a paragraph closing
one chapter with the next chapter's ``<a id>``) puts its marks after it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from lxml import etree

from ..epub.xhtml import epub_types, local, stepped
from .clean import clean_text, is_scene_break, strip_note_markers, word_count
from .model import Block, BlockKind, Mark, Note, Skipped

BLOCK = frozenset(
    "address article aside blockquote body caption center dd details dialog div dl dt fieldset figcaption "
    "figure footer form h1 h2 h3 h4 h5 h6 header hgroup hr li main nav ol p pre section summary table tbody "
    "td tfoot th thead tr ul legend".split()
)
SKIP = frozenset(
    "script style head template noscript rt rp svg audio video object iframe canvas button "
    "input select textarea map area".split()
)
NOTE_TYPES = frozenset({"footnote", "endnote", "rearnote", "note", "footnotes", "endnotes", "rearnotes"})
_NOTE_CLASS = re.compile(r"(?:^|[\s_-])(?:foot|end)?notes?(?:$|[\s_-])|fnote|footnote|endnote", re.I)
_REF_CLASS = re.compile(r"noteref|fnref|footnote-?ref|note-?ref|^fn\d*$|ftn", re.I)
_MARKER_TEXT = re.compile(r"^[\[(]?(?:\d{1,4}|[*\u2020\u2021\u00a7]+|[a-z]|[ivxlc]{1,6})[\])]?$", re.I)
_BACKLINK_TEXT = re.compile(r"^(?:\u21a9\ufe0e?|\u2191|\^|back|return)$", re.I)
_NOTE_LABEL = re.compile(r"^\s*[\[(]?(\d{1,4}|[*\u2020\u2021\u00a7]+|[a-z]|[ivxlc]{1,6})[\])]?[.:)]?\s+", re.I)


@dataclass
class WalkOptions:
    href: str  # the document's href, for anchors
    alt_text: bool = False
    tables: str = "skip"  # "read" or "skip"
    split_ids: dict[str, list[Mark]] = field(default_factory=dict)  # element id -> the marks that start there
    note_targets: frozenset[str] = frozenset()  # ids in this document that noterefs point to
    resolve_ref: Callable[[str], str | None] = lambda href: None  # a link's href -> note key


@dataclass
class WalkResult:
    stream: list[Block | Mark] = field(default_factory=list)
    notes: dict[str, Note] = field(default_factory=dict)
    skipped: list[Skipped] = field(default_factory=list)
    images_with_alt: int = 0
    ref_labels: dict[str, str] = field(default_factory=dict)  # note key -> the marker's text ("1", "*")


@dataclass
class _Run:
    """Inline content being gathered for one block."""

    parts: list[str] = field(default_factory=list)
    noterefs: list[str] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)
    marks_at: list[int] = field(default_factory=list)  # how many parts preceded each mark
    alts: list[Block] = field(default_factory=list)
    note_ids: list[str] = field(default_factory=list)

    def text(self) -> str:
        return clean_text(strip_note_markers("".join(self.parts)))

    def add_marks(self, marks: list[Mark]) -> None:
        self.marks += marks
        self.marks_at += [len(self.parts)] * len(marks)

    def trailing_marks(self) -> list[Mark]:
        """Marks that come after all of the block's text (an anchor closing the paragraph before a chapter)."""
        return [
            m
            for m, at in zip(self.marks, self.marks_at)
            if "".join(self.parts[:at]).strip() and not "".join(self.parts[at:]).strip()
        ]


_LINE_NUMBER = re.compile(r"(?:^|\s)(?:lnum|linenum|line-?num(?:ber)?|lineno)(?:\s|$)", re.I)


def _hidden(el: etree._Element) -> bool:
    """Not read: hidden elements, and verse line numbers (class "lnum", "line-number"...)."""
    style = (el.get("style") or "").replace(" ", "").lower()
    if el.get("hidden") is not None or el.get("aria-hidden") == "true" or "display:none" in style:
        return True
    return bool(el.get("class")) and bool(_LINE_NUMBER.search(el.get("class")))


def _has_block_descendant(el: etree._Element) -> bool:
    return any(local(d) in BLOCK for d in el.iterdescendants() if isinstance(d.tag, str))


def is_note_container(el: etree._Element) -> bool:
    if epub_types(el) & NOTE_TYPES:
        return True
    cls = el.get("class") or ""
    return local(el) in ("div", "section", "aside", "ol", "ul", "dl") and bool(_NOTE_CLASS.search(cls))


class Walker:
    """One document body -> blocks. Construct, call ``walk(body, steps)``, read ``result``."""

    def __init__(self, options: WalkOptions):
        self.o = options
        self.result = WalkResult()
        self._in_note = False
        self._note_label = ""

    # anchors -----------------------------------------------------------------------------------
    def anchor(self, el: etree._Element, steps: list[int]) -> str:
        ident = el.get("id")
        return f"{self.o.href}#{ident}" if ident else f"{self.o.href}#epubcfi({''.join(f'/{s}' for s in steps)})"

    # output ------------------------------------------------------------------------------------
    def _last_block(self) -> Block | None:
        for item in reversed(self.result.stream):
            if isinstance(item, Block):
                return item
            return None  # a mark in between: the break belongs to the chapter end anyway
        return None

    def _scene_break(self) -> None:
        last = self._last_block()
        if last is not None:
            last.break_after = True

    def _emit(self, run: _Run, el: etree._Element, steps: list[int], kind: BlockKind = "para", level: int = 0) -> None:
        trailing = run.trailing_marks()
        self.result.stream.extend(m for m in run.marks if not any(m is t for t in trailing))
        text = run.text()
        if run.note_ids:  # this block is (the body of) a note
            if text:
                self._add_note(run.note_ids, text, self.anchor(el, steps), self._note_label)
                self._note_label = ""
                self.result.skipped.append(
                    Skipped(
                        "note",
                        "note text (read at the chapter's end with --notes end)",
                        self.anchor(el, steps),
                        word_count(text),
                    )
                )
        elif text:
            if kind == "para" and is_scene_break(text):
                self._scene_break()
            else:
                self.result.stream.append(Block(kind, text, self.anchor(el, steps), level, noterefs=run.noterefs))
        self.result.stream.extend(run.alts)
        self.result.stream.extend(trailing)

    def _add_note(self, ids: list[str], text: str, source: str, label: str = "") -> None:
        label_match = _NOTE_LABEL.match(text)
        label = label or (label_match.group(1) if label_match else "")
        body = text[label_match.end() :] if label_match else text
        for ident in ids:
            key = f"{self.o.href}#{ident}"
            self.result.notes[key] = Note(key, label, body, source)

    # walking -----------------------------------------------------------------------------------
    def walk(self, el: etree._Element, steps: list[int]) -> None:
        """A block-level element (or the body): its inline runs and block children, in order."""
        tag = local(el)
        if el.get("id") in self.o.split_ids:
            self.result.stream.extend(self.o.split_ids[el.get("id")])
        if tag == "table":
            self._table(el, steps)
            return
        if tag in ("h1", "h2", "h3", "h4", "h5", "h6", "hgroup"):
            self._heading(el, steps)
            return
        if tag == "nav":
            text = clean_text("".join(el.itertext()))
            if text:
                self.result.skipped.append(
                    Skipped(
                        "navigation list", "a navigation list inside the text", self.anchor(el, steps), word_count(text)
                    )
                )
            return
        if is_note_container(el):
            self._notes(el, steps)
            return
        run = _Run()
        self._inline_text(el.text, run)
        for child, child_steps in stepped(el, steps):
            if child_steps is None:
                self._inline_text(child.tail, run)
                continue
            ctag = local(child)
            if ctag in SKIP or _hidden(child) or "pagebreak" in epub_types(child):
                pass
            elif ctag == "hr":
                self._emit(run, el, steps)
                run = _Run()
                self._scene_break()
            elif ctag in BLOCK or (len(child) and _has_block_descendant(child)):
                self._emit(run, el, steps)
                run = _Run()
                self.walk(child, child_steps)
            elif ctag == "img" and not run.parts:
                self._emit(run, el, steps)
                run = _Run()
                self._image(child, child_steps, run)
                self.result.stream.extend(run.alts)
                run = _Run()
            else:
                self._inline(child, child_steps, run)
            self._inline_text(child.tail, run)
        self._emit(run, el, steps)

    def _inline_children(self, el: etree._Element, steps: list[int], run: _Run) -> None:
        """``el``'s text and children into ``run``; element children get their EPUB CFI steps (2, 4, ...)."""
        self._inline_text(el.text, run)
        for child, child_steps in stepped(el, steps):
            if child_steps is not None:
                self._inline(child, child_steps, run)
            self._inline_text(child.tail, run)

    def _inline_text(self, text: str | None, run: _Run) -> None:
        if text:
            run.parts.append(text)

    def _inline(self, el: etree._Element, steps: list[int], run: _Run) -> None:
        tag = local(el)
        ident = el.get("id")
        if ident in self.o.split_ids:
            run.add_marks(self.o.split_ids[ident])
        if ident and ident in self.o.note_targets:
            run.note_ids.append(ident)
        if tag in SKIP or _hidden(el) or "pagebreak" in epub_types(el):
            return
        if tag == "br":
            run.parts.append(" ")
            return
        if tag == "img":
            self._image(el, steps, run)
            return
        if tag == "math":
            alt = el.get("alttext")
            if alt:
                run.parts.append(alt)
            else:
                self.result.skipped.append(
                    Skipped(
                        "math",
                        "MathML without alttext is not read",
                        self.anchor(el, steps),
                        word_count(" ".join(el.itertext())),
                    )
                )
            return
        if self._is_backlink(el) and (run.note_ids or self._in_note):
            if not self._note_label:
                self._note_label = "".join(el.itertext()).strip().strip("[]().")
            return
        if self._is_marker(el):
            for a in [el, *el.iterdescendants()]:
                if isinstance(a.tag, str) and local(a) == "a" and a.get("href"):
                    key = self.o.resolve_ref(a.get("href"))
                    if key:
                        run.noterefs.append(key)
                        label = "".join(el.itertext()).strip().strip("[]().")
                        self.result.ref_labels.setdefault(key, label)
            return
        self._inline_children(el, steps, run)

    def _is_marker(self, el: etree._Element) -> bool:
        """A footnote marker: a noteref, a numbered link in or around <sup>, a bare <sup>1</sup>."""
        tag = local(el)
        if "noteref" in epub_types(el):
            return True
        text = "".join(el.itertext()).strip()
        if tag == "a" and el.get("href"):
            if _REF_CLASS.search(el.get("class") or "") and len(text) <= 8:
                return True
            parent = el.getparent()
            in_sup = (parent is not None and local(parent) == "sup") or any(
                local(c) == "sup" for c in el if isinstance(c.tag, str)
            )
            if _MARKER_TEXT.match(text) and (in_sup or self.o.resolve_ref(el.get("href"))):
                return True
        if tag == "sup" and _MARKER_TEXT.match(text) and not re.fullmatch(r"(?i)(st|nd|rd|th|er|e|o|a)", text):
            return True
        return False

    def _is_backlink(self, el: etree._Element) -> bool:
        if local(el) != "a":
            return False
        text = "".join(el.itertext()).strip()
        return "backlink" in epub_types(el) or bool(_BACKLINK_TEXT.match(text)) or _MARKER_TEXT.match(text) is not None

    def _image(self, el: etree._Element, steps: list[int], run: _Run) -> None:
        alt = clean_text(el.get("alt") or "")
        if not alt or re.fullmatch(
            r"(?i)(image|picture|figure|photo|illustration|cover)?\s*\d*|\S+\.(jpe?g|png|gif|svg)", alt
        ):
            return
        self.result.images_with_alt += 1
        if self.o.alt_text:
            run.alts.append(Block("alt", alt, self.anchor(el, steps)))

    def _heading(self, el: etree._Element, steps: list[int]) -> None:
        tag = local(el)
        run = _Run()
        if tag == "hgroup":
            levels = [int(local(c)[1]) for c in el if isinstance(c.tag, str) and re.fullmatch(r"h[1-6]", local(c))]
            level = min(levels) if levels else 1
            texts = []
            for child, child_steps in stepped(el, steps):
                if child_steps is not None:
                    part = _Run()
                    self._inline(child, child_steps, part)
                    run.add_marks(part.marks)
                    run.noterefs += part.noterefs
                    if part.text():
                        texts.append(part.text())
            joined = ""
            for t in texts:
                joined = f"{joined}{'' if not joined else (' ' if joined[-1] in '.:!?' else '. ')}{t}"
            run.parts = [joined]
        else:
            level = int(tag[1])
            self._inline_children(el, steps, run)
        self._emit(run, el, steps, kind="heading", level=level)

    def _table(self, el: etree._Element, steps: list[int]) -> None:
        text = clean_text(" ".join(el.itertext()))
        if self.o.tables != "read":
            if text:
                self.result.skipped.append(
                    Skipped(
                        "table",
                        "tables are skipped (--tables read reads them)",
                        self.anchor(el, steps),
                        word_count(text),
                    )
                )
            return

        def rows(node: etree._Element, node_steps: list[int]):
            for child, child_steps in stepped(node, node_steps):
                if child_steps is None:
                    continue
                tag = local(child)
                if tag == "tr":
                    yield child, child_steps
                elif tag in ("thead", "tbody", "tfoot"):
                    yield from rows(child, child_steps)
                elif tag == "caption":
                    run = _Run()
                    self._inline(child, child_steps, run)
                    self._emit(run, child, child_steps)

        for tr, tr_steps in rows(el, steps):
            cells = []
            for cell, cell_steps in stepped(tr, tr_steps):
                if cell_steps is not None:
                    run = _Run()
                    self._inline(cell, cell_steps, run)
                    if run.text():
                        cells.append(run.text())
            if cells:
                text = ", ".join(cells)
                self.result.stream.append(
                    Block("table", text if text[-1] in ".!?" else text + ".", self.anchor(tr, tr_steps))
                )

    def _notes(self, el: etree._Element, steps: list[int]) -> None:
        """A notes container: its outermost elements with ids (list items, paragraphs, asides) are the notes;
        a container without such elements is one note."""
        items: list[tuple[etree._Element, list[int]]] = []

        def find(node: etree._Element, node_steps: list[int]) -> None:
            for child, child_steps in stepped(node, node_steps):
                if child_steps is None:
                    continue
                tag = local(child)
                if tag in ("h1", "h2", "h3", "h4", "h5", "h6", "header") or tag in SKIP:
                    continue
                if child.get("id") and tag in ("li", "p", "div", "aside", "section", "dd", "dt", "span"):
                    items.append((child, child_steps))
                else:
                    find(child, child_steps)

        find(el, steps)
        if not items:
            items = [(el, steps)]
        for item, item_steps in items:
            run = _Run()
            self._in_note, self._note_label = True, ""
            try:
                if item is el:
                    for child in el:  # the container's own headings are not part of the note
                        if isinstance(child.tag, str) and local(child) not in ("h1", "h2", "h3", "h4", "h5", "h6"):
                            self._inline(child, [], run)
                else:
                    self._inline(item, item_steps, run)
            finally:
                self._in_note = False
            text = run.text()
            ids = [item.get("id")] if item.get("id") else []
            ids += [d.get("id") for d in item.iterdescendants() if isinstance(d.tag, str) and d.get("id")]
            if text:
                self._add_note(
                    ids or [f"note-{len(self.result.notes) + 1}"], text, self.anchor(item, item_steps), self._note_label
                )
                self.result.skipped.append(
                    Skipped(
                        "note",
                        "note text (read at the chapter's end with --notes end)",
                        self.anchor(item, item_steps),
                        word_count(text),
                    )
                )
