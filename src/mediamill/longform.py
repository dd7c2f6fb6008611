"""Long-form speech: splitting text into pieces a TTS model reads well, and
judging whether generated audio is plausible for its text.

Speech models read one utterance per call and degrade on very long inputs
(VoxCPM's maintainers advise splitting beyond about two minutes of speech).
A chapter is split at sentence boundaries into pieces of at most
``max_chars``; a sentence longer than that is split at clause boundaries,
then at spaces. Pieces are read with the same voice prompt and joined with
short pauses (longer at paragraph breaks).

The duration check catches the two ways autoregressive TTS fails: stopping
early (truncated) and not stopping (babbling, often until the length cap).
"""

from __future__ import annotations

import math
import re
import unicodedata
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

# Words after which a full stop does not end a sentence.
_ABBREVIATIONS = {
    "mr", "mrs", "ms", "dr", "prof", "st", "sr", "jr", "vs", "etc", "no", "vol", "fig", "mt", "capt", "col",
    "gen", "lt", "sgt", "rev", "hon", "e.g", "i.e", "cf", "approx", "dept", "est", "inc", "ltd", "co",
}  # fmt: skip
_SENTENCE_END = re.compile(r"([.!?\u2026]+[\"'\u201d\u2019)\]]*)(\s+)|([\u3002\uff01\uff1f\uff1b]+[\u201d\u300d]?)")


@dataclass(frozen=True)
class Piece:
    text: str
    pause_after: float  # seconds of silence after this piece (0 for the last)


def _is_cjk(ch: str) -> bool:
    return unicodedata.east_asian_width(ch) in ("W", "F")


def _sentences(paragraph: str) -> list[str]:
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
    for index, paragraph in enumerate(paragraphs):
        sentences = [s for sentence in _sentences(paragraph) for s in _split_long(sentence, max_chars)]
        joined = _pack(sentences, max_chars, " ")
        for j, chunk in enumerate(joined):
            last_in_paragraph = j == len(joined) - 1
            pause = paragraph_pause_s if last_in_paragraph else pause_s
            pieces.append(Piece(chunk, pause))
    if pieces:
        pieces[-1] = Piece(pieces[-1].text, 0.0)
    return pieces


# Typical narration: about 14 Latin characters (2.5 words) per second; a
# CJK character is a syllable, about 4.5 per second; punctuation adds pauses.
LATIN_CHARS_PER_S = 14.0
CJK_CHARS_PER_S = 4.5


def predicted_seconds(text: str) -> float:
    """How long a typical reader takes to say ``text``."""
    latin = cjk = 0
    pauses = 0.0
    for ch in text:
        if ch.isspace():
            latin += 1
        elif _is_cjk(ch) and unicodedata.category(ch).startswith("L"):
            cjk += 1
        elif unicodedata.category(ch).startswith("P"):
            pauses += 0.25 if ch in ".!?\u3002\uff01\uff1f\u2026" else 0.1
        else:
            latin += 1
    return latin / LATIN_CHARS_PER_S + cjk / CJK_CHARS_PER_S + pauses


@dataclass(frozen=True)
class DurationCheck:
    """Bounds on plausible speech length, as ratios of the predicted length.

    The slacks keep very short texts ("Yes.") from being judged on ratios alone:
    a reader may pause or draw out a single word.
    """

    low: float = 0.35
    high: float = 3.0
    slack_s: float = 1.5  # above the upper bound
    low_slack_s: float = 0.3  # below the lower bound

    def bounds(self, text: str) -> tuple[float, float]:
        expected = predicted_seconds(text)
        return max(0.0, expected * self.low - self.low_slack_s), expected * self.high + self.slack_s

    def judge(self, duration_s: float, text: str, hit_cap: bool = False) -> str | None:
        """None when plausible, else why not ("truncated: ..." or "babbling: ...")."""
        low, high = self.bounds(text)
        expected = predicted_seconds(text)
        if hit_cap:
            return f"babbling: generation ran to its length cap ({duration_s:.1f} s for about {expected:.1f} s of text)"
        if duration_s > high:
            return f"babbling: {duration_s:.1f} s of audio for about {expected:.1f} s of text"
        if duration_s < low:
            return f"truncated: {duration_s:.1f} s of audio for about {expected:.1f} s of text"
        return None

    def max_seconds(self, text: str) -> float:
        return self.bounds(text)[1]


def steps_for(seconds: float, steps_per_s: float) -> int:
    return max(1, math.ceil(seconds * steps_per_s))


@dataclass(frozen=True)
class Take:
    """One generation of one piece: 16-bit mono PCM."""

    pcm: bytes
    sample_rate: int
    hit_cap: bool = False  # the engine ran to its length cap without deciding to stop

    @property
    def duration_s(self) -> float:
        return len(self.pcm) / 2 / self.sample_rate


@dataclass
class Reading:
    """What reading a text aloud took."""

    pieces: int = 0
    generations: int = 0  # every engine call, regenerations included
    regenerated: int = 0  # pieces that needed more than one take
    kept_bad: list[str] | None = None  # verdicts of pieces accepted although implausible
    duration_s: float = 0.0
    sample_rate: int = 0


class BadCaseError(Exception):
    """A piece stayed implausible after every allowed take."""


def read_pieces(
    pieces: list[Piece],
    take: Callable[[str, int], Take],
    check: DurationCheck,
    reading: Reading,
    max_takes: int = 3,
    keep_bad: bool = False,
) -> Iterator[tuple[Piece, Take]]:
    """Generate each piece (``take(text, attempt)``), judge it, and yield the take to keep.

    A piece judged implausible is generated again, up to ``max_takes`` times
    in all. Past that, reading fails (``BadCaseError``) unless ``keep_bad``,
    which keeps the take closest to the expected length and notes it in
    ``reading.kept_bad``.
    """
    for index, piece in enumerate(pieces):
        chosen = _best_take(piece, take, check, max_takes, reading)
        verdict = check.judge(chosen.duration_s, piece.text, chosen.hit_cap)
        if verdict:
            where = f"piece {index + 1} of {len(pieces)} ({_excerpt(piece.text)})"
            if not keep_bad:
                raise BadCaseError(f"{where}: {verdict}, after {max_takes} takes")
            reading.kept_bad.append(f"{where}: {verdict}")
        if not reading.sample_rate:
            reading.sample_rate = chosen.sample_rate
        elif chosen.sample_rate != reading.sample_rate:
            raise ValueError("the engine changed sample rate between pieces")
        reading.pieces += 1
        yield piece, chosen


def read_aloud(
    pieces: list[Piece],
    take: Callable[[str, int], Take],
    out: Path,
    check: DurationCheck,
    max_takes: int = 3,
    keep_bad: bool = False,
) -> Reading:
    """Read pieces into a WAV file, joined by their pauses (see ``read_pieces``).

    The file is written as pieces arrive, so a long chapter never sits in memory at once.
    """
    reading = Reading(kept_bad=[])
    wav: wave.Wave_write | None = None
    try:
        for piece, chosen in read_pieces(pieces, take, check, reading, max_takes, keep_bad):
            if wav is None:
                wav = wave.open(str(out), "wb")
                wav.setnchannels(1)
                wav.setsampwidth(2)
                wav.setframerate(chosen.sample_rate)
            wav.writeframes(chosen.pcm)
            wav.writeframes(silence(piece.pause_after, chosen.sample_rate))
        if wav is not None:
            reading.duration_s = wav.tell() / reading.sample_rate
    finally:
        if wav is not None:
            wav.close()
    return reading


def silence(seconds: float, sample_rate: int) -> bytes:
    return b"\0\0" * round(seconds * sample_rate)


def _best_take(piece: Piece, take: Callable[[str, int], Take], check: DurationCheck, max_takes: int, reading: Reading) -> Take:
    """The first plausible take, else the one closest to the predicted length."""
    expected = max(predicted_seconds(piece.text), 1e-3)
    best: tuple[float, Take] | None = None
    for attempt in range(max_takes):
        result = take(piece.text, attempt)
        reading.generations += 1
        if attempt == 1:
            reading.regenerated += 1
        if check.judge(result.duration_s, piece.text, result.hit_cap) is None:
            return result
        miss = abs(math.log(max(result.duration_s, 1e-3) / expected))
        if best is None or miss < best[0]:
            best = (miss, result)
    assert best is not None
    return best[1]


def _excerpt(text: str, width: int = 40) -> str:
    return repr(text if len(text) <= width else text[: width - 3] + "...")
