"""Finding a row's (or a word's) text inside an XHTML element, and wrapping it in ``<span id>``.

The element's visible text (script, style, ruby annotations and page-break
markers left out) is compared letter by letter, ignoring case, spacing and
punctuation, so the clean-ups made at import (ligatures, note markers,
soft hyphens) do not stop a match: the first 16 letters must match exactly,
the rest may skip up to 6 letters at a time (a dropped note marker). A match
is a range of characters of that visible text; ``wrap`` turns a range into a
``<span>``, splitting inline elements at the range's ends where needed
(``<em>a|b</em>`` becomes ``<em>a</em><span><em>b</em>...</span>``; the
second half of a split element drops its ``id``), so the text, its markup and
every id are kept.
"""

from __future__ import annotations

import bisect
import unicodedata
from dataclasses import dataclass

from lxml import etree

from ...epub.xhtml import epub_types, local

_SKIP = frozenset({"script", "style", "rt", "rp", "head", "template"})
PREFIX = 16
MAX_GAP = 6


@dataclass
class _Segment:
    node: etree._Element
    attr: str  # "text" or "tail"
    start: int  # index of its first character in the visible text


def _skipped(el: etree._Element) -> bool:
    return not isinstance(el.tag, str) or local(el) in _SKIP or "pagebreak" in epub_types(el)


def segments(root: etree._Element) -> tuple[list[_Segment], str]:
    """The visible text under ``root`` as segments (node, text|tail) and the joined string."""
    out: list[_Segment] = []
    parts: list[str] = []
    length = 0

    def add(node: etree._Element, attr: str, text: str | None) -> None:
        nonlocal length
        if text:
            out.append(_Segment(node, attr, length))
            parts.append(text)
            length += len(text)

    def visit(el: etree._Element, is_root: bool) -> None:
        if not _skipped(el):
            add(el, "text", el.text)
            for child in el:
                visit(child, False)
        if not is_root:
            add(el, "tail", el.tail)

    visit(root, True)
    return out, "".join(parts)


def _normalised(text: str) -> tuple[str, list[int]]:
    """Letters and digits only, case-folded, with each one's index in ``text``."""
    chars: list[str] = []
    where: list[int] = []
    for i, ch in enumerate(text):
        for n in unicodedata.normalize("NFKC", ch).casefold():
            if n.isalnum():
                chars.append(n)
                where.append(i)
    return "".join(chars), where


class TextIndex:
    """Search in an element's visible text; results are character ranges of that text."""

    def __init__(self, root: etree._Element):
        _, self.text = segments(root)
        self.norm, self.where = _normalised(self.text)

    def find(self, needle: str, start: int = 0, end: int | None = None) -> tuple[int, int] | None:
        """The range of ``needle`` at or after character ``start`` (and before ``end``), or None."""
        target, _ = _normalised(needle)
        if not target:
            return None
        lo = bisect.bisect_left(self.where, start)
        hi = bisect.bisect_left(self.where, end) if end is not None else len(self.norm)
        head = target[:PREFIX]
        at = self.norm.find(head, lo, hi)
        if at < 0:
            return None
        pos = at + len(head)
        for ch in target[len(head) :]:
            nxt = self.norm.find(ch, pos, min(hi, pos + MAX_GAP + 1))
            if nxt < 0:
                return None
            pos = nxt + 1
        begin, finish = self.where[at], self.where[pos - 1] + 1
        # Take in punctuation touching the match ("'Go on,' he said." keeps its quotes and full stop).
        limit = len(self.text) if end is None else end
        while begin > start and not self.text[begin - 1].isspace() and not self.text[begin - 1].isalnum():
            begin -= 1
        while finish < limit and not self.text[finish].isspace() and not self.text[finish].isalnum():
            finish += 1
        return begin, finish


def _run(parent: etree._Element, i: int) -> str:
    return (parent.text if i == 0 else parent[i - 1].tail) or ""


def _set_run(parent: etree._Element, i: int, value: str) -> None:
    if i == 0:
        parent.text = value or None
    else:
        parent[i - 1].tail = value or None


def _position(seg: _Segment, offset: int) -> tuple[etree._Element, int, int]:
    """(container, child index, offset): inside the text run before child ``index`` of ``container``."""
    if seg.attr == "text":
        return seg.node, 0, offset
    parent = seg.node.getparent()
    return parent, parent.index(seg.node) + 1, offset


def _lift(pos: tuple[etree._Element, int, int], top: etree._Element) -> tuple[etree._Element, int, int]:
    """The same point as a position directly in ``top``, splitting the elements in between."""
    parent, i, k = pos
    while parent is not top:
        grand = parent.getparent()
        j = grand.index(parent)
        run = _run(parent, i)
        if i == 0 and k == 0:
            parent, i, k = grand, j, len(_run(grand, j))
            continue
        if i == len(parent) and k == len(run):
            parent, i, k = grand, j + 1, 0
            continue
        clone = etree.Element(
            parent.tag, {a: v for a, v in parent.attrib.items() if a not in ("id",)}, nsmap=parent.nsmap
        )
        clone.text = run[k:] or None
        _set_run(parent, i, run[:k])
        for child in list(parent)[i:]:
            clone.append(child)
        clone.tail, parent.tail = parent.tail, None
        grand.insert(j + 1, clone)
        parent, i, k = grand, j + 1, 0
    return parent, i, k


def wrap(root: etree._Element, start: int, end: int, span_id: str) -> etree._Element:
    """Wrap characters ``[start, end)`` of ``root``'s visible text in a new ``<span id=span_id>``."""
    segs, text = segments(root)
    if not 0 <= start < end <= len(text):
        raise ValueError("range outside the element's text")
    starts = [s.start for s in segs]
    s_seg = segs[bisect.bisect_right(starts, start) - 1]
    e_seg = segs[bisect.bisect_right(starts, end - 1) - 1]
    s_pos = _position(s_seg, start - s_seg.start)
    e_pos = _position(e_seg, end - e_seg.start)
    s_chain = [s_pos[0], *s_pos[0].iterancestors()]
    e_chain = {id(n) for n in [e_pos[0], *e_pos[0].iterancestors()]}
    top = next(n for n in s_chain if id(n) in e_chain)
    e_pos = _lift(e_pos, top)
    s_pos = _lift(s_pos, top)
    _, i_s, k_s = s_pos
    _, i_e, k_e = e_pos
    ns = etree.QName(top).namespace
    span = etree.Element(f"{{{ns}}}span" if ns else "span", nsmap=top.nsmap)
    span.set("id", span_id)
    if i_s == i_e:
        run = _run(top, i_s)
        span.text, span.tail = run[k_s:k_e] or None, run[k_e:] or None
        _set_run(top, i_s, run[:k_s])
    else:
        run_s, run_e = _run(top, i_s), _run(top, i_e)
        moving = list(top)[i_s:i_e]
        span.text = run_s[k_s:] or None
        _set_run(top, i_s, run_s[:k_s])
        moving[-1].tail = run_e[:k_e] or None
        span.tail = run_e[k_e:] or None
        for child in moving:
            span.append(child)
    top.insert(i_s, span)
    return span
