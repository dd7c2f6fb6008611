"""A book made from the manifest itself, for productions that did not come from an EPUB.

One XHTML document per chapter (``EPUB/text/chNN.xhtml``): the chapter title
as ``<h1>`` (the chapter's first row, when that row reads the title), then one
``<p>`` per row; consecutive rows with the same ``source`` (sentences of one
paragraph) share a ``<p>``, each in its own ``<span>``. Every row's element
has the id ``mm-<row id>``. A navigation document lists the chapters, a cover
page shows the cover when there is one, and the package carries title,
author and language from the sidecar and a stable ``urn:uuid`` made from them.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from lxml import etree

from ...epub.package import DC_NS, OPF_NS
from ...epub.xhtml import OPS_NS, XHTML_NS
from .model import ReadalongBook, ReadalongChapter, ReadalongRow

COVER_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".gif": "image/gif"}


@dataclass
class FreshDoc:
    path: str  # ZIP path
    href: str  # relative to the package document
    item_id: str
    tree: etree._ElementTree
    elements: dict[str, etree._Element]  # row id -> its element


def _norm(text: str) -> str:
    return re.sub(r"[\W_]+", "", text.casefold())


def _html(title: str, language: str) -> tuple[etree._ElementTree, etree._Element]:
    root = etree.Element(f"{{{XHTML_NS}}}html", nsmap={None: XHTML_NS, "epub": OPS_NS})
    root.set("lang", language)
    root.set("{http://www.w3.org/XML/1998/namespace}lang", language)
    head = etree.SubElement(root, f"{{{XHTML_NS}}}head")
    etree.SubElement(head, f"{{{XHTML_NS}}}meta", charset="utf-8")
    etree.SubElement(head, f"{{{XHTML_NS}}}title").text = title
    link = etree.SubElement(head, f"{{{XHTML_NS}}}link", rel="stylesheet", href="../css/readalong.css")
    link.set("type", "text/css")
    body = etree.SubElement(root, f"{{{XHTML_NS}}}body")
    return etree.ElementTree(root), body


def serialise(tree: etree._ElementTree) -> bytes:
    return etree.tostring(tree, xml_declaration=True, encoding="utf-8", doctype="<!DOCTYPE html>")


def chapter_doc(number: int, chapter: ReadalongChapter, language: str) -> FreshDoc:
    tree, body = _html(chapter.title, language)
    section = etree.SubElement(body, f"{{{XHTML_NS}}}section", id=f"ch{number:02d}")
    section.set(f"{{{OPS_NS}}}type", "chapter")
    elements: dict[str, etree._Element] = {}
    rows = list(chapter.rows)
    heading = etree.SubElement(section, f"{{{XHTML_NS}}}h1")
    if rows and _norm(rows[0].text) and _norm(rows[0].text).startswith(_norm(chapter.title)[:40] or "\0"):
        heading.text = rows[0].text.rstrip(".")
        heading.set("id", f"mm-{rows[0].id}")
        elements[rows[0].id] = heading
        rows = rows[1:]
    else:
        heading.text = chapter.title
    paragraph: etree._Element | None = None
    last_source: str | None = None
    for row in rows:
        shared = row.source is not None and row.source == last_source and paragraph is not None
        if shared:
            assert paragraph is not None  # shared says so
            if len(paragraph) == 0:  # the paragraph's first row moves into its own span
                first = etree.SubElement(paragraph, f"{{{XHTML_NS}}}span", id=paragraph.get("id"))
                first.text, paragraph.text = paragraph.text, None
                del paragraph.attrib["id"]
                elements[first.get("id")[3:]] = first
            paragraph[-1].tail = " "
            span = etree.SubElement(paragraph, f"{{{XHTML_NS}}}span", id=f"mm-{row.id}")
            span.text = row.text
            elements[row.id] = span
        else:
            paragraph = etree.SubElement(section, f"{{{XHTML_NS}}}p", id=f"mm-{row.id}")
            paragraph.text = row.text
            elements[row.id] = paragraph
        last_source = row.source
    return FreshDoc(f"EPUB/text/ch{number:02d}.xhtml", f"text/ch{number:02d}.xhtml", f"ch{number:02d}", tree, elements)


def nav_doc(book: ReadalongBook, docs: list[FreshDoc], language: str) -> bytes:
    tree, body = _html("Contents", language)
    tree.getroot().find(f"{{{XHTML_NS}}}head").remove(tree.getroot().find(f".//{{{XHTML_NS}}}link"))
    nav = etree.SubElement(body, f"{{{XHTML_NS}}}nav", id="toc")
    nav.set(f"{{{OPS_NS}}}type", "toc")
    etree.SubElement(nav, f"{{{XHTML_NS}}}h1").text = "Contents"
    ol = etree.SubElement(nav, f"{{{XHTML_NS}}}ol")
    for chapter, doc in zip(book.chapters, docs):
        li = etree.SubElement(ol, f"{{{XHTML_NS}}}li")
        etree.SubElement(li, f"{{{XHTML_NS}}}a", href=doc.href).text = chapter.title
    landmarks = etree.SubElement(body, f"{{{XHTML_NS}}}nav", id="landmarks", hidden="hidden")
    landmarks.set(f"{{{OPS_NS}}}type", "landmarks")
    lol = etree.SubElement(landmarks, f"{{{XHTML_NS}}}ol")
    if docs:
        li = etree.SubElement(lol, f"{{{XHTML_NS}}}li")
        a = etree.SubElement(li, f"{{{XHTML_NS}}}a", href=docs[0].href)
        a.set(f"{{{OPS_NS}}}type", "bodymatter")
        a.text = "Start"
    return serialise(tree)


def cover_doc(image_href: str, title: str, language: str) -> bytes:
    tree, body = _html("Cover", language)
    section = etree.SubElement(body, f"{{{XHTML_NS}}}section", id="cover")
    section.set(f"{{{OPS_NS}}}type", "cover")
    etree.SubElement(section, f"{{{XHTML_NS}}}img", src=image_href, alt=f"Cover of {title}")
    return serialise(tree)


def identifier(book: ReadalongBook) -> str:
    seed = "\x1f".join([book.title, book.author or "", *(c.title for c in book.chapters)])
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, 'mediamill-readalong:' + seed)}"


def package_document(book: ReadalongBook, language: str) -> etree._ElementTree:
    root = etree.Element(f"{{{OPF_NS}}}package", nsmap={None: OPF_NS}, version="3.0")
    root.set("unique-identifier", "uid")
    root.set("{http://www.w3.org/XML/1998/namespace}lang", language)
    metadata = etree.SubElement(root, f"{{{OPF_NS}}}metadata", nsmap={"dc": DC_NS})
    etree.SubElement(metadata, f"{{{DC_NS}}}identifier", id="uid").text = identifier(book)
    etree.SubElement(metadata, f"{{{DC_NS}}}title").text = book.title
    etree.SubElement(metadata, f"{{{DC_NS}}}language").text = language
    if book.author:
        etree.SubElement(metadata, f"{{{DC_NS}}}creator", id="author").text = book.author
    etree.SubElement(root, f"{{{OPF_NS}}}manifest")
    etree.SubElement(root, f"{{{OPF_NS}}}spine")
    return etree.ElementTree(root)


__all__ = [
    "COVER_TYPES",
    "FreshDoc",
    "ReadalongRow",
    "chapter_doc",
    "cover_doc",
    "identifier",
    "nav_doc",
    "package_document",
    "serialise",
]
