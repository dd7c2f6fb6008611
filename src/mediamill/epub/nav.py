"""An EPUB's table of contents and landmarks: from the EPUB 3 navigation document,
else the NCX (EPUB 2), plus the EPUB 2 guide.

``read_toc`` returns entries in TOC order with their depth (1 = top); entries
without a link (a heading ``<span>`` in the nav) still count for nesting.
``read_landmarks`` returns (semantic type, ZIP path, fragment) triples from the
nav's ``landmarks`` and the OPF ``guide``, with guide types mapped to EPUB 3 names.
A navigation document or NCX nested past ``xhtml.MAX_DEPTH`` is refused (``BookError``).
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from .package import Package, parse_xml
from .xhtml import check_depth, epub_types, local, parse_xhtml

NCX_NS = "http://www.daisy.org/z3986/2005/ncx/"
_GUIDE_TYPES = {
    "title-page": "titlepage",
    "text": "bodymatter",
    "copyright-page": "copyright-page",
    "acknowledgements": "acknowledgments",
    "notes": "endnotes",
    "other.backmatter": "backmatter",
    "other.frontmatter": "frontmatter",
}


@dataclass
class TocEntry:
    title: str
    path: str | None  # ZIP entry name of the target document
    fragment: str | None
    depth: int


def _clean(text: str) -> str:
    return " ".join(text.split())


def read_toc(package: Package) -> tuple[list[TocEntry], str]:
    """TOC entries and where they came from ("nav", "ncx" or "none")."""
    if package.nav is not None:
        entries = _nav_toc(package)
        if entries:
            return entries, "nav"
    if package.ncx is not None:
        entries = _ncx_toc(package)
        if entries:
            return entries, "ncx"
    return [], "none"


def _nav_element(tree: etree._ElementTree, kind: str) -> etree._Element | None:
    for nav in tree.getroot().iter():
        if isinstance(nav.tag, str) and local(nav) == "nav" and kind in epub_types(nav):
            return nav
    return None


def _nav_toc(package: Package) -> list[TocEntry]:
    assert package.nav is not None  # read_toc calls this only with a nav
    nav_path = package.nav.path
    try:
        tree = parse_xhtml(package.read(nav_path))
    except ValueError:
        return []
    check_depth(tree.getroot(), f"{package.label}: {nav_path}")
    nav = _nav_element(tree, "toc")
    if nav is None:
        return []
    entries: list[TocEntry] = []

    def walk_list(ol: etree._Element, depth: int) -> None:
        for li in ol:
            if not isinstance(li.tag, str) or local(li) != "li":
                continue
            label = next((c for c in li if isinstance(c.tag, str) and local(c) in ("a", "span")), None)
            if label is not None:
                title = _clean("".join(label.itertext()))
                path = fragment = None
                if local(label) == "a" and label.get("href"):
                    path, fragment = package.resolve(nav_path, label.get("href"))
                entries.append(TocEntry(title, path, fragment, depth))
            for sub in li:
                if isinstance(sub.tag, str) and local(sub) == "ol":
                    walk_list(sub, depth + 1)

    for child in nav:
        if isinstance(child.tag, str) and local(child) == "ol":
            walk_list(child, 1)
    return entries


def _ncx_toc(package: Package) -> list[TocEntry]:
    assert package.ncx is not None  # read_toc calls this only with an NCX
    ncx_path = package.ncx.path
    try:
        tree = parse_xml(package.read(ncx_path))
    except (ValueError, etree.XMLSyntaxError):
        return []
    check_depth(tree.getroot(), f"{package.label}: {ncx_path}")
    entries: list[TocEntry] = []
    ns = {"n": NCX_NS}

    def walk(point: etree._Element, depth: int) -> None:
        label = point.find("n:navLabel/n:text", ns)
        content = point.find("n:content", ns)
        path = fragment = None
        if content is not None and content.get("src"):
            path, fragment = package.resolve(ncx_path, content.get("src"))
        entries.append(TocEntry(_clean("".join(label.itertext())) if label is not None else "", path, fragment, depth))
        for sub in point.findall("n:navPoint", ns):
            walk(sub, depth + 1)

    nav_map = tree.getroot().find("n:navMap", ns)
    if nav_map is None:
        return []
    for point in nav_map.findall("n:navPoint", ns):
        walk(point, 1)
    return entries


def read_landmarks(package: Package) -> list[tuple[str, str, str | None]]:
    marks: list[tuple[str, str, str | None]] = []
    if package.nav is not None:
        try:
            tree = parse_xhtml(package.read(package.nav.path))
            check_depth(tree.getroot(), f"{package.label}: {package.nav.path}")
            nav = _nav_element(tree, "landmarks")
        except ValueError:
            nav = None
        if nav is not None:
            for a in nav.iter():
                if isinstance(a.tag, str) and local(a) == "a" and a.get("href"):
                    path, fragment = package.resolve(package.nav.path, a.get("href"))
                    for kind in epub_types(a):
                        marks.append((kind, path, fragment))
    for kind, path, fragment in package.guide:
        marks.append((_GUIDE_TYPES.get(kind, kind), path, fragment))
    return marks
