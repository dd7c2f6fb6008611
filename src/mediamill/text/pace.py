"""How long a typical reader takes to say a text: the yardstick for duration checks and estimates.

About 14 Latin characters (2.5 words) per second; a CJK character is a
syllable, about 4.5 per second; punctuation adds short pauses.
"""

from __future__ import annotations

import unicodedata

LATIN_CHARS_PER_S = 14.0
CJK_CHARS_PER_S = 4.5


def predicted_seconds(text: str) -> float:
    """How long a typical reader takes to say ``text``."""
    latin = cjk = 0
    pauses = 0.0
    for ch in text:
        if ch.isspace():
            latin += 1
        elif is_cjk(ch) and unicodedata.category(ch).startswith("L"):
            cjk += 1
        elif unicodedata.category(ch).startswith("P"):
            pauses += 0.25 if ch in ".!?\u3002\uff01\uff1f\u2026" else 0.1
        else:
            latin += 1
    return latin / LATIN_CHARS_PER_S + cjk / CJK_CHARS_PER_S + pauses


def is_cjk(ch: str) -> bool:
    return unicodedata.east_asian_width(ch) in ("W", "F")
