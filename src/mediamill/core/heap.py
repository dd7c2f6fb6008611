"""Giving freed memory back: glibc keeps what a process frees in its heaps for reuse, and
``trim()`` (``malloc_trim``) returns the free pages to the system. Elsewhere it does nothing.

A run calls it when a stage lets go of a lot at once (an engine's model and arena after the rows),
so the stages after it do not start from the high-water mark.
"""

from __future__ import annotations

import ctypes
import sys
from typing import Any

_malloc_trim: Any = None
if sys.platform.startswith("linux"):
    try:
        _malloc_trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        _malloc_trim = None


def trim() -> bool:
    """Return the heaps' free memory to the system; whether there was a way to."""
    if _malloc_trim is None:
        return False
    _malloc_trim(0)
    return True
