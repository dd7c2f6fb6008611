"""What producing the imported manifest would cost, per backend, before anything runs.

Each backend says it itself (``Backend.estimate``): it knows its prices (the
price table, ``MEDIAMILL_PRICES``, or its device time and
``VOXCPM_PRICE_PER_HOUR``) and how it cuts text into requests. The importer only
asks; a backend it cannot load is reported, not guessed at.
"""

from __future__ import annotations

from ..backends import NotInstalledError, UnknownBackendError, get_backend
from ..backends.base import CostEstimate

__all__ = ["CostEstimate", "estimate"]


def estimate(backend: str, texts: list[str], speech_s: float) -> CostEstimate:
    """``backend``'s estimate for reading ``texts`` (about ``speech_s`` seconds of speech)."""
    try:
        engine = get_backend(backend)
    except (UnknownBackendError, NotInstalledError) as exc:
        return CostEstimate(backend, None, f"cannot estimate: {exc}")
    return engine.estimate(texts, speech_s)
