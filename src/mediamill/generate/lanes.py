"""Lanes: the run's batches fanned out under each backend's limit.

A backend gets as many lanes as its limit allows (at least one, so a
server limit of 0, an operator's pause, waits for a slot). A lane holds one
of the backend's slots for a turn of ``TURN_S`` and runs batches in turn
while it has them, then takes a slot again. The slot is the run's own
(``Slots.hold`` takes it from the run's leased block, not from the server);
the block holder alone talks to the server. The caller closes the slots
when the lanes are done.

How a batch runs is the caller's: the flow passes a function that runs it as
a Prefect task and says whether it finished, so nothing here knows Prefect.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable

from ..backends import Job
from .limits import TURN_S, SlotUnavailable, Slots

Batch = list[list[Job]]  # groups of jobs; the jobs of a group share one content key
# Runs one batch; returns None when it finished, else why not (its unfinished rows then fail).
BatchRunner = Callable[[Batch], Awaitable[str | None]]
Unreached = Callable[[Batch, str], Awaitable[None]]


async def run_lanes(batches: list[Batch], slots: dict[str, Slots], run_batch: BatchRunner,
                    fail_unreached: Unreached, log: logging.Logger | logging.LoggerAdapter) -> None:  # fmt: skip
    """Run every batch, each backend's in its lanes; returns when all are done (or failed)."""
    queues: dict[str, deque[Batch]] = {}
    for groups in batches:
        queues.setdefault(groups[0][0].backend, deque()).append(groups)

    async def lane(backend: str, queue: deque[Batch]) -> None:
        while queue:
            try:
                async with slots[backend].hold():
                    turn_ends = time.monotonic() + TURN_S
                    while queue and time.monotonic() < turn_ends:
                        groups = queue.popleft()
                        unfinished = await run_batch(groups)
                        if unfinished is not None:
                            await fail_unreached(groups, unfinished)
            except SlotUnavailable as exc:
                log.error("%s", exc)
                while queue:  # the server cannot be reached: the rest of this backend's rows wait for a rerun
                    await fail_unreached(queue.popleft(), str(exc))

    lanes = [lane(name, q) for name, q in queues.items() for _ in range(max(1, min(slots[name].limit, len(q))))]
    await asyncio.gather(*lanes)
