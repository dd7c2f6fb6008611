"""Reading a text aloud piece by piece, with bad-case retakes: the recipe and the loop piece-wise engines share.

A ``Recipe`` is how one text is read: its pieces (``pieces_of``), the length
check each take must pass (``length_check``) and the seed of every take
(``take_seed``). A check by ear reaches the loop as ``hear`` (see ``hearing``),
an argument like any other.

An engine that reads one utterance per call (local VoxCPM, a VoxCPM server)
gives a ``take(text, attempt)`` function; each piece is generated, judged
by the duration check, and generated again with another attempt number when
implausible, up to ``max_takes``. The result is written to a WAV file as
pieces arrive, so a long chapter never sits in memory at once.
"""

from __future__ import annotations

import math
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..text.pace import predicted_seconds
from ..text.split import Piece, split_text
from ..verify.duration import DurationCheck
from ..verify.takes import PieceCheck, TakeCheck

# How far a retake moves an engine's seed: of one piece (a bad case read again), of a whole row (failed by ear).
# Two primes, so no piece retake of one row take lands on another row take's seed.
PIECE_SEED_STEP = 7919
RETAKE_SEED_STEP = 104_729


def take_seed(seed: int, attempt: int = 0, take: int = 0) -> int:
    """The seed of a piece's ``attempt``-th reading within a row's ``take``-th take: every reading draws another
    voice, and the same (seed, attempt, take) always the same one."""
    return seed + attempt * PIECE_SEED_STEP + take * RETAKE_SEED_STEP


def pieces_of(text: str, settings) -> list[Piece]:
    """``text`` split as an engine's settings ask (``max_chars``, ``piece_pause_s``, ``paragraph_pause_s``)."""
    return split_text(text, settings.max_chars, settings.piece_pause_s, settings.paragraph_pause_s)


def length_check(settings) -> DurationCheck:
    """The duration check an engine's settings ask for (``min_ratio``, ``max_ratio``)."""
    return DurationCheck(low=settings.min_ratio, high=settings.max_ratio)


@dataclass(frozen=True)
class Recipe:
    """How one text is read: its pieces, the length check every take must pass, and the seed of every take."""

    pieces: list[Piece]
    check: DurationCheck
    seed: int
    take: int = 0  # the row's take (0, then 1, 2... when a row is read again after failing by ear)

    def seed_of(self, attempt: int) -> int:
        """The seed of a piece's ``attempt``-th reading (see ``take_seed``)."""
        return take_seed(self.seed, attempt, self.take)


def recipe(text: str, settings, seed: int, take: int = 0) -> Recipe:
    """The recipe an engine's settings give for reading ``text`` from ``seed`` (see ``pieces_of``, ``length_check``)."""
    return Recipe(pieces_of(text, settings), length_check(settings), seed, take)


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
    checks: list[tuple[float, TakeCheck]] = field(default_factory=list)  # (piece start, its check), when heard


class BadCaseError(Exception):
    """A piece stayed implausible after every allowed take."""


# Heard: a piece's take is checked against the piece's text (``hearing`` makes one from a job's ``check_piece``).
Hear = Callable[[Take, str], TakeCheck]


def read_pieces(
    pieces: list[Piece],
    take: Callable[[str, int], Take],
    check: DurationCheck,
    reading: Reading,
    max_takes: int = 3,
    keep_bad: bool = False,
    hear: Hear | None = None,
) -> Iterator[tuple[Piece, Take, TakeCheck | None]]:
    """Generate each piece (``take(text, attempt)``), judge it, and yield the take to keep with its check.

    A piece judged implausible (too short or too long for its text, or, with
    ``hear``, not saying its text) is generated again, up to ``max_takes``
    times in all. Past that, a piece of implausible length fails the reading
    (``BadCaseError``) unless ``keep_bad``, which keeps the take closest to the
    expected length and notes it in ``reading.kept_bad``; a piece that only
    failed its check keeps its best take, and the check says so.
    """
    for index, piece in enumerate(pieces):
        chosen, heard = _best_take(piece, take, check, max_takes, reading, hear)
        verdict = check.judge(chosen.duration_s, piece.text, chosen.hit_cap)
        if verdict:
            where = f"piece {index + 1} of {len(pieces)} ({_excerpt(piece.text)})"
            if not keep_bad:
                raise BadCaseError(f"{where}: {verdict}, after {max_takes} takes")
            assert reading.kept_bad is not None  # every caller passes Reading(kept_bad=[])
            reading.kept_bad.append(f"{where}: {verdict}")
        if not reading.sample_rate:
            reading.sample_rate = chosen.sample_rate
        elif chosen.sample_rate != reading.sample_rate:
            raise ValueError("the engine changed sample rate between pieces")
        reading.pieces += 1
        yield piece, chosen, heard


def hearing(piece_check: PieceCheck | None, scratch: Path) -> Hear | None:
    """A ``hear`` for ``read_pieces`` from a file-based check: each take is written to ``scratch`` first."""
    if piece_check is None:
        return None
    counter = iter(range(1 << 30))

    def hear(chosen: Take, text: str) -> TakeCheck:
        path = scratch / f".piece-{next(counter)}.wav"
        _write_wav(path, chosen.pcm, chosen.sample_rate)
        try:
            return piece_check(path, text)
        finally:
            path.unlink(missing_ok=True)

    return hear


def _write_wav(path: Path, pcm: bytes, sample_rate: int) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(pcm)


def read_aloud(
    pieces: list[Piece],
    take: Callable[[str, int], Take],
    out: Path,
    check: DurationCheck,
    max_takes: int = 3,
    keep_bad: bool = False,
    hear: Hear | None = None,
) -> Reading:
    """Read pieces into a WAV file, joined by their pauses (see ``read_pieces``).

    The file is written as pieces arrive, so a long chapter never sits in memory at once;
    with ``hear``, each piece's check is kept in ``reading.checks`` at the piece's start.
    """
    reading = Reading(kept_bad=[])
    wav: wave.Wave_write | None = None
    try:
        for piece, chosen, heard in read_pieces(pieces, take, check, reading, max_takes, keep_bad, hear):
            if wav is None:
                wav = wave.open(str(out), "wb")
                wav.setnchannels(1)
                wav.setsampwidth(2)
                wav.setframerate(chosen.sample_rate)
            if heard is not None:
                reading.checks.append((wav.tell() / chosen.sample_rate, heard))
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


def _best_take(
    piece: Piece,
    take: Callable[[str, int], Take],
    check: DurationCheck,
    max_takes: int,
    reading: Reading,
    hear: Hear | None = None,
) -> tuple[Take, TakeCheck | None]:
    """The first take of plausible length that says its text; else the best: said best, then closest in length."""
    expected = max(predicted_seconds(piece.text), 1e-3)
    best: tuple[tuple, Take, TakeCheck | None] | None = None
    for attempt in range(max_takes):
        result = take(piece.text, attempt)
        reading.generations += 1
        if attempt == 1:
            reading.regenerated += 1
        miss = abs(math.log(max(result.duration_s, 1e-3) / expected))
        if check.judge(result.duration_s, piece.text, result.hit_cap) is None:
            heard = hear(result, piece.text) if hear is not None else None
            if heard is None or heard.passed or not heard.judged:
                return result, heard
            rank: tuple = (0, *heard.badness(), miss)
        else:
            heard, rank = None, (1, 0.0, 0.0, 0.0, miss)
        if best is None or rank < best[0]:
            best = (rank, result, heard)
    assert best is not None
    return best[1], best[2]


def _excerpt(text: str, width: int = 40) -> str:
    return repr(text if len(text) <= width else text[: width - 3] + "...")
