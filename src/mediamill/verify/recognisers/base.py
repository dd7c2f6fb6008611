"""The one small protocol every speech recogniser implements.

A recogniser turns a take into timed words. It is told the text the take
should say (``hint``), and may use it as it can: a grammar engine
(pocketsphinx) decodes *against* it, so it can only hear the hint's words, in
order, with gaps for missing ones, plus ``UNKNOWN`` words where it hears
speech the hint does not cover; a free engine (Whisper) transcribes, and may
use the hint as preceding context. Judging what was heard against the text is the
judge's work, not the recogniser's.

Contract:

- ``name``: a stable engine name (it goes into results as ``verify_engine``).
- ``languages``: ISO 639-1 codes it can hear.
- ``transcribe(audio_path, language, hint=None) -> Transcript``: words in
  time order, each with start/end seconds and a confidence in 0-1 (None when
  the engine has none). ``hint`` is the expected text as normalised spans
  (``text_normalize.spans``) or plain words. An engine that needs a hint raises
  ``RecogniserError`` without one. Unreadable audio raises ``AudioError``, and
  so does a take longer than ``MEDIAMILL_VERIFY_MAX_SECONDS`` (engines read
  takes with ``take_pcm``, which stops decoding there); an engine that is
  missing or misconfigured raises ``RecogniserError``.

``Transcript.reading`` is, for grammar engines, the reading of the hint that
the engine followed (e.g. "nineteen ninety nine" for "1999"), so the judge
compares against what was actually chosen; free engines leave it None.
``Transcript.unchecked`` lists hint words the engine could not listen for (no
pronunciation); the judge neither misses them nor counts the speech in their
place as extra.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from ...config import settings
from ...media.pcm import AudioTooLong, pcm16k
from ...text.normalize import Span

UNKNOWN = "<unk>"  # a word of speech the engine heard but the hint does not cover


class RecogniserError(RuntimeError):
    """The engine is not installed, not configured, or failed on the take."""


class NoMatch(RecogniserError):
    """A grammar engine found no way at all to hear the text in the take, even with words skipped."""


@dataclass(frozen=True)
class Word:
    text: str
    start_s: float
    end_s: float
    confidence: float | None = None


@dataclass
class Transcript:
    engine: str
    words: list[Word]
    duration_s: float  # of the audio, as decoded
    reading: list[str] | None = None  # the hint's words as the engine matched them (grammar engines)
    elapsed_s: float = 0.0  # engine time for this take, decoding the audio included
    notes: list[str] = field(default_factory=list)  # e.g. words pronounced by letter-to-sound
    trailing_silence_s: float | None = None  # quiet at the end of the take; None if not measured
    unchecked: list[str] = field(default_factory=list)  # the hint's words the engine could not listen for


Hint = Sequence[Span] | Sequence[str] | None


def take_pcm(audio_path: str | Path) -> bytes:
    """A take as the engines hear it (16 kHz mono s16); ``AudioError`` past ``MEDIAMILL_VERIFY_MAX_SECONDS``."""
    limit = settings().verify_max_seconds
    try:
        return pcm16k(audio_path, max_seconds=limit)
    except AudioTooLong as exc:
        raise AudioTooLong(f"{exc}: longer takes are not verified (MEDIAMILL_VERIFY_MAX_SECONDS)") from None


def as_spans(hint: Hint) -> list[Span]:
    """Plain words become one-reading spans."""
    return [h if isinstance(h, Span) else Span(h, ((h,),)) for h in (hint or [])]


@runtime_checkable
class Recogniser(Protocol):
    name: str

    @property
    def languages(self) -> frozenset[str]: ...

    def transcribe(self, audio_path: str | Path, language: str, hint: Hint = None) -> Transcript: ...
