"""How long to wait before trying again, in one place: a doubling delay, a growing series of polls, and the
wait a server asks for in ``Retry-After``.

Jitter is a share of the delay, drawn evenly on both sides, so that clients that failed together do not all
come back together.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator


def jittered(delay: float, jitter: float) -> float:
    """``delay`` moved by up to ``jitter`` (a share) either way, at random."""
    return max(0.0, delay * (1 + random.uniform(-jitter, jitter))) if jitter else delay


def doubling(attempt: int, base: float = 0.5, cap: float = 30.0, jitter: float = 0.0) -> float:
    """The wait after failure number ``attempt`` (0-based): ``base`` doubled each time, at most ``cap``."""
    return jittered(min(cap, base * 2**attempt), jitter)


def backoff(initial: float, maximum: float, factor: float = 1.5, jitter: float = 0.1) -> Iterator[float]:
    """Delays that grow by ``factor`` up to ``maximum``, each with a little jitter (polling a task's status)."""
    delay = initial
    while True:
        yield jittered(delay, jitter)
        delay = min(maximum, delay * factor)


def retry_after(value: str | None, fallback: float, cap: float = 60.0) -> float:
    """The seconds a ``Retry-After`` header asks for, else ``fallback`` (no header, an HTTP date, nonsense);
    never more than ``cap``, so a server cannot park a row for hours."""
    try:
        seconds = float(value or "")
    except ValueError:
        seconds = -1.0
    if not math.isfinite(seconds) or seconds < 0:
        seconds = fallback
    return min(cap, seconds)
