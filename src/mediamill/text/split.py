"""Splitting text into pieces a speech model reads well.

Speech models read one utterance per call and degrade on very long inputs
(VoxCPM's maintainers advise splitting beyond about two minutes of speech).
A text is split at sentence boundaries into pieces of at most ``max_chars``;
a sentence longer than that is split at clause boundaries, then at spaces.
Blank lines separate paragraphs, whose last piece gets the longer pause.
Abbreviations ("Dr.", "e.g.") and initials do not end a sentence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Words after which a full stop does not end a sentence.
_ABBREVIATIONS = {
    "mr",
    "mrs",
    "ms",
    "dr",
    "prof",
    "st",
    "sr",
    "jr",
    "vs",
    "etc",
    "no",
    "vol",
    "fig",
    "mt",
    "capt",
    "col",
    "gen",
    "lt",
    "sgt",
    "rev",
    "hon",
    "e.g",
    "i.e",
    "cf",
    "approx",
    "dept",
    "est",
    "inc",
    "ltd",
    "co",
}
_SENTENCE_END = re.compile(r"([.!?\u2026]+[\"'\u201d\u2019)\]]*)(\s+)|([\u3002\uff01\uff1f\uff1b]+[\u201d\u300d]?)")


@dataclass(frozen=True)
class Piece:
    text: str
    pause_after: float  # seconds of silence after this piece (0 for the last)


def sentences(paragraph: str) -> list[str]:
    """The sentences of one paragraph, in order, each stripped."""
    out: list[str] = []
    start = 0
    for m in _SENTENCE_END.finditer(paragraph):
        end = m.end(1) if m.group(1) else m.end(3)
        candidate = paragraph[start:end].strip()
        if m.group(1) and m.group(1).startswith(".") and len(m.group(1)) == 1:
            last_word = candidate[:-1].rsplit(None, 1)[-1].lower() if candidate[:-1].split() else ""
            # "Dr. Smith", "e.g. this", initials like "J. R. R." do not end a sentence.
            if last_word in _ABBREVIATIONS or (len(last_word) == 1 and last_word.isalpha()):
                continue
        if candidate:
            out.append(candidate)
        start = m.end()
    tail = paragraph[start:].strip()
    if tail:
        out.append(tail)
    return out


def _split_long(sentence: str, max_chars: int) -> list[str]:
    """A sentence over the limit: split at clause marks, then spaces, then anywhere."""
    if len(sentence) <= max_chars:
        return [sentence]
    clauses = [c for c in re.split(r"(?<=[,;:\u2014\u2013\uff0c\u3001\uff1a])\s*", sentence) if c.strip()]
    if len(clauses) > 1:
        return [p for c in _pack(clauses, max_chars, " ") for p in _split_long(c, max_chars)]
    words = sentence.split(" ")
    if len(words) > 1:
        packed = _pack(words, max_chars, " ")
        if all(len(p) <= max_chars for p in packed):
            return packed
        return [q for p in packed for q in _split_long(p, max_chars)]
    return [sentence[i : i + max_chars] for i in range(0, len(sentence), max_chars)]


def _pack(parts: list[str], max_chars: int, sep: str) -> list[str]:
    """Greedily join consecutive parts while they fit."""
    out: list[str] = []
    current = ""
    for part in parts:
        part = part.strip()
        if not part:
            continue
        joined = f"{current}{sep}{part}" if current else part
        if len(joined) <= max_chars or not current:
            current = joined
        else:
            out.append(current)
            current = part
    if current:
        out.append(current)
    return out


def split_text(text: str, max_chars: int, pause_s: float = 0.3, paragraph_pause_s: float = 0.7) -> list[Piece]:
    """Split text into pieces of at most ``max_chars`` characters, at natural boundaries.

    Whitespace inside a paragraph is collapsed; blank lines separate
    paragraphs, which get the longer pause.
    """
    if max_chars < 1:
        raise ValueError("max_chars must be at least 1")
    pieces: list[Piece] = []
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text)]
    paragraphs = [p for p in paragraphs if p]
    for paragraph in paragraphs:
        parts = [s for sentence in sentences(paragraph) for s in _split_long(sentence, max_chars)]
        joined = _pack(parts, max_chars, " ")
        for j, chunk in enumerate(joined):
            last_in_paragraph = j == len(joined) - 1
            pause = paragraph_pause_s if last_in_paragraph else pause_s
            pieces.append(Piece(chunk, pause))
    if pieces:
        pieces[-1] = Piece(pieces[-1].text, 0.0)
    return pieces
