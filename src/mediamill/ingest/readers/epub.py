"""EPUB 2 and 3 -> Manuscript.

Reading order is the spine; items with ``linear="no"`` are skipped (and
listed), and a document the spine lists more than once is read at its first
place only (the repeats are listed as skipped). Chapter marks come from the TOC (EPUB 3 navigation document, else
the NCX): an entry with a fragment starts its chapter at that element, so
several chapters may share one XHTML file; an entry without one starts at the
document's top. Spine documents before the first TOC target get a mark of
their own (so front matter can be judged alone); a later document without a
TOC entry continues the chapter before it, unless it is itself recognisably
front or back matter. A book without a usable TOC gets one mark per document,
titled by its first heading. Semantics for the front/back matter decision
come from ``epub:type``/``role`` on the body, the section holding the target,
the target itself, and from landmarks/guide entries pointing at the document
or the element. Anchors are ``<href relative to the OPF folder>#<fragment>``.
An entity that neither XML nor HTML defines (``&bogus;``) is left out of the
text, and the report names its file and line.
"""

from __future__ import annotations

from copy import deepcopy
from pathlib import Path
from urllib.parse import urldefrag

from lxml import etree

from ...epub.nav import read_landmarks, read_toc
from ...epub.package import XHTML_TYPES, Package, open_package
from ...epub.xhtml import check_depth, epub_types, local, parse_xhtml
from ..clean import clean_text, word_count
from ..htmlblocks import Walker, WalkOptions
from ..matter import READ_KINDS, classify
from ..model import IngestError, Manuscript, Mark, Skipped

_MARKER_CHARS = set("0123456789*\u2020\u2021\u00a7[]()")
_IMAGE_TYPES = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/gif": ".gif",
    "image/webp": ".webp",
    "image/svg+xml": ".svg",
}


class _Doc:
    def __init__(self, package: Package, path: str, tree: etree._ElementTree):
        self.path = path
        self.href = package.rel(path)
        self.tree = tree
        self.body = next((e for e in tree.getroot().iter() if isinstance(e.tag, str) and local(e) == "body"), None)

    def hints(self) -> set[str]:
        """epub:type of the body, and of its only section-like child."""
        if self.body is None:
            return set()
        types = epub_types(self.body)
        sections = [c for c in self.body if isinstance(c.tag, str) and local(c) in ("section", "div", "article")]
        if len(sections) == 1:
            types |= epub_types(sections[0])
        return types

    def raw_text(self) -> str:
        if self.body is None:
            return ""
        # A copy, not a re-parse of the serialised body: that fails on what the recovering parser kept.
        copy = deepcopy(self.body)
        etree.strip_elements(copy, "{*}script", "{*}style", with_tail=False)
        etree.strip_elements(copy, etree.Entity, with_tail=False)  # undefined entities are not read
        return clean_text(" ".join(copy.itertext()))

    def first_heading(self) -> str | None:
        if self.body is None:
            return None
        for el in self.body.iter():
            if isinstance(el.tag, str) and local(el) in ("h1", "h2", "h3"):
                text = clean_text("".join(el.itertext()))
                if text:
                    return text
        title = next((e for e in self.tree.getroot().iter() if isinstance(e.tag, str) and local(e) == "title"), None)
        return clean_text("".join(title.itertext())) if title is not None else None

    def link_share(self) -> float:
        """How much of the text sits in links to other documents (a contents page is mostly that)."""
        if self.body is None:
            return 0.0
        total = len(clean_text(" ".join(self.body.itertext())))
        linked = sum(
            len(clean_text(" ".join(a.itertext())))
            for a in self.body.iter()
            if isinstance(a.tag, str) and local(a) == "a" and urldefrag(a.get("href") or "#")[0]
        )
        return linked / total if total else 0.0

    def images(self) -> int:
        if self.body is None:
            return 0
        return sum(1 for e in self.body.iter() if isinstance(e.tag, str) and local(e) in ("img", "image", "svg"))


def read_epub(path: Path, *, alt_text: bool, tables: str, keep: frozenset[str]) -> Manuscript:
    package = open_package(path)
    major = package.version.split(".")[0]
    fmt = "epub3" if major == "3" else "epub2"
    ms = Manuscript(fmt, [], title=package.title, author=package.author, language=package.language)
    ms.cover = _cover(package)

    docs: list[_Doc] = []
    repeats: dict[str, int] = {}
    for item, linear in package.spine:
        if item.path in repeats:
            repeats[item.path] += 1
            continue
        repeats[item.path] = 0
        if item.media_type not in XHTML_TYPES:
            ms.skipped.append(
                Skipped(package.rel(item.path), f"not a text document ({item.media_type})", package.rel(item.path))
            )
            continue
        try:
            tree = parse_xhtml(package.read(item.path))
        except (ValueError, etree.XMLSyntaxError) as exc:
            ms.remarks.append(f"{package.rel(item.path)} could not be parsed and was left out ({exc})")
            continue
        check_depth(tree.getroot(), f"{path.name}: {item.path}")
        _undefined_entities(tree, item.path, ms)
        doc = _Doc(package, item.path, tree)
        if not linear:
            ms.skipped.append(
                Skipped(
                    doc.first_heading() or doc.href,
                    'outside the reading order (linear="no")',
                    doc.href,
                    word_count(doc.raw_text()),
                )
            )
            continue
        if doc.body is not None:
            docs.append(doc)
    for where, count in repeats.items():
        if count:
            ms.skipped.append(
                Skipped(
                    package.rel(where),
                    f"listed {count} more time(s) in the reading order; read once, at its first place",
                    package.rel(where),
                )
            )
    if not docs:
        raise IngestError(f"{path.name} has no readable text documents in its reading order")

    by_path = {d.path: d for d in docs}
    toc, toc_source = read_toc(package)
    landmarks = read_landmarks(package)
    landmark_hints: dict[tuple[str, str | None], set[str]] = {}
    for kind, target, fragment in landmarks:
        landmark_hints.setdefault((target, fragment), set()).add(f"landmark={kind}")
    body_start = next((t for k, t, _ in landmarks if k == "bodymatter" and t in by_path), None)
    for doc in docs:  # what a document's content says it is, for the front/back matter decision
        assert doc.body is not None  # docs holds only documents with a body
        if not clean_text(" ".join(doc.body.itertext())):
            landmark_hints.setdefault((doc.path, None), set()).add(
                "content=image-page" if doc.images() else "content=cover"
            )
        elif doc.link_share() > 0.6:
            landmark_hints.setdefault((doc.path, None), set()).add("content=toc")

    # TOC entries -> marks at document tops or at elements.
    top_marks: dict[str, list[Mark]] = {}
    split_ids: dict[str, dict[str, list[Mark]]] = {}
    targeted: set[str] = set()
    seen: set[tuple[str, str | None]] = set()
    waiting: list[tuple[int, str]] = []  # TOC headings without a link, placed at the next linked entry
    for entry in toc:
        if entry.path is None:
            waiting.append((entry.depth, entry.title))
            continue
        hit = by_path.get(entry.path)
        if hit is None or (entry.path, entry.fragment) in seen:
            continue
        doc = hit
        seen.add((entry.path, entry.fragment))
        element = None
        if entry.fragment:
            found = doc.tree.getroot().xpath("//*[@id=$v]", v=entry.fragment)
            element = found[0] if found else None
        hints = _hints_at(doc, element) | landmark_hints.get((entry.path, entry.fragment), set())
        if element is None:
            hints |= landmark_hints.get((entry.path, None), set())
        source = f"{doc.href}#{entry.fragment}" if element is not None else doc.href
        marks = [Mark(depth, title, source) for depth, title in waiting]
        marks.append(Mark(entry.depth, entry.title, source, frozenset(hints)))
        waiting = []
        targeted.add(doc.path)
        if element is None:
            top_marks.setdefault(doc.path, []).extend(marks)
        else:
            assert entry.fragment is not None  # the element was found by it
            split_ids.setdefault(doc.path, {}).setdefault(entry.fragment, []).extend(marks)
    if not targeted:
        if toc:
            ms.remarks.append(f"the table of contents ({toc_source}) points at no document in the reading order")
        toc_source = "none"

    # Documents without TOC entries: their own section, or a continuation of the one before.
    first_target = next((i for i, d in enumerate(docs) if d.path in targeted), len(docs))
    for i, doc in enumerate(docs):
        if doc.path in targeted:
            continue
        hints = doc.hints() | landmark_hints.get((doc.path, None), set())
        title = doc.first_heading() or ""
        if toc_source == "none" or i < first_target:
            top_marks[doc.path] = [Mark(1, title, doc.href, frozenset(hints), explicit=False)]
            continue
        verdict = classify(
            title,
            [doc.raw_text()],
            frozenset(hints),
            book_title=package.title,
            link_share=doc.link_share(),
            images=doc.images(),
        )
        if not verdict.read:
            top_marks[doc.path] = [Mark(1, title, doc.href, frozenset(hints), explicit=False)]
    if body_start is not None:
        _mark_front_matter(docs, body_start, top_marks)

    # Note targets across the book, so note bodies are never read as text.
    note_targets: dict[str, set[str]] = {}
    for doc in docs:
        assert doc.body is not None  # docs holds only documents with a body
        for a in doc.body.iter():
            if isinstance(a.tag, str) and local(a) == "a" and a.get("href") and _looks_like_noteref(a):
                target, fragment = package.resolve(doc.path, a.get("href"))
                if fragment and target in by_path:
                    note_targets.setdefault(target, set()).add(fragment)

    def resolver(base: str):
        def resolve(href: str) -> str | None:
            target, fragment = package.resolve(base, href)
            if fragment and target in by_path and fragment in note_targets.get(target, ()):
                return f"{by_path[target].href}#{fragment}"
            return None

        return resolve

    images_with_alt = 0
    ref_labels: dict[str, str] = {}
    for doc in docs:
        for mark in top_marks.get(doc.path, []):
            ms.stream.append(mark)
        walker = Walker(
            WalkOptions(
                doc.href,
                alt_text,
                tables,
                split_ids.get(doc.path, {}),
                frozenset(note_targets.get(doc.path, ())),
                resolver(doc.path),
            )
        )
        walker.walk(doc.body, [2 * (_index(doc.body) + 1)])
        ms.stream.extend(walker.result.stream)
        ms.notes.update(walker.result.notes)
        ref_labels.update(walker.result.ref_labels)
        ms.skipped.extend(walker.result.skipped)
        images_with_alt += walker.result.images_with_alt
        ms.raw_parts[doc.href] = doc.raw_text()
    for key, label in ref_labels.items():
        if key in ms.notes and not ms.notes[key].label:
            ms.notes[key].label = label
    if images_with_alt and not alt_text:
        ms.remarks.append(f"{images_with_alt} image(s) have alt text that is not read (--alt-text reads it)")
    ms.remarks.append(
        f"chapters from the {'navigation document' if toc_source == 'nav' else toc_source.upper()}"
        if toc_source != "none"
        else "no usable table of contents: one chapter per document"
    )
    return ms


def _undefined_entities(tree: etree._ElementTree, where: str, ms: Manuscript) -> None:
    """The recovering parser keeps an undefined entity as an inert node, which nothing reads: say so."""
    found = [(e.text, e.sourceline) for e in tree.getroot().iter(etree.Entity)]
    if not found:
        return
    name, line = found[0]
    more = f" (and {len(found) - 1} more undefined entities)" if len(found) > 1 else ""
    ms.remarks.append(
        f"{where} line {line}: undefined entity {name} is left out of the text{more}; fix the book's XHTML to read it"
    )


def _index(el: etree._Element) -> int:
    parent = el.getparent()
    return [c for c in parent if isinstance(c.tag, str)].index(el) if parent is not None else 0


def _hints_at(doc: _Doc, element: etree._Element | None) -> set[str]:
    """Semantics that apply at a TOC target: the element, the sections around it, the body."""
    if element is None:
        return doc.hints()
    hints: set[str] = set()
    node = element
    while node is not None and node is not doc.body:
        if local(node) in ("section", "article", "div", "aside", "nav") or node is element:
            hints |= epub_types(node)
        node = node.getparent()
    return hints | (epub_types(doc.body) if doc.body is not None else set())


def _mark_front_matter(docs: list[_Doc], body_start: str, top_marks: dict[str, list[Mark]]) -> None:
    """Documents before the landmarks' start of the body are front matter unless they say otherwise."""
    for doc in docs:
        if doc.path == body_start:
            return
        marks = top_marks.get(doc.path)
        if marks and not any(h.split("=")[-1] in READ_KINDS for m in marks for h in m.hints):
            marks[-1].hints = frozenset(marks[-1].hints | {"landmark=frontmatter"})


def _looks_like_noteref(a: etree._Element) -> bool:
    if "noteref" in epub_types(a) or (a.getparent() is not None and "noteref" in epub_types(a.getparent())):
        return True
    text = "".join(a.itertext()).strip()
    if not text or len(text) > 6 or not set(text) <= _MARKER_CHARS | set("abcdefivxlc"):
        return False
    parent = a.getparent()
    in_sup = parent is not None and local(parent) == "sup"
    has_sup = any(isinstance(c.tag, str) and local(c) == "sup" for c in a)
    cls = (a.get("class") or "").lower()
    return in_sup or has_sup or any(k in cls for k in ("note", "fn", "ftn"))


def _cover(package: Package) -> tuple[bytes, str] | None:
    items = list(package.items.values())
    cover = next((i for i in items if "cover-image" in i.properties), None)
    if cover is None:
        meta = package.opf.getroot().xpath("//*[local-name()='meta'][@name='cover']/@content")
        cover = package.items.get(meta[0]) if meta else None
        if cover is None and meta:
            cover = next((i for i in items if i.path.endswith(meta[0])), None)
    if cover is None:
        cover = next((i for i in items if i.media_type.startswith("image/") and "cover" in i.path.lower()), None)
    if cover is None or cover.media_type not in _IMAGE_TYPES:
        return None
    try:
        return package.read(cover.path), _IMAGE_TYPES[cover.media_type]
    except IngestError:
        return None


__all__ = ["read_epub"]
