"""Chapter lines in plain text and PDF: "Chapter 12", "CHAPTER XII", "Chapter Twelve", "PART ONE"...

``chapter_line(line)`` returns the mark level (1 for parts and books, 2 for
chapters and their kin) or None. Recognised, case-insensitively, on a line of
at most 80 characters:

- ``Part|Book|Volume`` + a number (digits, Roman numerals, number words
  up to ninety-nine, ordinals "the First"), with an optional title after
  ``.``, ``:`` or a dash -> level 1;
- ``Chapter|Chap.`` + a number as above, optional title -> level 2;
- ``Prologue``, ``Epilogue``, ``Preface``, ``Foreword``, ``Introduction``,
  ``Afterword``, ``Interlude`` (optionally followed by a title) -> level 2;
- a Roman numeral alone ("XII", "IV.") -> level 2, only when the caller saw
  at least three of them (``numeral_only=True``), as bare numerals also
  appear in lists.

``numbered_title(line)`` says whether a heading is a numbered title: "1. The
Cyclone", "VII. THE BLUE CARBUNCLE", "Adventure I. A Scandal in Bohemia" (a
word, a number, a full stop or colon, a title); meant for headings, where a
numbered list item cannot be.

``title_case`` turns an all-capitals heading into title case, keeping Roman
numerals in capitals ("CHAPTER XII" -> "Chapter XII").
"""

from __future__ import annotations

import re

_UNITS = (
    "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen".split()
)
_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()
_ORDINALS = "first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth last".split()
_NUMBER_WORD = (
    r"(?:(?:"
    + "|".join(_TENS)
    + r")(?:[- ](?:"
    + "|".join(_UNITS[:9])
    + r"))?|"
    + "|".join(sorted(_UNITS, key=len, reverse=True))
    + ")"
)
_NUMBER = rf"(?:\d{{1,3}}|[IVXLCDM]{{1,8}}|{_NUMBER_WORD}|(?:the\s+)?(?:{'|'.join(_ORDINALS)}))"
_REST = r"(?:\s*(?:[.:\u2014\u2013-]|\s)\s*.{0,70})?"
_PART = re.compile(rf"^(?:part|book|volume)\s+{_NUMBER}\.?{_REST}$", re.I)
_CHAPTER = re.compile(rf"^(?:chapter|chap\.)\s+{_NUMBER}\.?{_REST}$", re.I)
_NAMED = re.compile(
    r"^(?:prologue|epilogue|preface|foreword|introduction|afterword|interlude)\b(?:\s*[.:\u2014-].{0,70})?$", re.I
)
_NUMERAL = re.compile(r"^[IVXLCDM]{1,8}\.?$")
_NUMBERED = re.compile(r"^(?:[^\W\d_]+\s+)?(?:\d{1,3}|[IVXLC]{1,8})[.:]\s+[^\W\d_].{0,75}$")
_ROMAN_WORD = re.compile(r"^[IVXLCDM]+[.:]?$")


def chapter_line(line: str, numeral_only: bool = False) -> int | None:
    line = " ".join(line.split())
    if not line or len(line) > 80:
        return None
    if _PART.match(line):
        return 1
    if _CHAPTER.match(line) or _NAMED.match(line):
        return 2
    if numeral_only and _NUMERAL.match(line):
        return 2
    return None


def numbered_title(line: str) -> bool:
    return bool(_NUMBERED.match(" ".join(line.split())))


def is_numeral_line(line: str) -> bool:
    return bool(_NUMERAL.match(line.strip()))


def title_case(line: str) -> str:
    if any(c.islower() for c in line):
        return line
    words = []
    for word in line.split():
        words.append(
            word
            if _ROMAN_WORD.match(word) and word not in ("I", "MIX", "DID", "MID", "LID", "CIVIL")
            else word.capitalize()
        )
    return " ".join(words)


def looks_like_subtitle(line: str) -> bool:
    """A short line after a chapter line that names the chapter ("The Boy Who Lived")."""
    line = line.strip()
    if not line or len(line) > 70 or line[-1] in ".,;!?\"'\u201d\u2019" or chapter_line(line):
        return False
    words = [w for w in re.findall(r"[^\W\d_]+", line)]
    if not words:
        return False
    small = {"a", "an", "the", "of", "in", "on", "and", "or", "to", "at", "by", "for", "with", "from", "de", "la"}
    return line.isupper() or all(w[0].isupper() or w.lower() in small for w in words)
