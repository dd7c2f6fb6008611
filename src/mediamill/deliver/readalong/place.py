"""Placing rows in a content document: which element each row highlights, and its clips.

A row that is alone in its element highlights the element. Several rows in
one element (a paragraph split into sentences, or at ``--max-chars``) are
found in its text in order and each wrapped in ``<span id="mm-<row id>">``.
With word timings each word found in the row's text is wrapped in
``<span id="mm-<row id>-w<n>">`` and gets a clip (see ``smil``); a word the
text does not show (an engine reading "12" as "twelve") gives its time to the
word before it. Rows or words that cannot be found fall back to the coarser
target, with a warning.
"""

from __future__ import annotations

from lxml import etree

from .clock import ms
from .model import ReadalongRow
from .package import unique_id
from .smil import Clip, Group
from .spans import TextIndex, wrap

WORD_WINDOW = 48  # characters past the previous word in which the next word must appear


def _clip_ms(start_s: float, end_s: float) -> tuple[int, int]:
    begin = ms(start_s)
    return begin, max(begin + 1, ms(end_s))


def place_rows(
    items: list[tuple[ReadalongRow, etree._Element]],
    audio: dict[str, str],
    text_href: str,
    taken_ids: set[str],
    warnings: list[str],
) -> list[Group]:
    """Groups (SMIL) for ``(row, element)`` pairs of one document, in reading order.

    ``audio`` maps a row id to its audio src; ``text_href`` is the document's href from the SMIL file;
    ``taken_ids`` holds the document's ids (new ones are added)."""
    groups: list[Group] = []
    i = 0
    while i < len(items):
        element = items[i][1]
        j = i
        while j < len(items) and items[j][1] is element:
            j += 1
        run = [row for row, _ in items[i:j]]
        index = TextIndex(element)
        ranges: dict[str, tuple[int, int] | None] = {}  # row id: where its text is in the element, if found
        spans: dict[str, str] = {}  # row id: the span wrapped around that text
        if len(run) > 1:
            cursor = 0
            for row in run:
                found = index.find(row.text, cursor)
                ranges[row.id] = found
                if found:
                    cursor = found[1]
                else:
                    warnings.append(
                        f"row {row.id}: its text was not found in {text_href}#{element.get('id')}; "
                        "it highlights the whole element"
                    )
            for row in run:
                found = ranges[row.id]
                if found:
                    spans[row.id] = unique_id(f"mm-{row.id}", taken_ids)
                    wrap(element, *found, spans[row.id])
        for row in run:
            found = ranges.get(row.id)
            target = spans.get(row.id) or element.get("id")
            groups.append(_group(row, element, index, found, target, audio[row.id], text_href, taken_ids, warnings))
        i = j
    return groups


def _group(
    row: ReadalongRow,
    element: etree._Element,
    index: TextIndex,
    found: tuple[int, int] | None,
    target: str,
    audio: str,
    text_href: str,
    taken_ids: set[str],
    warnings: list[str],
) -> Group:
    begin, end = _clip_ms(row.start_s, row.end_s)
    if not row.words:
        return Group(f"p-{row.id}", [Clip(f"p-{row.id}", f"{text_href}#{target}", audio, begin, end)])
    lo, hi = (found[0], found[1]) if found else (0, len(index.text))
    cursor = lo
    placed: list[tuple[int, int, float]] = []  # (start, end, word start time)
    for word, w_start, _ in row.words:
        hit = index.find(word, cursor, min(hi, cursor + WORD_WINDOW + 2 * len(word)))
        if hit:
            placed.append((hit[0], hit[1], w_start))
            cursor = hit[1]
    if len(placed) < max(1, len(row.words) // 2):
        warnings.append(
            f"row {row.id}: fewer than half its timed words were found in the text; it is synchronised as one clip"
        )
        return Group(f"p-{row.id}", [Clip(f"p-{row.id}", f"{text_href}#{target}", audio, begin, end)])
    # Word clips tile the row's stretch: each word runs until the next one starts.
    bounds = [begin] + [min(max(ms(t), begin), end) for _, _, t in placed[1:]] + [end]
    for k in range(1, len(bounds)):
        bounds[k] = max(bounds[k], bounds[k - 1])
    clips: list[Clip] = []
    for n, (start, stop, _) in enumerate(placed):
        span_id = unique_id(f"mm-{row.id}-w{n + 1}", taken_ids)
        wrap(element, start, stop, span_id)
        clip_begin, clip_end = bounds[n], bounds[n + 1]
        if clip_end <= clip_begin:
            continue  # a word with no time of its own: the one before it covers it
        clips.append(Clip(f"p-{row.id}-w{n + 1}", f"{text_href}#{span_id}", audio, clip_begin, clip_end))
    if clips:
        clips[0].begin_ms = begin
        clips[-1].end_ms = end
    return Group(f"s-{row.id}", clips, textref=f"{text_href}#{target}")
