"""Lanes: the run's batches fanned out under each backend's limit.

A backend gets as many lanes as its limit allows (at least one, so a
server limit of 0, an operator's pause, waits for a slot). A lane holds one
of the backend's slots for a turn of ``TURN_S`` and runs batches in turn
while it has them, then takes a slot again. The slot is the run's own
(``Slots.hold`` takes it from the run's leased block, not from the server);
the block holder alone talks to the server. The caller closes the slots
when the lanes are done.

A lane keeps its engine busy: a row holds the engine (``Lane.engine``) only
while it generates a take, and the lane starts its next batch as soon as the
one before has no generation left to start (``Turn.handed_off``). Checking a
take by ear, measuring and storing it then run while the next row generates,
on other cores; a retake waits for the engine like any generation. A lane has
at most ``PIPELINE_DEPTH`` rows in flight, one of them generating, and at the
end of its turn it finishes them before its slot goes back.

How a batch runs is the caller's: the flow passes a function that runs it as
a Prefect task and says whether it finished, so nothing here knows Prefect.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType

from ..backends import Job
from .limits import TURN_S, Slots, SlotUnavailable

Batch = list[list[Job]]  # groups of jobs; the jobs of a group share one content key
PIPELINE_DEPTH = 2  # rows a lane has in flight: one generating, the one before it being checked and stored


class Lane:
    """What a lane's batches share: its engine, one generation at a time, and its rows in flight."""

    def __init__(self, depth: int = PIPELINE_DEPTH):
        self._engine = asyncio.Lock()
        self.rows = asyncio.Semaphore(depth)

    def engine(self) -> Engine:
        """A row's hold on the engine (``async with`` around each of its generations)."""
        return Engine(self._engine)


class Engine:
    """One row's use of its lane's engine; ``generated`` is set when its first generation ends (or
    ``done()`` is called: the row ended without one), so the lane may start its next row."""

    def __init__(self, lock: asyncio.Lock):
        self._lock = lock
        self.generated = asyncio.Event()

    async def __aenter__(self) -> None:
        await self._lock.acquire()

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._lock.release()
        self.generated.set()

    def done(self) -> None:
        self.generated.set()


@dataclass
class Turn:
    """A batch's place in its lane: the lane, and word back once the batch has no generation left to start."""

    lane: Lane = field(default_factory=Lane)
    handed_off: asyncio.Event = field(default_factory=asyncio.Event)


# Runs one batch in its turn; returns None when it finished, else why not (its unfinished rows then fail).
# A runner that never sets ``turn.handed_off`` has its lane wait for the batch to finish.
BatchRunner = Callable[[Batch, Turn], Awaitable[str | None]]
Unreached = Callable[[Batch, str], Awaitable[None]]


async def until(event: asyncio.Event, task: asyncio.Future) -> None:
    """Wait until ``event`` is set or ``task`` is done, whichever comes first."""
    if event.is_set() or task.done():
        return
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait([waiter, task], return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()


async def finish(tasks: list[asyncio.Task], cancel: bool = False) -> None:
    """Wait for every task; with ``cancel``, or on the way out (an error, a cancel), the ones still running are
    cancelled (and waited for: a hosted row cancels its paid task as it goes)."""
    try:
        for task in tasks:
            if cancel:
                break
            await task
    finally:
        left = [t for t in tasks if not t.done()]
        for task in left:
            task.cancel()
        await asyncio.gather(*left, return_exceptions=True)


async def run_lanes(
    batches: list[Batch],
    slots: dict[str, Slots],
    run_batch: BatchRunner,
    fail_unreached: Unreached,
    log: logging.Logger | logging.LoggerAdapter,
) -> None:
    """Run every batch, each backend's in its lanes; returns when all are done (or failed)."""
    queues: dict[str, deque[Batch]] = {}
    for groups in batches:
        queues.setdefault(groups[0][0].backend, deque()).append(groups)

    async def batch(groups: Batch, turn: Turn) -> None:
        unfinished = await run_batch(groups, turn)
        if unfinished is not None:
            await fail_unreached(groups, unfinished)

    async def lane(backend: str, queue: deque[Batch]) -> None:
        shared = Lane()
        while queue:
            try:
                async with slots[backend].hold():
                    turn_ends = time.monotonic() + TURN_S
                    running: list[asyncio.Task] = []
                    try:
                        while queue and time.monotonic() < turn_ends:
                            turn = Turn(shared)
                            running.append(asyncio.ensure_future(batch(queue.popleft(), turn)))
                            await until(turn.handed_off, running[-1])
                            for task in [t for t in running if t.done()]:
                                running.remove(task)
                                task.result()  # a batch that raised ends the run, as it always did
                    except BaseException:  # cancelled (Ctrl-C, the UI's Cancel) or failed: its rows stop now
                        await finish(running, cancel=True)
                        raise
                    await finish(running)  # the slot goes back with none of its rows in flight
            except SlotUnavailable as exc:
                log.error("%s", exc)
                while queue:  # the server cannot be reached: the rest of this backend's rows wait for a rerun
                    await fail_unreached(queue.popleft(), str(exc))

    lanes = [lane(name, q) for name, q in queues.items() for _ in range(max(1, min(slots[name].limit, len(q))))]
    await asyncio.gather(*lanes)
