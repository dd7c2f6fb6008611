"""Speech recognisers behind one protocol (``base.Recogniser``).

``make(name)`` returns a recogniser by engine name: ``pocketsphinx`` (the
embedded default: offline, English, no downloads) or ``whisper``
(faster-whisper from a local model folder, ``MEDIAMILL_WHISPER_MODEL``).
Engines are imported only when made, so a missing optional dependency costs
nothing until it is asked for.
"""

from __future__ import annotations

from typing import Any

from .base import UNKNOWN, NoMatch, Recogniser, RecogniserError, Transcript, Word

ENGINES = ("pocketsphinx", "whisper")
DEFAULT_ENGINE = "pocketsphinx"

__all__ = [
    "DEFAULT_ENGINE",
    "ENGINES",
    "UNKNOWN",
    "NoMatch",
    "Recogniser",
    "RecogniserError",
    "Transcript",
    "Word",
    "make",
]


def make(name: str = DEFAULT_ENGINE, **options: Any) -> Recogniser:
    if name == "pocketsphinx":
        from .pocketsphinx import PocketsphinxRecogniser

        return PocketsphinxRecogniser(**options)
    if name == "whisper":
        from .whisper import WhisperRecogniser

        return WhisperRecogniser(**options)
    raise RecogniserError(f"unknown recogniser '{name}' (known: {', '.join(ENGINES)})")
