"""Front and back matter: what a section is, and whether it is read by default.

A section is judged on, in order: its semantics at the source (``epub:type``
or ARIA role on the document or section, EPUB 3 landmarks, the EPUB 2 guide,
DOCX styles), its title ("Copyright", "Contents", "Also by ..."), then its
content (a short text with "©"/"All rights reserved"/"ISBN" is a copyright
page; a page that is mostly links to other documents is a contents page; a
page without words is a cover or image page; a very short page repeating the
book's title is a title page).

Skipped by default (``--keep KIND`` keeps a kind, ``--keep all`` keeps
everything): cover, title and half-title pages, copyright/imprint, contents
and other lists, dedication, epigraph pages, acknowledgments, about the
author, "also by", index, glossary, bibliography, colophon, appendices,
endnote sections. Read: foreword, preface, introduction, prologue, chapters,
parts, interludes, epilogue, afterword, conclusion. A section nothing
recognises is read.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

SKIPPED_KINDS = (
    "cover",
    "titlepage",
    "halftitlepage",
    "copyright-page",
    "toc",
    "dedication",
    "epigraph",
    "acknowledgments",
    "contributors",
    "seriespage",
    "index",
    "glossary",
    "bibliography",
    "colophon",
    "appendix",
    "endnotes",
    "frontmatter",
    "backmatter",
    "image-page",
)
READ_KINDS = (
    "foreword",
    "preface",
    "introduction",
    "prologue",
    "chapter",
    "part",
    "interlude",
    "epilogue",
    "afterword",
    "conclusion",
    "bodymatter",
)
_ALIASES = {
    "imprint": "copyright-page",
    "loi": "toc",
    "lot": "toc",
    "loa": "toc",
    "lov": "toc",
    "landmarks": "toc",
    "halftitle": "halftitlepage",
    "title-page": "titlepage",
    "rearnotes": "endnotes",
    "footnotes": "endnotes",
    "errata": "backmatter",
    "credits": "contributors",
    "other-credits": "contributors",
    "acknowledgements": "acknowledgments",
    "volume": "part",
    "division": "part",
}
_TITLES = [
    ("cover", r"(front )?cover( page| image)?"),
    ("halftitlepage", r"half[- ]?title( page)?"),
    ("titlepage", r"title( page)?"),
    ("copyright-page", r"copyright( page| notice| information)?|imprint|legal( notice)?|rights( and permissions)?"),
    ("toc", r"(table of )?contents|toc|list of (illustrations|figures|tables|maps)"),
    ("dedication", r"dedications?"),
    ("epigraph", r"epigraphs?"),
    ("acknowledgments", r"acknowledge?ments?|thanks"),
    ("contributors", r"about the (authors?|translators?|illustrators?|editors?)|contributors"),
    ("seriespage", r"(also|other (books|titles|works)|more|books) by .*|by the same authors?.*|also available.*"),
    ("index", r"(general |subject )?index"),
    ("glossary", r"glossary( of terms)?"),
    ("bibliography", r"bibliography|references|works cited|further reading|sources|selected reading"),
    ("colophon", r"colophon|about (this|the) (book|type|typeface)"),
    ("appendix", r"appendi(x|ces)\b.*"),
    ("endnotes", r"(end|foot)?notes|notes to the text"),
    ("foreword", r"foreword.*"),
    ("preface", r"preface.*"),
    ("introduction", r"introduction.*"),
    ("prologue", r"prologue.*"),
    ("epilogue", r"epilogue.*"),
    ("afterword", r"afterword.*"),
    ("interlude", r"interlude.*"),
]
_TITLE_PATTERNS = [(kind, re.compile(rf"^(?:{pattern})$", re.I)) for kind, pattern in _TITLES]
_COPYRIGHT = re.compile(r"\u00a9|\(c\)\s*\d{4}|copyright|all rights reserved|\bisbn\b", re.I)


@dataclass(frozen=True)
class Verdict:
    kind: str  # a kind from SKIPPED_KINDS or READ_KINDS, or "text" when nothing recognised it
    read: bool
    evidence: str  # "epub:type", "landmarks", "title", "content"

    def reason(self) -> str:
        return f"{self.kind.replace('-', ' ')} ({self.evidence})"


def normalise_kind(kind: str) -> str:
    kind = kind.lower().split(":")[-1]
    return _ALIASES.get(kind, kind)


def kind_from_title(title: str) -> str | None:
    cleaned = re.sub(r"[\s.:\u2014\u2013-]+$", "", " ".join(title.split())).strip("\"'\u201c\u201d ")
    for kind, pattern in _TITLE_PATTERNS:
        if pattern.match(cleaned):
            return kind
    return None


def classify(
    title: str,
    texts: list[str],
    hints: frozenset[str] = frozenset(),
    *,
    book_title: str | None = None,
    link_share: float = 0.0,
    images: int = 0,
    keep: frozenset[str] = frozenset(),
    headings: Sequence[str] = (),
    author: str | None = None,
) -> Verdict:
    """Decide what a section is and whether it is read; ``keep`` lists kinds to read anyway ("all": every one).

    ``texts`` are the section's text blocks, ``headings`` its headings (for the title-page test)."""
    verdict = _judge(title, texts, hints, book_title, link_share, images, list(headings), author)
    if not verdict.read and ("all" in keep or verdict.kind in keep):
        return Verdict(verdict.kind, True, verdict.evidence + ", kept")
    return verdict


def _judge(
    title: str,
    texts: list[str],
    hints: frozenset[str],
    book_title: str | None,
    link_share: float,
    images: int,
    headings: list[str],
    author: str | None,
) -> Verdict:
    # Hints are "kind" (epub:type, role, style), "landmark=kind" or "content=kind" (judged by the reader).
    origin = {normalise_kind(h.split("=", 1)[-1]): (h.split("=", 1)[0] if "=" in h else "epub:type") for h in hints}
    kinds = set(origin)
    by_title = kind_from_title(title) if title else None
    # A specific semantic wins over a generic one ("frontmatter" + title "Foreword" is a foreword).
    specific = [
        k for k in kinds if k in SKIPPED_KINDS + READ_KINDS and k not in ("frontmatter", "backmatter", "bodymatter")
    ]
    if specific:
        # The source's own markup outranks landmarks, which outrank the reader's content guesses;
        # at the same rank a skip kind outranks "chapter".
        rank = {"epub:type": 0, "style": 0, "landmark": 1, "content": 2}
        kind = sorted(specific, key=lambda k: (rank.get(origin[k], 0), k in READ_KINDS, k))[0]
        return Verdict(kind, kind in READ_KINDS, origin[kind])
    if by_title:
        return Verdict(by_title, by_title in READ_KINDS, "title")
    if kinds & {"frontmatter", "backmatter"}:
        kind = "frontmatter" if "frontmatter" in kinds else "backmatter"
        return Verdict(kind, False, origin[kind])
    words = sum(len(t.split()) for t in texts)
    joined = " ".join(texts)
    if words == 0:
        return Verdict("image-page" if images else "cover", False, "content: no words")
    if words < 400 and _COPYRIGHT.search(joined):
        return Verdict("copyright-page", False, "content: copyright notice")
    if link_share > 0.6 and len(texts) >= 3:
        return Verdict("toc", False, "content: mostly links")
    everything = " ".join([*headings, joined])
    names = [n for n in (book_title, author) if n and _squash(n)]
    if (
        names
        and words <= 40
        and any(_squash(n) in _squash(everything) for n in names)
        and ("opening" in kinds or _squash(book_title or "") in _squash(everything))
    ):
        return Verdict("titlepage", False, "content: the book's title and author alone")
    if "bodymatter" in kinds:
        return Verdict("bodymatter", True, origin["bodymatter"])
    return Verdict("text", True, "default")


def _squash(text: str) -> str:
    return re.sub(r"[\W_]+", "", text.casefold())
