"""A single HTML file -> Manuscript.

Decoded as plain text is (``sources.read_text_source``), except that a
``<meta charset>`` is believed before the Windows-1252 fallback; then parsed
with lxml's HTML parser (tolerant of real-world markup, HTML 4's capitals
included), walked like an EPUB document (``htmlblocks``). Anchors are
``<file name>#<id or epubcfi path>``; an ``<a name>`` counts as an id. A page
nested past ``xhtml.MAX_DEPTH`` is refused: the HTML parser drops what lies
deeper.

Project Gutenberg: its header and licence are skipped, and so are the
producers' credits right after the header ("Produced by ...", a
transcriber's note: ``gutenberg.is_credit``); the header's "Title:",
"Author:" and "Language:" lines give what the page's own markup does not
(its ``<title>`` is "The Project Gutenberg eBook of ...", so the header's
title wins).

Metadata: title from ``<title>``, author from ``<meta name="author">``,
language from ``<html lang>`` (or ``xml:lang``, a ``Content-Language`` or
``language`` meta, ``<body lang>``), always as a language tag
(``gutenberg.language_tag``: "English" is "en").

Chapters, in this order of trust:

1. **A contents list** (``contents.find_contents``: links to places further
   down the page). Its targets start the chapters; each is titled by the
   heading right after its target (when several follow, the closest fit to
   the link's words: "1. The Cyclone", not the book's title repeated above
   it), else by the link's text, and ranked by that heading's level. Unlisted headings at the
   chapters' heading level or above start sections too when they read as a
   chapter or part line or name front or back matter ("Preface to ...",
   "Footnotes"), and so does, as without a list, an ``h1`` or ``h2`` after
   the first listed chapter and no higher than the listed ones (a part inside
   a long chapter); the title page's headings before it do not. The list
   itself is left out and reported as a table of contents (``--keep toc``
   reads it). Other headings are read inside their chapter.
2. **Headings.** Without a contents list: when a level below ``h2`` carries
   most of the numbered chapter headings ("CHAPTER IV", "1. The Cyclone",
   "VII. THE BLUE CARBUNCLE", three at least), those headings and the
   chapter, part or front-matter headings above them start chapters;
   otherwise every ``h1`` and ``h2`` does (one ``h1`` above several ``h2`` is
   the book's title, see ``chapters``).
3. **Heading-like paragraphs.** When more paragraphs than headings are a
   chapter line alone ("CHAPTER I.", "Part Two", ``headings.chapter_line``;
   a bare Roman numeral counts, when there are three, only where headings
   found fewer than two chapters), those paragraphs are the chapter headings
   (a title-like paragraph right after one is its subtitle), below the
   headings that name a part or section.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import lxml.html
from lxml import etree

from ...epub.xhtml import check_depth, element_steps, fragment_for, local
from ..clean import clean_text, word_count
from ..contents import find_contents, name_anchors, remove
from ..gutenberg import CREDIT_WORDS, END, START, header_fields, is_credit, language_tag
from ..headings import chapter_line, is_numeral_line, looks_like_subtitle, numbered_title
from ..htmlblocks import BLOCK, Walker, WalkOptions
from ..matter import READ_KINDS, kind_from_title
from ..model import Block, IngestError, Manuscript, Mark, Skipped
from ..sources import encoding_remark, read_text_source
from . import heading_marks

_LANGUAGE_METAS = ("content-language", "language", "dc.language", "dcterms.language")


def read_html(path: Path, *, alt_text: bool, tables: str, keep: frozenset[str] = frozenset()) -> Manuscript:
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
    whole = body.text_content()
    start = START.search(whole)
    header = header_fields(whole[: start.start()]) if start else {}
    title_el = root.find(".//title")
    page_title = clean_text(title_el.text_content()) if title_el is not None and title_el.text_content() else None
    ms.title = header.get("title") or page_title
    author = root.xpath("//meta[@name='author']/@content")
    ms.author = clean_text(author[0]) if author and clean_text(author[0]) else header.get("author")
    ms.language = _language(root, body) or header.get("language")
    if _drop_gutenberg(body, ms):
        _drop_credits(body, ms, path.name)
    name_anchors(body)
    marks = _contents_marks(body, ms, path.name, read_lists="all" in keep or "toc" in keep)
    split_ids = {fragment: [mark] for fragment, (mark, _) in marks.items()}
    walker = Walker(
        WalkOptions(path.name, alt_text, tables, split_ids=split_ids, resolve_ref=_local_ref(body, path.name))
    )
    steps = [2 * ([c for c in root if isinstance(c.tag, str)].index(body) + 1)] if body is not root else []
    walker.walk(body, steps)
    links = {id(m): text for m, text in marks.values()}
    if any(isinstance(item, Mark) and id(item) in links for item in walker.result.stream):
        ms.stream = _name_listed(walker.result.stream, links)
    else:  # no list, or its targets lie where nothing is read
        ms.stream = _heading_chapters(walker.result.stream)
    ms.notes, ms.skipped = walker.result.notes, ms.skipped + walker.result.skipped
    ms.raw_parts[path.name] = clean_text(" ".join(t for t in _texts(body)))
    return ms


def _language(root: etree._Element, body: etree._Element) -> str | None:
    values = [root.get("lang"), root.get("{http://www.w3.org/XML/1998/namespace}lang"), root.get("xml:lang")]
    for meta in root.iter("meta"):
        if (meta.get("http-equiv") or meta.get("name") or "").strip().lower() in _LANGUAGE_METAS:
            values.append(meta.get("content"))
    values.append(body.get("lang"))
    return next((tag for tag in map(language_tag, values) if tag), None)


def _contents_marks(body: etree._Element, ms: Manuscript, name: str, read_lists: bool) -> dict[str, tuple[Mark, str]]:
    """Marks at the targets of the page's contents lists (by fragment, with the link's text); the lists
    themselves are taken out of the page unless they are to be read."""
    marks: dict[str, tuple[Mark, str]] = {}
    for contents in find_contents(body, name):
        if contents.lists_chapters():
            for fragment, text in contents.links:
                if fragment not in marks:
                    marks[fragment] = (Mark(0, text, f"{name}#{fragment}"), text)
        if not read_lists and all(_attached(e, body) for e in contents.elements):
            first = contents.elements[0]
            source = f"{name}#{fragment_for(first, element_steps(first))}"
            ms.skipped.append(Skipped(contents.title, "toc (content: links to the chapters)", source, contents.words))
            remove(contents.elements)
    return marks


def _attached(el: etree._Element, body: etree._Element) -> bool:
    """Still in the page (a list inside one already taken out is not)."""
    return any(a is body for a in el.iterancestors())


def _squash(text: str) -> str:
    return re.sub(r"[\W_]+", "", text.casefold())


def _name_listed(stream: list[Block | Mark], links: dict[int, str]) -> list[Block | Mark]:
    """Title and rank each contents mark from the heading right after it; mark unlisted section headings."""
    claimed: set[int] = set()
    levels: list[int] = []
    for i, item in enumerate(stream):
        if not isinstance(item, Mark) or id(item) not in links:
            continue
        after: list[Block] = []
        for nxt in stream[i + 1 :]:
            if isinstance(nxt, Mark):
                if id(nxt) in links:
                    break
                continue
            if nxt.kind != "heading":
                break
            after.append(nxt)
        chosen = _title_heading(after, links[id(item)])
        if chosen is not None:
            item.title, item.level = chosen.text, chosen.level
            levels.append(chosen.level)
            claimed.update(id(h) for h in after)
    usual = Counter(levels).most_common(1)[0][0] if levels else 2
    for item in stream:
        if isinstance(item, Mark) and id(item) in links and not item.level:
            item.level = usual  # a target without a heading: an anchor before a centred paragraph
    top, deepest = min(levels, default=0), max(levels, default=0)
    out: list[Block | Mark] = []
    listed = False
    for item in stream:
        listed = listed or (isinstance(item, Mark) and id(item) in links)
        if (
            isinstance(item, Block)
            and item.kind == "heading"
            and id(item) not in claimed
            and (
                (1 <= item.level <= deepest and _section_title(item.text))
                or (listed and top <= item.level <= min(deepest, 2))
            )
        ):
            out.append(Mark(item.level, item.text, item.source))
        out.append(item)
    return out


def _title_heading(headings: list[Block], link: str) -> Block | None:
    """Of the headings after a listed target, the one the link names (the closest fit: "The Cyclone" is
    "1. The Cyclone", not "THE CYCLONE BOOK" above it), else the first chapter-like one, else the first."""
    words = _squash(link)
    named = [h for h in headings if words and words in _squash(h.text)]
    if named:
        return min(named, key=lambda h: len(_squash(h.text)))
    return next((h for h in headings if _chapter_like(h.text)), headings[0] if headings else None)


def _section_title(text: str) -> bool:
    """A heading that starts a section of its own: a chapter or part line, or front or back matter's title."""
    return chapter_line(text) is not None or kind_from_title(text) is not None


def _chapter_like(text: str) -> bool:
    return (
        chapter_line(text, numeral_only=True) is not None or numbered_title(text) or kind_from_title(text) in READ_KINDS
    )


def _heading_chapters(stream: list[Block | Mark]) -> list[Block | Mark]:
    """Chapters from headings (rule 2 of the module docstring), else from heading-like paragraphs (rule 3)."""
    headings = [b for b in stream if isinstance(b, Block) and b.kind == "heading" and b.level]
    likes = Counter(h.level for h in headings if _chapter_like(h.text))
    deep = [level for level in range(3, 7) if likes[level] >= 3]
    if deep:
        level = max(deep, key=lambda lv: (likes[lv], -lv))
        if likes[level] > likes[1] + likes[2]:
            out: list[Block | Mark] = []
            for item in stream:
                if (
                    isinstance(item, Block)
                    and item.kind == "heading"
                    and (
                        (item.level == level and _chapter_like(item.text))
                        or (1 <= item.level < level and _section_title(item.text))
                    )
                ):
                    out.append(Mark(item.level, item.text, item.source))
                out.append(item)
            return out
    marked = heading_marks(stream)
    found = sum(isinstance(item, Mark) for item in marked)
    paras = [b for b in stream if isinstance(b, Block) and b.kind == "para"]
    lines = {id(b): line_level for b in paras if (line_level := chapter_line(b.text))}
    if len(lines) >= 2 and len(lines) > found:
        return _paragraph_chapters(stream, lines)
    if found < 2:
        # Bare numerals ("IV.") only where headings found nothing: elsewhere they number a story's parts.
        numerals = sum(1 for b in paras if is_numeral_line(b.text)) >= 3
        lines = {id(b): line_level for b in paras if (line_level := chapter_line(b.text, numerals))}
        if len(lines) >= 2:
            return _paragraph_chapters(stream, lines)
    return marked


def _paragraph_chapters(stream: list[Block | Mark], lines: dict[int, int]) -> list[Block | Mark]:
    """Chapter-line paragraphs become headings and marks (below every heading level, so an ``h2`` "Part One"
    holds them); headings that name a section keep marks of their own."""
    out: list[Block | Mark] = []
    pending: tuple[Mark, Block] | None = None
    for item in stream:
        if isinstance(item, Block) and id(item) in lines:
            item.kind, item.level = "heading", lines[id(item)]
            pending = (Mark(6 + item.level, item.text, item.source), item)
            out += list(pending)
            continue
        if pending is not None and isinstance(item, Block):
            mark, heading = pending
            pending = None
            if item.kind == "para" and looks_like_subtitle(item.text):
                joiner = " " if heading.text[-1:] in ".:" else ": "
                heading.text = mark.title = f"{heading.text}{joiner}{item.text}"
                continue
        if isinstance(item, Block) and item.kind == "heading" and 1 <= item.level <= 6 and _section_title(item.text):
            out.append(Mark(item.level, item.text, item.source))
        out.append(item)
    return out


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


def _drop_gutenberg(body: etree._Element, ms: Manuscript) -> bool:
    """Remove everything up to the "*** START OF ..." line and from "*** END OF ..." on; say if it began so."""
    blocks = [e for e in body.iter() if isinstance(e.tag, str) and local(e) in ("p", "div", "pre", "section", "span")]
    start, end = _innermost(blocks, START), _innermost(blocks, END)
    for marker, before in ((start, True), (end, False)):
        if marker is None:
            continue
        removed = 0
        node = marker
        while node is not None and node is not body:
            siblings = list(node.itersiblings(preceding=True)) if before else list(node.itersiblings())
            for sib in siblings:
                if isinstance(sib.tag, str):
                    removed += word_count(sib.text_content())
                    remove([sib], keep_tail=False)
                else:
                    sib.getparent().remove(sib)  # a comment: no anchor counts it
            node = node.getparent()
        removed += word_count(marker.text_content())
        remove([marker], keep_tail=False)
        ms.skipped.append(
            Skipped("Project Gutenberg " + ("header" if before else "licence"), "publisher's boilerplate", "", removed)
        )
    return start is not None


def _first_text(el: etree._Element) -> etree._Element | None:
    """The element whose own text or child's tail is the first text in ``el``, in reading order."""
    if (el.text or "").strip():
        return el
    for child in el:
        if isinstance(child.tag, str) and local(child) not in ("script", "style"):
            found = _first_text(child)
            if found is not None:
                return found
        if (child.tail or "").strip():
            return el
    return None


def _drop_credits(body: etree._Element, ms: Manuscript, name: str) -> None:
    """The producers' credits that open the text after the Gutenberg header (a few blocks at most)."""
    for _ in range(5):
        node = _first_text(body)
        while node is not None and node is not body and local(node) not in BLOCK:
            node = node.getparent()
        if node is None or node is body:
            return
        text = clean_text(node.text_content())
        inner = any(
            local(d) in BLOCK and clean_text(d.text_content()) for d in node.iterdescendants() if isinstance(d.tag, str)
        )
        if inner or word_count(text) > CREDIT_WORDS or not is_credit(text):
            return  # loose text at the top of a container that holds the book is not a credit
        source = f"{name}#{fragment_for(node, element_steps(node))}"
        ms.skipped.append(Skipped("Project Gutenberg credits", "publisher's boilerplate", source, word_count(text)))
        remove([node])
