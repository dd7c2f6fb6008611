"""SMIL clock values: seconds <-> ``H:MM:SS.mmm`` (full clock values, millisecond precision).

Times are carried as integer milliseconds so sums of clip durations never drift.
"""

from __future__ import annotations

import re

_CLOCK = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{2}(?:\.\d+)?)$")
_TIMECOUNT = re.compile(r"^(\d+(?:\.\d+)?)(h|min|s|ms)?$")


def ms(seconds: float) -> int:
    return int(round(seconds * 1000))


def clock(milliseconds: int) -> str:
    h, rest = divmod(milliseconds, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, frac = divmod(rest, 1000)
    return f"{h}:{m:02d}:{s:02d}.{frac:03d}"


def parse_clock(value: str) -> float:
    """Seconds from a SMIL clock value (full or partial clock, or a timecount such as ``12.5s``)."""
    value = value.strip()
    match = _CLOCK.match(value)
    if match:
        hours = int(match.group(1) or 0)
        return hours * 3600 + int(match.group(2)) * 60 + float(match.group(3))
    match = _TIMECOUNT.match(value)
    if match:
        factor = {"h": 3600, "min": 60, "s": 1, "ms": 0.001, None: 1}[match.group(2)]
        return float(match.group(1)) * factor
    raise ValueError(f"not a SMIL clock value: {value!r}")
