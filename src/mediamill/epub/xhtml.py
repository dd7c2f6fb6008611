"""Parsing XHTML content documents, and anchors that point into them.

Import and the read-along builder parse a document with the same function, so
an anchor made at import resolves to the same element when the book is built.

An anchor is ``<href>#<fragment>``: the element's ``id`` when it has one, else
``epubcfi(/4/2/6)``, the element's path from the document's root element in
EPUB CFI step notation (element steps only: the n-th child element is step 2n;
no spine step, since the href already names the document). Parsing never
loads a DTD nor resolves external entities; HTML named entities (``&nbsp;``,
which EPUB 2 books often use) are turned into character references first.

``check_depth`` refuses a document whose elements nest deeper than
``MAX_DEPTH``: the readers walk documents recursively, and the parsers cut a
deeper tree short on their own (libxml2's HTML parser silently, at 256
levels), so such a document could only be read in part.
"""

from __future__ import annotations

import html.entities
import re
from collections.abc import Iterator

from lxml import etree

from . import BookError

XHTML_NS = "http://www.w3.org/1999/xhtml"
OPS_NS = "http://www.idpf.org/2007/ops"
EPUB_TYPE = f"{{{OPS_NS}}}type"

_ENTITY = re.compile(rb"&([A-Za-z][A-Za-z0-9]{1,31});")
_XML_ENTITIES = {b"amp", b"lt", b"gt", b"quot", b"apos"}
# Real books nest a few dozen levels at most; the walk takes up to two Python frames a level.
MAX_DEPTH = 200
_CFI = re.compile(r"^epubcfi\(((?:/\d+)+)\)$")
# ARIA DPUB roles, for documents that say what they are with role= instead of epub:type.
_ROLE_TYPES = {
    "doc-footnote": "footnote",
    "doc-endnote": "endnote",
    "doc-endnotes": "endnotes",
    "doc-noteref": "noteref",
    "doc-pagebreak": "pagebreak",
    "doc-chapter": "chapter",
    "doc-toc": "toc",
    "doc-index": "index",
    "doc-glossary": "glossary",
    "doc-bibliography": "bibliography",
    "doc-colophon": "colophon",
    "doc-dedication": "dedication",
    "doc-epigraph": "epigraph",
    "doc-foreword": "foreword",
    "doc-preface": "preface",
    "doc-prologue": "prologue",
    "doc-epilogue": "epilogue",
    "doc-afterword": "afterword",
    "doc-acknowledgments": "acknowledgments",
    "doc-appendix": "appendix",
    "doc-part": "part",
    "doc-cover": "cover",
    "doc-credits": "credits",
    "doc-introduction": "introduction",
    "doc-conclusion": "conclusion",
    "doc-backlink": "backlink",
}


def _entity_ref(match: re.Match[bytes]) -> bytes:
    name = match.group(1)
    if name in _XML_ENTITIES:
        return match.group(0)
    char = html.entities.html5.get(name.decode("ascii") + ";")
    return b"".join(b"&#%d;" % ord(c) for c in char) if char else match.group(0)


def parse_xhtml(data: bytes) -> etree._ElementTree:
    """An XHTML document as an lxml tree (recovering from small errors, never fetching anything)."""
    parser = etree.XMLParser(recover=True, resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True)
    root = etree.fromstring(_ENTITY.sub(_entity_ref, data), parser)
    if root is None:
        raise ValueError("not an XML document")
    return root.getroottree()


def check_depth(root: etree._Element, what: str) -> None:
    """Refuse (``BookError``) a tree whose elements nest more than ``MAX_DEPTH`` deep, without recursing."""
    depth = 0
    for event, el in etree.iterwalk(root, events=("start", "end")):
        if event == "end":
            depth -= 1
            continue
        depth += 1
        if depth > MAX_DEPTH:
            raise BookError(
                f"{what} nests elements more than {MAX_DEPTH} levels deep (line {el.sourceline}); "
                "no book needs that many, so the file is damaged or made to break readers"
            )


def local(el: etree._Element) -> str:
    """The element's tag without namespace, lower-cased ('' for comments and processing instructions)."""
    tag = el.tag
    if not isinstance(tag, str):
        return ""
    return tag.rsplit("}", 1)[-1].lower()


def epub_types(el: etree._Element) -> set[str]:
    """epub:type values (namespaced or, in HTML parsed without namespaces, literal) and DPUB roles."""
    raw = el.get(EPUB_TYPE) or el.get("epub:type") or ""
    types = {t.split(":")[-1].lower() for t in raw.split()}
    for role in (el.get("role") or "").split():
        if role in _ROLE_TYPES:
            types.add(_ROLE_TYPES[role])
    return types


def element_children(el: etree._Element) -> list[etree._Element]:
    return [c for c in el if isinstance(c.tag, str)]


def stepped(el: etree._Element, steps: list[int]) -> Iterator[tuple[etree._Element, list[int] | None]]:
    """``el``'s children with their EPUB CFI steps below ``steps``: element children 2, 4, ...; None for the
    comments and processing instructions between them (whose tails are still text)."""
    index = 0
    for child in el:
        if isinstance(child.tag, str):
            index += 1
            yield child, [*steps, 2 * index]
        else:
            yield child, None


def element_steps(el: etree._Element) -> list[int]:
    """CFI steps from the root element to ``el`` (``[4, 2, 6]``)."""
    steps = []
    node = el
    while True:
        parent = node.getparent()
        if parent is None:
            break
        steps.append(2 * (element_children(parent).index(node) + 1))
        node = parent
    return steps[::-1]


def cfi_fragment(steps: list[int]) -> str:
    return "epubcfi(" + "".join(f"/{s}" for s in steps) + ")"


def fragment_for(el: etree._Element, steps: list[int] | None = None) -> str:
    ident = el.get("id")
    return ident if ident else cfi_fragment(steps if steps is not None else element_steps(el))


def resolve_fragment(tree: etree._ElementTree, fragment: str) -> etree._Element | None:
    """The element an anchor's fragment names (an id or a CFI step path), or None."""
    match = _CFI.match(fragment)
    if match:
        node = tree.getroot()
        for step in (int(s) for s in match.group(1).strip("/").split("/")):
            if step % 2 or step < 2:
                return None
            children = element_children(node)
            if step // 2 > len(children):
                return None
            node = children[step // 2 - 1]
        return node
    found = tree.getroot().xpath("//*[@id=$v or @xml:id=$v]", v=fragment)
    return found[0] if found else None


def split_anchor(anchor: str) -> tuple[str, str | None]:
    href, _, fragment = anchor.partition("#")
    return href, fragment or None
