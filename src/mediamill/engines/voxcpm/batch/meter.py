"""Each request's share of one engine server's GPU time.

A continuous-batching server runs many requests in the same steps, so no
request has a GPU time of its own. The rule here: the server's *busy time*
(wall time while at least one request is in flight on it) is divided among
the requests in flight, moment by moment, in proportion to the tokens each
feeds the engine's steps:

- before its first chunk arrives a request weighs its prompt length in
  tokens (text tokens, plus the latent patches of its prompt and reference
  audio): that is what its prefill step computes;
- from its first chunk on it weighs 1: each decode step computes one patch
  per sequence (one language-model token and one diffusion solve).

So a request alone on the server pays all of the time; 64 requests decoding
together pay 1/64 each of every step; and the shares of all requests always
add up to the busy time (``busy_s``). The meter only sees events (a request
starts, a chunk arrives, a request ends), not the engine's step boundaries,
so a share is exact for time-weighted tokens, not a profiler reading.

The bookkeeping is O(1) per event: the meter integrates ``dt / total
weight`` over time (cost per unit of weight) and settles a request's share
only when its weight changes or it ends.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["GpuMeter"]


@dataclass
class _Entry:
    weight: float
    mark: float  # the integral's value when this entry's share was last settled
    share: float = 0.0


class GpuMeter:
    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self._clock = clock
        self._entries: dict[object, _Entry] = {}
        self._total = 0.0  # sum of the weights in flight
        self._per_weight = 0.0  # integral of dt / total weight while busy
        self._last = clock()
        self.busy_s = 0.0

    def _advance(self) -> None:
        now = self._clock()
        if self._entries and self._total > 0:
            dt = max(0.0, now - self._last)
            self._per_weight += dt / self._total
            self.busy_s += dt
        self._last = now

    def _settle(self, entry: _Entry) -> None:
        entry.share += entry.weight * (self._per_weight - entry.mark)
        entry.mark = self._per_weight

    def start(self, key: object, weight: float) -> None:
        """A request is now in flight with this weight (its prompt tokens)."""
        if key in self._entries:
            raise KeyError(f"{key!r} is already metered")
        self._advance()
        self._entries[key] = _Entry(max(weight, 1e-9), self._per_weight)
        self._total += self._entries[key].weight

    def reweigh(self, key: object, weight: float) -> None:
        """The request's weight changes from now on (prefill done: 1 per step)."""
        entry = self._entries[key]
        self._advance()
        self._settle(entry)
        weight = max(weight, 1e-9)
        self._total += weight - entry.weight
        entry.weight = weight

    def share(self, key: object) -> float:
        """The request's share so far, in seconds."""
        entry = self._entries[key]
        self._advance()
        self._settle(entry)
        return entry.share

    def finish(self, key: object) -> float:
        """The request leaves; returns its share in seconds."""
        entry = self._entries[key]
        self._advance()
        self._settle(entry)
        del self._entries[key]
        self._total = sum(e.weight for e in self._entries.values()) if self._entries else 0.0  # no drift
        return entry.share

    @property
    def in_flight(self) -> int:
        return len(self._entries)
