"""What keeps hosted work from costing more than it must: the no-credit breaker and the stops in flight."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator

from ..base import PermanentError

__all__ = ["CreditBreaker", "stopping", "stops_in_flight"]


class CreditBreaker:
    """After a service says the account has no credit, fail other rows at once for a
    while instead of sending each of them to be refused (and retried)."""

    def __init__(self, hold_s: float = 120.0):
        self.hold_s = hold_s
        self._until = 0.0
        self._message = ""

    def trip(self, message: str) -> None:
        self._until, self._message = time.monotonic() + self.hold_s, message

    def check(self) -> None:
        if time.monotonic() < self._until:
            raise PermanentError(self._message)


# Requests under way to stop paid work (cancel/kill), so an interrupted CLI waits for them.
STOPS_IN_FLIGHT = 0


def stops_in_flight() -> int:
    """Requests to stop paid work that are under way now."""
    return STOPS_IN_FLIGHT


@contextlib.asynccontextmanager
async def stopping() -> AsyncIterator[None]:
    global STOPS_IN_FLIGHT
    STOPS_IN_FLIGHT += 1
    try:
        yield
    finally:
        STOPS_IN_FLIGHT -= 1
