"""Checking takes against their text: by ear (recognisers, the judge), by length (the duration check), by level.

``TakeVerifier`` (``takes.py``) checks a take of a row: the recogniser for
its language (``recognisers``: pocketsphinx, the embedded default; or
faster-whisper), the judge's verdict (``judge.py``: WER, missing and extra
runs with their times, word timings; thresholds per engine, measured), and
what the pipeline keeps of it. ``DurationCheck`` judges a take's length
against its text; ``row_flags`` gives the results' per-row QC flags;
``pairs`` is ``mediamill verify``. Nothing here knows engines or Prefect.
"""

from .duration import DurationCheck
from .judge import THRESHOLDS, Run, Thresholds, Timing, Verdict, judge, verify_take
from .rowqc import MAX_INNER_SILENCE_S, row_flags
from .takes import PieceCheck, TakeCheck, TakeVerifier, join, verifier

__all__ = [
    "MAX_INNER_SILENCE_S",
    "THRESHOLDS",
    "DurationCheck",
    "Run",
    "PieceCheck",
    "TakeCheck",
    "TakeVerifier",
    "Thresholds",
    "Timing",
    "Verdict",
    "join",
    "judge",
    "row_flags",
    "verifier",
    "verify_take",
]
