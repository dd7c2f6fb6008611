"""Blocks -> row texts, with the pause after each.

``--unit paragraph`` makes one row per block; a block longer than
``max_chars`` is split at sentence boundaries (then clauses, then words) into
rows of at most ``max_chars``. ``--unit sentence`` makes one row per sentence
(a sentence over the limit is split the same way). Sentences follow
mediamill's splitter: "Dr. Smith", "e.g." and initials do not end one.

Pauses (seconds of silence after the row, the manifest's ``pause_after``):

=====================================  =====
between sentences of one paragraph      0.3
after a paragraph                       0.6
after a heading                         1.0
before a scene break ("* * *", <hr/>)   1.5
after a chapter's last row              2.0
=====================================  =====

Heading rows are spoken forms of the heading: a Roman numeral after
"Chapter", "Part" or "Book" becomes digits ("Chapter XII" is read "Chapter
12"), and a final full stop is added so engines close the phrase.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..text.split import sentences, split_text
from .model import Block, Chapter

PAUSE_SENTENCE = 0.3
PAUSE_PARAGRAPH = 0.6
PAUSE_HEADING = 1.0
PAUSE_SCENE = 1.5
PAUSE_CHAPTER = 2.0

_ROMAN = re.compile(r"\b(chapter|part|book|volume|act|canto)\s+([IVXLCDM]+)\b", re.I)
_ROMAN_VALUES = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100, "D": 500, "M": 1000}


@dataclass
class RowText:
    text: str
    source: str
    kind: str  # the block kind it came from
    pause_after: float
    from_body: bool = True  # False for note texts read at the chapter's end


def roman_to_int(numeral: str) -> int | None:
    numeral = numeral.upper()
    if not numeral or any(c not in _ROMAN_VALUES for c in numeral):
        return None
    total = 0
    for a, b in zip(numeral, numeral[1:] + " "):
        value = _ROMAN_VALUES[a]
        total += -value if b != " " and _ROMAN_VALUES[b] > value else value
    return total if total > 0 and _int_to_roman(total) == numeral else None


def _int_to_roman(n: int) -> str:
    out = ""
    for value, sym in (
        (1000, "M"),
        (900, "CM"),
        (500, "D"),
        (400, "CD"),
        (100, "C"),
        (90, "XC"),
        (50, "L"),
        (40, "XL"),
        (10, "X"),
        (9, "IX"),
        (5, "V"),
        (4, "IV"),
        (1, "I"),
    ):
        while n >= value:
            out, n = out + sym, n - value
    return out


def spoken_heading(text: str) -> str:
    def repl(match: re.Match[str]) -> str:
        number = roman_to_int(match.group(2))
        return f"{match.group(1)} {number}" if number else match.group(0)

    text = _ROMAN.sub(repl, text)
    return text if text[-1:] in ".!?\u2026:" else text + "."


def pieces(text: str, unit: str, max_chars: int) -> list[str]:
    if unit == "sentence":
        return [p.text for s in sentences(text) for p in split_text(s, max_chars)]
    return [p.text for p in split_text(text, max_chars)]


def chapter_rows(chapter: Chapter, unit: str, max_chars: int, headings: bool, notes: list[Block]) -> list[RowText]:
    rows: list[RowText] = []
    blocks = [b for b in chapter.blocks if headings or b.kind != "heading"]
    if headings and chapter.title and not any(b.kind == "heading" for b in blocks[:1]):
        blocks.insert(0, Block("heading", chapter.title, chapter.source, 1))
    for block, from_body in [*((b, True) for b in blocks), *((n, False) for n in notes)]:
        text = spoken_heading(block.text) if block.kind == "heading" else block.text
        parts = pieces(text, "paragraph" if block.kind == "heading" else unit, max_chars)
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if not last:
                pause = PAUSE_SENTENCE
            elif block.kind == "heading":
                pause = PAUSE_HEADING
            else:
                pause = PAUSE_SCENE if block.break_after else PAUSE_PARAGRAPH
            rows.append(RowText(part, block.source, block.kind, pause, from_body))
    if rows:
        rows[-1].pause_after = PAUSE_CHAPTER
    return rows
