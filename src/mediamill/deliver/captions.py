"""Captions from the timeline: cues of the manifest's own text, timed by the words where verification timed them.

``cues(rows)`` turns each row's text into cues the way captioners do: at most
two lines of 42 characters, split at sentence, then clause, then word
boundaries, each on screen 1 to 7 seconds. A row's cues are timed by its word
timings (the recogniser's, shifted to where the row sits in the delivered
file) when they map onto the text; otherwise its speech is shared among its
cues by length. The cue text is always the manifest's, not the recogniser's.
``write_vtt`` and ``write_srt`` write WebVTT and SubRip files (with the
webvtt-py and srt libraries), atomically.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import srt
from webvtt import Caption, WebVTT

from ..core.files import write_bytes_atomic
from ..text.normalize import normalize
from ..text.split import split_text

LINE_CHARS = 42
CUE_CHARS = 2 * LINE_CHARS
MIN_CUE_S = 1.0
MAX_CUE_S = 7.0
GAP_S = 0.04  # between one cue's end and the next one's start


@dataclass(frozen=True)
class CaptionRow:
    """One row as delivered: its text, where its speech is in the file, and what may follow it."""

    text: str
    start_s: float
    end_s: float
    until_s: float  # where the next row starts (or the file ends): a short cue may stay up until then
    words: tuple[tuple[str, float, float], ...] | None = None  # (word, start, end), file time
    language: str | None = None


@dataclass(frozen=True)
class Cue:
    start_s: float
    end_s: float
    text: str  # one or two lines, "\n" between them


def wrap(text: str, width: int = LINE_CHARS) -> str:
    """One line, or two balanced lines (a break after punctuation preferred) for text longer than ``width``."""
    text = " ".join(text.split())
    if len(text) <= width:
        return text
    words = text.split(" ")
    best: tuple[float, int] | None = None
    for i in range(1, len(words)):
        first, second = " ".join(words[:i]), " ".join(words[i:])
        over = max(0, len(first) - width) + max(0, len(second) - width)
        score = over * 100 + abs(len(first) - len(second)) - (8 if first[-1] in ",;:.!?" else 0)
        if best is None or score < best[0]:
            best = (score, i)
    assert best is not None
    return " ".join(words[: best[1]]) + "\n" + " ".join(words[best[1] :])


def _chunks(text: str) -> list[str]:
    """Caption-sized pieces of a row's text, at sentence, clause or word boundaries."""
    return [p.text for p in split_text(text, CUE_CHARS, 0.0, 0.0)]


def _word_counts(chunks: list[str], language: str | None) -> list[int]:
    return [len(normalize(c, language or "en")) for c in chunks]


def _timed(row: CaptionRow, chunks: list[str]) -> list[tuple[float, float]]:
    """Each chunk's (start, end) in the file."""
    if row.words:
        counts = _word_counts(chunks, row.language)
        if sum(counts) == len(row.words) and all(counts):
            spans, i = [], 0
            for n in counts:
                first, last = row.words[i], row.words[i + n - 1]
                spans.append((first[1], last[2]))
                i += n
            return spans
    # No usable word timings: the row's speech shared among its chunks by length.
    total = sum(len(c) for c in chunks) or 1
    spans, at = [], row.start_s
    for c in chunks:
        end = at + (row.end_s - row.start_s) * len(c) / total
        spans.append((at, end))
        at = end
    return spans


def _split_long(text: str, start: float, end: float) -> list[tuple[str, float, float]]:
    """A chunk on screen longer than MAX_CUE_S, cut at word boundaries into shorter cues (by length)."""
    parts = math.ceil((end - start) / MAX_CUE_S)
    words = text.split()
    if parts <= 1 or len(words) < 2:
        return [(text, start, end)]
    parts = min(parts, len(words))
    size = math.ceil(len(words) / parts)
    pieces = [" ".join(words[i : i + size]) for i in range(0, len(words), size)]
    total = sum(len(p) for p in pieces)
    out, at = [], start
    for p in pieces:
        stop = at + (end - start) * len(p) / total
        out.append((p, at, stop))
        at = stop
    return out


def cues(rows: Sequence[CaptionRow]) -> list[Cue]:
    """The cues of every row, in order, none overlapping, each 1-7 s where the pauses allow."""
    made: list[tuple[str, float, float, float]] = []  # text, start, end, how far it may run
    for row in rows:
        chunks = _chunks(row.text)
        if not chunks:
            continue
        for chunk, (start, end) in zip(chunks, _timed(row, chunks)):
            for text, s, e in _split_long(chunk, start, end):
                made.append((text, s, e, row.until_s))
    out: list[Cue] = []
    for i, (text, start, end, until) in enumerate(made):
        limit = made[i + 1][1] - GAP_S if i + 1 < len(made) else until
        if end - start < MIN_CUE_S:
            end = min(start + MIN_CUE_S, max(end, limit))  # stay up into the pause, never over the next cue
        end = min(end, start + MAX_CUE_S)
        if out and start < out[-1].end_s:
            start = out[-1].end_s
        out.append(Cue(round(start, 3), round(max(end, start + 0.001), 3), wrap(text)))
    return out


def shifted(rows: Sequence[CaptionRow], offset_s: float) -> list[CaptionRow]:
    """The rows moved later by ``offset_s`` (speech placed after an intro, room tone added at the head)."""
    return [
        CaptionRow(
            r.text,
            r.start_s + offset_s,
            r.end_s + offset_s,
            r.until_s + offset_s,
            tuple((w, s + offset_s, e + offset_s) for w, s, e in r.words) if r.words else None,
            r.language,
        )
        for r in rows
    ]


def _clock(seconds: float) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def vtt_text(cue_list: Sequence[Cue]) -> str:
    vtt = WebVTT()
    for cue in cue_list:
        vtt.captions.append(Caption(_clock(cue.start_s), _clock(cue.end_s), cue.text))
    return vtt.content


def srt_text(cue_list: Sequence[Cue]) -> str:
    subs = [
        srt.Subtitle(i, datetime.timedelta(seconds=c.start_s), datetime.timedelta(seconds=c.end_s), c.text)
        for i, c in enumerate(cue_list, 1)
    ]
    return srt.compose(subs)


def write_vtt(path: Path, cue_list: Sequence[Cue]) -> Path:
    write_bytes_atomic(path, vtt_text(cue_list).encode("utf-8"))
    return path


def write_srt(path: Path, cue_list: Sequence[Cue]) -> Path:
    write_bytes_atomic(path, srt_text(cue_list).encode("utf-8"))
    return path
