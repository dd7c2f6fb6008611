"""Text clean-up shared by every reader: what a narrator should see, nothing else.

``clean_text`` folds typographic ligatures (U+FB00-FB06) into letters, turns
every kind of space (NBSP, thin, narrow, tabs, line breaks) into one plain
space, and drops invisible characters (soft hyphens, zero-width spaces, word
joiners, BOMs, control characters; zero-width joiners stay: some scripts need
them). ``strip_note_markers`` removes footnote markers that survive as plain
text: ``[1]``, ``[^note]``, ``[*]``, ``*``/``†``/``‡`` glued to a word, and
superscript digits after a word. Readers that see markup (EPUB, HTML, DOCX,
Markdown) drop marker elements before this.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable

_LIGATURES = {
    "\ufb00": "ff",
    "\ufb01": "fi",
    "\ufb02": "fl",
    "\ufb03": "ffi",
    "\ufb04": "ffl",
    "\ufb05": "st",
    "\ufb06": "st",
    "\u0132": "IJ",
    "\u0133": "ij",
}
_INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u200b\u2060\ufeff\u180e\u2061\u2062\u2063\u2064\u200e\u200f"))
_TRANSLATE = {**{ord(k): v for k, v in _LIGATURES.items()}, **_INVISIBLE}
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SPACES = re.compile(r"[\s\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+")

_BRACKET_MARKER = re.compile(r"\s?\[(?:\d{1,4}|[*\u2020\u2021]+|\^[\w-]{1,20})\]")
_GLUED_SYMBOL = re.compile(r"(?<=[\w.,;:!?\"'\u2019\u201d)\]])[*\u2020\u2021]+(?=[\s.,;:!?\"'\u2019\u201d)]|$)")
_SUPERSCRIPT = re.compile(r"(?:(?<=[^\W\d_]{2})|(?<=[.,;:!?\"'\u2019\u201d)]))[\u00b9\u00b2\u00b3\u2070-\u2079]+")
_SCENE_BREAK = re.compile(
    r"^[\s*#~\u2022\u00b7\u2042\u00a7\u25c6\u25c7\u2766\u2767\u2619\u2726\u2727=_\-\u2013\u2014.xX]+$"
)
_WORD = re.compile(r"[^\W_]+(?:['\u2019\-][^\W_]+)*")


def clean_text(text: str) -> str:
    """One line of readable text: see the module docstring."""
    text = unicodedata.normalize("NFC", text.translate(_TRANSLATE))
    text = _CONTROL.sub(" ", text)
    return _SPACES.sub(" ", text).strip()


def strip_note_markers(text: str) -> str:
    text = _BRACKET_MARKER.sub("", text)
    text = _GLUED_SYMBOL.sub("", text)
    return _SUPERSCRIPT.sub("", text)


def is_scene_break(text: str) -> bool:
    """ "* * *", "#", "~~~", "⁂" and the like, of any length: a pause, not words (an "x" alone or "..." too).

    A line of nothing but such marks has nothing to read however long it is (Gutenberg's Alice spaces twenty
    asterisks across 39 characters), so it is a break, never a row a run would refuse."""
    stripped = text.strip()
    if not stripped or not _SCENE_BREAK.match(stripped):
        return False
    return not any(ch.isalnum() and ch not in "xX" for ch in stripped) and stripped.lower() not in ("x",)


def words(text: str) -> list[str]:
    """Words as a person counts them: "well-known" and "don't" are one word each."""
    return _WORD.findall(text)


def word_count(text: str) -> int:
    return len(_WORD.findall(text))


def word_bag(texts: Iterable[str]) -> Counter[str]:
    bag: Counter[str] = Counter()
    for text in texts:
        bag.update(w.casefold() for w in _WORD.findall(clean_text(text)))
    return bag
