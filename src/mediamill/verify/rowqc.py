"""Per-row checks that go into the results' ``qc`` column.

A generated speech segment is flagged when it is far shorter or longer than
its text predicts (likely truncated or babbling) or holds a long silence.
"""

from __future__ import annotations

from pathlib import Path

from ..manifest import SPEECH_KINDS
from ..media.measure import levels
from ..media.probe import probe
from .duration import DurationCheck

MAX_INNER_SILENCE_S = 2.5


def row_flags(kind: str, text: str | None, path: Path, speed: float = 1.0) -> str | None:
    """QC flags for one generated segment, or None when it looks right.

    ``speed`` is the row's tempo: a take read at twice the pace lasts half as
    long, so its length and pauses are judged as they were before the change.
    """
    if kind not in SPEECH_KINDS or not text:
        return None
    flags = []
    verdict = DurationCheck().judge(probe(path).duration_s * speed, text)
    if verdict:
        flags.append(f"speech rate: {verdict}")
    longest = levels(path)["longest_silence_s"]
    if longest * speed > MAX_INNER_SILENCE_S:
        flags.append(f"silence of {longest:.1f} s inside the segment")
    return "; ".join(flags) or None
