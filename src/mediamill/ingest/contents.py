"""A table of contents inside an HTML page: found, its targets named, and taken out of the text.

``name_anchors(body)`` gives every ``<a name="x">`` without an id the id
``x`` (HTML 4 marks its targets so; links to ``#x`` mean either).
``find_contents(body, own)`` returns the page's contents lists: runs of at
least three links to ``#fragment``s of the page (or ``<own>#fragment``),
with at most a few words between consecutive links (the chapter numbers, the
titles beside the links), whose targets lie after the run, mostly in the
order listed, and whose element (a table, a ``<pre>``, a list, a
``<blockquote>`` of paragraphs, or the run of paragraphs holding the links)
holds little text beyond the run's. A heading
or paragraph "Contents" just before it belongs to it. Footnote markers never
qualify (their gaps are paragraphs of text) and neither do back-links or an
index (their targets lie before them). ``remove(elements)`` takes a list out
of the text, leaving the tree's shape (and so every other anchor) as it was.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote

from lxml import etree

from ..epub.xhtml import local
from .clean import clean_text, word_count
from .matter import kind_from_title

MAX_GAP = 25  # words between two links of one list: a number, a title beside its link
SLACK = 12  # words a list's element may hold beyond the run: its "Contents" title, a note
_SKIP = frozenset({"script", "style", "head", "template"})
_TEXT_BLOCKS = frozenset("p div center h1 h2 h3 h4 h5 h6 li dt dd td th caption pre blockquote".split())
_ILLUSTRATIONS = re.compile(r"illustrations|figures|plates|maps|tables|pictures", re.I)


@dataclass
class Contents:
    """One contents list: its links in order, the elements it occupies, its title."""

    links: list[tuple[str, str]]  # (target id, link text), in the list's order
    elements: list[etree._Element] = field(default_factory=list)  # in document order, the title's first
    title: str = ""
    words: int = 0

    def lists_chapters(self) -> bool:
        """A list of illustrations or maps links to pictures, not to where chapters start."""
        return not _ILLUSTRATIONS.search(self.title)


def name_anchors(body: etree._Element) -> None:
    ids = {e.get("id") for e in body.iter() if isinstance(e.tag, str) and e.get("id")}
    for a in body.iter("a"):
        name = a.get("name")
        if name and not a.get("id") and name not in ids:
            a.set("id", name)
            ids.add(name)


def find_contents(body: etree._Element, own: str = "") -> list[Contents]:
    """The page's contents lists, in document order; ``own`` is the page's file name (links may use it)."""
    targets: dict[str, etree._Element] = {}
    order: dict[etree._Element, int] = {}
    for i, el in enumerate(e for e in body.iter() if isinstance(e.tag, str)):
        order[el] = i
        if el.get("id"):
            targets.setdefault(el.get("id"), el)
    found = []
    words = _Words()
    for run, run_words in _runs(body, targets, own):
        contents = _judge(run, run_words, targets, order, body, own, words)
        if contents is not None:
            found.append(contents)
    return found


def remove(elements: list[etree._Element], keep_tail: bool = True) -> None:
    """Take ``elements`` out of the text: each becomes an empty ``<template>`` (which nothing reads), so the
    anchors of what follows still count the elements the file has; the text after each (its tail) stays
    unless ``keep_tail`` is false."""
    for el in elements:
        parent = el.getparent()
        if parent is None or local(el) == "template":
            continue
        stand_in = etree.Element("template")
        stand_in.tail = el.tail if keep_tail else None
        parent.replace(el, stand_in)


class _Words:
    """Words under an element, counted once each (many lists may sit in one long container)."""

    def __init__(self) -> None:
        self._known: dict[etree._Element, int] = {}

    def __call__(self, el: etree._Element) -> int:
        if el not in self._known:
            self._known[el] = word_count(el.text_content())
        return self._known[el]


def _link_target(el: etree._Element, targets: dict[str, etree._Element], own: str) -> str | None:
    """The id a link points to in this page ("#x", or "<this file's name>#x"), if the page has it."""
    page, _, fragment = (el.get("href") or "").strip().partition("#")
    if page and unquote(page).rsplit("/", 1)[-1] != own:
        return None
    fragment = unquote(fragment)
    return fragment if fragment in targets else None


def _runs(body: etree._Element, targets: dict[str, etree._Element], own: str):
    """(links, words in and between them) for each run of links with short gaps, in document order."""
    runs: list[tuple[list[etree._Element], int]] = []
    current: list[etree._Element] = []
    aims: set[str] = set()  # the current run's targets
    state = {"gap": 0, "words": 0}

    def close() -> None:
        if len(current) >= 3:
            runs.append((list(current), state["words"]))
        current.clear()
        aims.clear()
        state["words"] = 0

    def text(value: str | None, in_link: bool) -> None:
        n = word_count(value) if value and value.strip() else 0
        if not n:
            return
        if in_link:
            state["words"] += n
        else:
            state["gap"] += n
            if current and state["gap"] <= MAX_GAP:
                state["words"] += n

    def visit(el: etree._Element, in_link: bool) -> None:
        for child in el:
            if isinstance(child.tag, str) and local(child) not in _SKIP:
                if child.get("id") in aims:
                    close()  # the list's first chapter has begun: the list is over
                target = _link_target(child, targets, own) if local(child) == "a" and not in_link else None
                if target is not None:
                    if not current or state["gap"] > MAX_GAP:
                        close()
                    current.append(child)
                    aims.add(target)
                    state["gap"] = 0
                text(child.text, in_link or target is not None)
                visit(child, in_link or target is not None)
            text(child.tail, in_link)

    text(body.text, False)
    visit(body, False)
    close()
    return runs


def _judge(
    run: list[etree._Element],
    run_words: int,
    targets: dict[str, etree._Element],
    order: dict[etree._Element, int],
    body: etree._Element,
    own: str,
    words: _Words,
) -> Contents | None:
    links: list[tuple[str, str]] = []
    seen: set[str] = set()
    for a in run:
        fragment = _link_target(a, targets, own)
        assert fragment is not None  # _runs keeps only links with a target here
        if fragment not in seen:
            seen.add(fragment)
            links.append((fragment, clean_text(a.text_content())))
    if len(links) < 3:
        return None
    end = order[run[-1]]
    places = [order[targets[f]] for f, _ in links]
    if sum(p > end for p in places) < 0.9 * len(places):
        return None  # back-links, an index: their targets come before them
    if sum(b > a for a, b in zip(places, places[1:])) < 0.8 * (len(places) - 1):
        return None
    region = _region(run, run_words, body, words)
    if region is None:
        return None
    contents = Contents(links, region, words=sum(words(e) for e in region))
    title_el = _previous_text_block(region[0], body)
    if title_el is not None and kind_from_title(clean_text(title_el.text_content())) == "toc":
        contents.elements.insert(0, title_el)
        contents.title = clean_text(title_el.text_content())
        contents.words += word_count(contents.title)
    else:
        leaves = _leaf_blocks(region[0])
        lead = clean_text(leaves[0].text_content()) if leaves else ""
        contents.title = lead if kind_from_title(lead) == "toc" else "Contents"
    return contents


def _region(
    run: list[etree._Element], run_words: int, body: etree._Element, words: _Words
) -> list[etree._Element] | None:
    """The elements the run occupies: one element, or the siblings from the first link's to the last's."""
    shared = set(run[0].iterancestors())
    for a in run[1:]:
        shared &= set(a.iterancestors())
    common = next((el for el in run[0].iterancestors() if el in shared), None)
    if common is None:
        return None
    budget = run_words + SLACK
    if common is not body and words(common) <= budget:
        region = [common]
    else:
        children = [c for c in common if isinstance(c.tag, str)]
        holders = [next(c for c in children if c is a or c in a.iterancestors()) for a in (run[0], run[-1])]
        span = children[children.index(holders[0]) : children.index(holders[1]) + 1]
        if sum(words(c) for c in span) > budget:
            return None
        region = span
    # A wrapper around the list that holds little else (<div class="toc"> around a table) goes too.
    while len(region) == 1:
        parent = region[0].getparent()
        if parent is None or parent is body:
            break
        if words(parent) > words(region[0]) + 5:
            break
        region = [parent]
    return region


def _leaf_blocks(el: etree._Element) -> list[etree._Element]:
    """The text-holding blocks in ``el`` (itself included) that hold no other, in document order."""
    blocks = [
        d for d in el.iter() if isinstance(d.tag, str) and local(d) in _TEXT_BLOCKS and clean_text(d.text_content())
    ]
    members = set(blocks)
    holders = {anc for b in blocks for anc in b.iterancestors() if anc in members}
    return [b for b in blocks if b not in holders]


def _previous_text_block(el: etree._Element, body: etree._Element) -> etree._Element | None:
    """The innermost text-holding block just before ``el`` in reading order (its title, if it has one)."""
    node = el
    while node is not None and node is not body:
        for sib in node.itersiblings(preceding=True):
            if not isinstance(sib.tag, str):
                continue
            if (sib.tail or "").strip():
                return None  # loose text in between
            if local(sib) in _SKIP or not clean_text(sib.text_content()):
                continue
            leaves = _leaf_blocks(sib)
            return leaves[-1] if leaves else None
        parent = node.getparent()
        if parent is not None and (parent.text or "").strip():
            return None
        node = parent
    return None
