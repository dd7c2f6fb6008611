"""A single HTML file -> Manuscript.

Decoded as plain text is (``sources.read_text_source``), except that a
``<meta charset>`` is believed before the Windows-1252 fallback; then parsed
with lxml's HTML parser (tolerant of real-world markup), walked like an
EPUB document (``htmlblocks``). Chapters start at ``h1`` and ``h2`` headings
(one ``h1`` above several ``h2`` is the book's title, see ``chapters``).
Title from ``<title>``, author from ``<meta name="author">``, language from
``<html lang>``. Anchors are ``<file name>#<id or epubcfi path>``. A Project
Gutenberg licence header and footer are skipped. A page nested past
``xhtml.MAX_DEPTH`` is refused: the HTML parser drops what lies deeper.
"""

from __future__ import annotations

import re
from pathlib import Path

import lxml.html
from lxml import etree

from ..clean import clean_text, word_count
from ..htmlblocks import WalkOptions, Walker
from ..model import IngestError, Manuscript, Skipped
from ..sources import encoding_remark, read_text_source
from ..xhtml import check_depth, local
from . import heading_marks

_PG_START = re.compile(r"\*\*\*\s*START OF (THE|THIS) PROJECT GUTENBERG", re.I)
_PG_END = re.compile(r"\*\*\*\s*END OF (THE|THIS) PROJECT GUTENBERG", re.I)


def read_html(path: Path, *, alt_text: bool, tables: str) -> Manuscript:
    text, encoding = read_text_source(path, "html")
    # Decoded here, so lxml's own guess (Latin-1 for any page without <meta charset>) never applies.
    parser = lxml.html.HTMLParser(encoding="utf-8")
    try:
        root = lxml.html.document_fromstring(text.encode("utf-8"), parser=parser)
    except etree.ParserError as exc:
        raise IngestError(f"{path.name} is not readable HTML ({exc})") from None
    if root is None:
        raise IngestError(f"{path.name} is empty")
    check_depth(root, path.name)
    body = root.find("body") if root.find("body") is not None else root
    ms = Manuscript("html", [], encoding=encoding)
    if remark := encoding_remark(path.name, encoding):
        ms.remarks.append(remark)
    title_el = root.find(".//title")
    ms.title = clean_text(title_el.text_content()) if title_el is not None and title_el.text_content() else None
    author = root.xpath("//meta[@name='author']/@content")
    ms.author = clean_text(author[0]) if author else None
    ms.language = root.get("lang") or root.get("{http://www.w3.org/XML/1998/namespace}lang")
    _drop_gutenberg(body, ms)
    walker = Walker(WalkOptions(path.name, alt_text, tables, resolve_ref=_local_ref(body, path.name)))
    steps = [2 * ([c for c in root if isinstance(c.tag, str)].index(body) + 1)] if body is not root else []
    walker.walk(body, steps)
    ms.stream = heading_marks(walker.result.stream)
    ms.notes, ms.skipped = walker.result.notes, ms.skipped + walker.result.skipped
    ms.raw_parts[path.name] = clean_text(" ".join(t for t in _texts(body)))
    return ms


def _texts(el: etree._Element):
    for node in el.iter():
        if isinstance(node.tag, str) and local(node) in ("script", "style"):
            continue
        if node.text and isinstance(node.tag, str) and local(node) not in ("script", "style"):
            yield node.text
        if node.tail:
            yield node.tail


def _local_ref(body: etree._Element, name: str):
    ids = {e.get("id") for e in body.iter() if isinstance(e.tag, str) and e.get("id")}

    def resolve(href: str) -> str | None:
        fragment = href.partition("#")[2]
        return f"{name}#{fragment}" if href.startswith("#") and fragment in ids else None

    return resolve


def _innermost(blocks: list[etree._Element], marker: re.Pattern[str]) -> etree._Element | None:
    """The block that holds ``marker`` and no block inside it does (a <pre> of the whole header, say)."""
    holding = [e for e in blocks if marker.search(e.text_content() or "")]
    inner = [e for e in holding if not any(o is not e and e in o.iterancestors() for o in holding)]
    return inner[0] if inner else None


def _drop_gutenberg(body: etree._Element, ms: Manuscript) -> None:
    """Remove everything up to the "*** START OF ..." line and from "*** END OF ..." on."""
    blocks = [e for e in body.iter() if isinstance(e.tag, str) and local(e) in ("p", "div", "pre", "section", "span")]
    start, end = _innermost(blocks, _PG_START), _innermost(blocks, _PG_END)
    for marker, before in ((start, True), (end, False)):
        if marker is None:
            continue
        removed = 0
        node = marker
        while node is not None and node is not body:
            siblings = list(node.itersiblings(preceding=True)) if before else list(node.itersiblings())
            for sib in siblings:
                removed += word_count(sib.text_content() if hasattr(sib, "text_content") else "")
                sib.getparent().remove(sib)
            node = node.getparent()
        removed += word_count(marker.text_content())
        marker.getparent().remove(marker)
        ms.skipped.append(Skipped("Project Gutenberg " + ("header" if before else "licence"),
                                  "publisher's boilerplate", "", removed))  # fmt: skip
