"""How many rows of each backend run at once: the limits a run's lanes obey, in one process or across a fleet.

A run bounds each backend by running as many lanes as its limit allows
(``lanes.run_lanes``); a lane holds one of the backend's slots while it works.
In one process that is all. When the limit lives on a server (a Prefect
global concurrency limit, so the bound holds across every worker; see
``mediamill.flows.limits``, since only the flows know Prefect):

- hosted backends (``limit_scope = "fleet"``) share ``mediamill-<backend>``:
  API slots for the whole fleet;
- local engines (``"machine"``) use ``mediamill-<backend>-<host>``: GPU or CPU
  slots per machine, however many workers run on it.

Server slots are not taken one per lane. One holder per backend and run
(``LeasedSlots``) leases them in blocks, a block being one lease call for up
to ``limit / BLOCKS`` slots, and hands them to the run's lanes through local
accounting. It grows while lanes wait, gives whole blocks back once they have
been idle for ``LINGER_S`` (the run's queue for that backend drained), renews
every lease it holds from one loop, and gives everything back when the run
ends (``Slots.close``). Its server calls depend on the limit and on time, never
on how many rows are in flight: at most ``BLOCKS`` leases to fill a limit,
``MAX_LEASES`` renewals every ``RENEW_S``, and while the limit is full, one or
two calls per poll. Leases expire on the server ``LEASE_S`` after their last
renewal, so a worker that dies gives its slots back then. A lane keeps its
slot for a turn of work (``TURN_S``) rather than one row: a local matter, no
server call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import socket
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID

from ..backends import Backend
from ..core import waits
from ..core.redact import error_line

LEASE_S = 300.0  # a lease not renewed for this long ends on the server (a dead worker's slots); MEDIAMILL_LEASE_S
RENEW_S = 60.0  # each lease is renewed this often (a quarter of a shorter lease): four chances before it ends
TURN_S = 30.0  # a lane keeps its slot for this long of work, then takes one again (local, no server call)
ACQUIRE_TRIES = 6  # a server too busy to answer (SQLite under load answers 503) is tried this often
BLOCKS = 8  # a run leases its backend's limit in blocks of about limit / BLOCKS slots
MAX_LEASES = 16  # leases one holder keeps at once, so renewals stay bounded whatever happens
LINGER_S = 1.0  # slots idle this long, with no lane waiting, go back to the server (whole leases)
POLL_S = (0.5, 5.0)  # a full limit is asked again after this long, doubling from the first to the second
CLOSE_S = 30.0  # how long closing waits for the server to take the leases back

log = logging.getLogger(__name__)


class SlotUnavailable(Exception):
    """The limit's server could not be asked for a slot (not: the limit is full, which just waits)."""


class LimitTooLow(Exception):
    """The server refused a lease larger than the limit (an operator lowered it)."""


class LimitMissing(Exception):
    """The limit is gone from the server (an operator deleted it)."""


def limit_name(backend: str, scope: str, host: str | None = None) -> str:
    """The name of a backend's limit: fleet-wide for hosted APIs, per machine for local engines."""
    name = f"mediamill-{backend}" if scope == "fleet" else f"mediamill-{backend}-{host or socket.gethostname()}"
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name)  # Prefect's names allow no ':' or '/'


def wanted_limits(backends: dict[str, Backend], configured: dict[str, int]) -> dict[str, int]:
    """Each backend's limit from the settings (``MEDIAMILL_CONCURRENCY``), else its own default."""
    return {name: max(1, configured.get(name, engine.default_concurrency)) for name, engine in backends.items()}


# ------------------------------------------------------------------------------------------
# The server side: four calls


class LeaseApi(Protocol):
    """What a holder asks the server (``mediamill.flows.limits.PrefectLeases`` is the real one)."""

    async def lease(self, slots: int, duration_s: float) -> UUID | None:
        """A lease on ``slots`` slots, or None when the limit has not that many free.

        Raises :class:`LimitTooLow` when ``slots`` exceeds the limit itself and
        :class:`LimitMissing` when the limit does not exist.
        """

    async def renew(self, lease_id: UUID, duration_s: float) -> bool:
        """Extend a lease; False when the server no longer has it (expired or revoked)."""

    async def release(self, lease_id: UUID) -> None:
        """Give a lease's slots back."""

    async def read(self) -> tuple[int, int]:
        """The limit and the slots taken now, fleet-wide."""


# ------------------------------------------------------------------------------------------
# The holder


@dataclass
class _Lease:
    id: UUID
    slots: int
    expires: float  # monotonic; measured from before the call that set it, so never later than the server's
    renew_at: float
    failures: int = 0


class LeasedSlots:
    """One run's slots of one server limit, leased in blocks and shared by its lanes.

    ``acquire``/``release`` are local and never wait on the server while the run
    holds a free slot. A lane may run only while ``in_use <= granted`` (slots of
    live leases): lanes past the grant wait. One keeper task per holder asks
    for more while lanes wait (``min(cap, in_use + waiting) - granted``, in
    blocks asked for back to back), gives idle blocks back, and renews what it
    holds (a second task on the same client). A lease the
    server no longer has (or that could not be renewed before it would expire)
    stops counting at once: the rows running on it finish, and the keeper asks
    for enough to cover them again before any waiting lane starts.
    """

    def __init__(
        self,
        name: str,
        cap: int,
        connect: Callable[[], contextlib.AbstractAsyncContextManager[LeaseApi]],
        *,
        lease_s: float = LEASE_S,
        renew_s: float = RENEW_S,
        blocks: int = BLOCKS,
        max_leases: int = MAX_LEASES,
        linger_s: float = LINGER_S,
        poll_s: tuple[float, float] = POLL_S,
        tries: int = ACQUIRE_TRIES,
    ):
        self.name, self.cap = name, max(0, cap)
        self._connect = connect
        self.lease_s, self.renew_s, self.blocks, self.max_leases = lease_s, renew_s, max(1, blocks), max(1, max_leases)
        self.linger_s, self.poll_s, self.tries = linger_s, poll_s, max(1, tries)
        self.margin_s = min(renew_s, lease_s / 10)  # a lease not renewed this close to its end counts as lost
        self.in_use = 0
        self.limit_now = self.cap  # the server's limit as last seen (an operator may lower it mid-run)
        self.calls: Counter[str] = Counter()  # server calls made, by kind
        self.peak_granted = self.peak_in_use = 0
        self.lost = 0  # slots of leases lost to expiry or revocation
        self._leases: dict[UUID, _Lease] = {}
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._failure: SlotUnavailable | None = None
        self._closed = False
        self._keeper: asyncio.Task[None] | None = None
        self._changed: asyncio.Event | None = None  # demand or holdings changed: the keeper looks again
        self._leases_changed: asyncio.Event | None = None  # the renewer looks again

    # -- what lanes call ------------------------------------------------------------------

    @property
    def granted(self) -> int:
        return sum(lease.slots for lease in self._leases.values())

    @property
    def waiting(self) -> int:
        return sum(1 for fut in self._waiters if not fut.done())

    @property
    def leases(self) -> int:
        return len(self._leases)

    def block(self) -> int:
        return max(1, math.ceil(max(1, min(self.cap, self.limit_now)) / self.blocks))

    async def acquire(self) -> None:
        """Take one slot, waiting while the run has none free; SlotUnavailable if the server cannot be asked."""
        if self._failure is not None:
            raise self._failure
        if self._closed:
            raise SlotUnavailable(f"slots of {self.name} are closed")
        self._drop_expired()
        while self._waiters and self._waiters[0].done():
            self._waiters.popleft()  # lanes cancelled while they waited
        if not self._waiters and self.in_use < self.granted:
            self.in_use += 1
            self.peak_in_use = max(self.peak_in_use, self.in_use)
            return
        self._start()
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        self._hand_out()
        self._poke()
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                self.release()  # the slot came as the lane was cancelled: pass it on
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(fut)
            raise

    def release(self) -> None:
        """Give a slot back to the run (not to the server: the keeper does that for idle blocks)."""
        self.in_use -= 1
        assert self.in_use >= 0, "released more slots than were taken"
        self._hand_out()
        self._poke()

    async def close(self) -> None:
        """Give every lease back; lanes still waiting get SlotUnavailable."""
        if self._closed:
            return
        self._closed = True
        self._fail_waiters(SlotUnavailable(f"slots of {self.name} are closed"))
        self._poke()
        if self._keeper is None:
            return
        done, _ = await asyncio.wait({self._keeper}, timeout=CLOSE_S)
        if not done:
            log.warning(
                "slots of %s: the server did not take the leases back within %.0f s; they end within %.0f s",
                self.name,
                CLOSE_S,
                self.lease_s,
            )
            self._keeper.cancel()
            await asyncio.wait({self._keeper}, timeout=5.0)

    # -- bookkeeping ----------------------------------------------------------------------

    def _poke(self) -> None:
        if self._changed is not None:
            self._changed.set()

    def _hand_out(self) -> None:
        self._drop_expired()
        while self._waiters and self.in_use < self.granted:
            fut = self._waiters.popleft()
            if fut.done():
                continue  # its lane was cancelled
            self.in_use += 1
            self.peak_in_use = max(self.peak_in_use, self.in_use)
            fut.set_result(None)

    def _fail_waiters(self, exc: SlotUnavailable) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_exception(exc)

    def _fail(self, exc: SlotUnavailable) -> None:
        log.error("%s", exc)
        self._failure = exc
        self._fail_waiters(exc)

    def _add(self, lease_id: UUID, slots: int, asked_at: float, hand_out: bool = True) -> None:
        self._leases[lease_id] = _Lease(lease_id, slots, asked_at + self.lease_s, asked_at + self.renew_s)
        self.peak_granted = max(self.peak_granted, self.granted)
        if self._leases_changed is not None:
            self._leases_changed.set()
        if hand_out:
            self._hand_out()

    def _lose(self, lease: _Lease, why: str) -> None:
        if self._leases.pop(lease.id, None) is None:
            return
        self.lost += lease.slots
        log.warning(
            "slots of %s: a lease of %d slots is lost (%s); rows running on it finish, new rows wait "
            "until the server leases slots again",
            self.name,
            lease.slots,
            why,
        )
        self._poke()

    def _drop_expired(self) -> None:
        now = time.monotonic()
        for lease in [lease for lease in self._leases.values() if now >= lease.expires - self.margin_s]:
            self._lose(lease, "not renewed in time")

    def _want(self) -> int:
        """Slots to ask the server for: enough for every lane that runs or waits, within the limit."""
        if self._closed or self._failure is not None:
            return 0
        # Not bounded by limit_now: while lanes wait, the keeper keeps looking whether the operator raised it.
        return min(self.cap, self.in_use + self.waiting) - self.granted

    # -- the keeper -----------------------------------------------------------------------

    def _start(self) -> None:
        if self._keeper is None:
            self._changed, self._leases_changed = asyncio.Event(), asyncio.Event()
            self._keeper = asyncio.create_task(self._keep(), name=f"slots:{self.name}")

    async def _call(self, kind: str, call: Any) -> Any:
        self.calls[kind] += 1
        return await call

    async def _keep(self) -> None:
        try:
            async with self._connect() as api:
                renewer = asyncio.create_task(self._renew(api), name=f"renew:{self.name}")
                try:
                    await self._balance(api)
                finally:
                    renewer.cancel()
                    await asyncio.gather(renewer, return_exceptions=True)
                    await self._give_back(api, list(self._leases.values()))
        except Exception as exc:  # noqa: BLE001 - a keeper that stops must not leave lanes waiting forever
            log.exception("slots of %s: the keeper stopped", self.name)
            self._fail(SlotUnavailable(f"no slot of {self.name}: {error_line(exc)}"))

    async def _nap(self, seconds: float | None, wake_on_change: bool = True) -> None:
        """Sleep, waking early when closed (and when demand or holdings change, if asked)."""
        assert self._changed is not None
        if self._closed:
            return
        if not wake_on_change:
            deadline = time.monotonic() + (seconds or 0.0)
            while not self._closed and (left := deadline - time.monotonic()) > 0:
                self._changed.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), left)
            return
        self._changed.clear()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._changed.wait(), seconds)

    async def _balance(self, api: LeaseApi) -> None:
        """Grow while lanes wait, shrink when blocks sit idle, until closed."""
        failures, pause = 0, self.poll_s[0]
        idle_since: float | None = None
        while not self._closed:
            want = self._want()
            if want > 0:
                idle_since = None
                try:
                    got = await self._grow(api, want)
                except LimitMissing as exc:
                    self._fail(SlotUnavailable(f"no slot of {self.name}: {exc}"))
                    continue
                except Exception as exc:  # noqa: BLE001 - a busy server; give up only after a while
                    failures += 1
                    if failures >= self.tries and not self._leases:
                        self._fail(SlotUnavailable(f"no slot of {self.name} after {failures} tries: {error_line(exc)}"))
                        continue
                    delay = waits.doubling(failures, jitter=0.5)
                    log.warning("slots of %s: %s; trying again in %.1f s", self.name, error_line(exc), delay)
                    await self._nap(delay, wake_on_change=False)
                    continue
                failures = 0
                if got:
                    pause = self.poll_s[0]
                else:  # the limit is full (or paused at 0): ask again later, less often the longer it lasts
                    await self._nap(waits.jittered(pause, 0.5), wake_on_change=False)
                    pause = min(pause * 2, self.poll_s[1])
                continue
            idle = self.granted - self.in_use
            if idle > 0 and not self.waiting:
                now = time.monotonic()
                idle_since = idle_since if idle_since is not None else now
                if now - idle_since >= self.linger_s:
                    await self._shrink(api)
                    idle_since = None
                    continue
                await self._nap(self.linger_s - (now - idle_since))
            else:
                idle_since = None
                await self._nap(None)

    async def _grow(self, api: LeaseApi, want: int) -> bool:
        """Blocks enough for ``want`` (or what the server can spare); False when it can spare nothing.

        The blocks are asked for back to back and handed to the lanes together at the end: rows
        that start write task runs, and a SQLite server busy writing answers the next lease with
        503, which Prefect's client retries after 2 s (measured: one such wait per block when each
        block's rows started before the next was asked for).
        """
        room = self.max_leases - len(self._leases)
        if room <= 0:
            return False  # bounded renewals; blocks come back as the run's queue drains
        if self.limit_now <= 0:  # paused by the operator: look whether it was raised
            self.limit_now, _ = await self._call("read", api.read())
            return False
        block = self.block()
        granted = 0
        try:
            for i in range(min(room, math.ceil(want / block))):
                size = min(block, want - i * block)
                lease_id, asked_at = await self._lease(api, size)
                if lease_id is None:
                    break  # full: what is free is looked for below, or on the next round
                self._add(lease_id, size, asked_at, hand_out=False)
                granted += 1
        except Exception:
            if not granted:
                raise
        finally:
            self._hand_out()
        if self._closed:
            await self._give_back(api, list(self._leases.values()))
        if granted:
            return True  # the rest, if any, on the next round
        # Full, or the limit is lower now: take a part of what is free, if worth a lease of its own.
        limit, taken = await self._call("read", api.read())
        self.limit_now = limit
        size = min(want, limit - taken, self.block())
        if size < self._smallest_part(want):
            return False
        lease_id, asked_at = await self._lease(api, size)
        if lease_id is None:
            return False
        self._add(lease_id, size, asked_at)
        if self._closed:
            await self._give_back(api, list(self._leases.values()))
        return True

    def _smallest_part(self, want: int) -> int:
        """The fewest free slots worth a lease of their own when a whole block is not free.

        Large enough that the leases still allowed (``max_leases``) can cover ``want``: slots
        coming free one at a time elsewhere are taken a few at once rather than one lease each.
        """
        block = self.block()
        budget = max(1, self.max_leases - len(self._leases))
        return max(1, min(want, block, max(block // 4, math.ceil(want / budget))))

    async def _lease(self, api: LeaseApi, size: int) -> tuple[UUID | None, float]:
        asked_at = time.monotonic()
        try:
            return await self._call("lease", api.lease(size, self.lease_s)), asked_at
        except LimitTooLow:
            return None, asked_at

    async def _shrink(self, api: LeaseApi) -> None:
        """Give back whole leases that idle slots cover, largest first."""
        idle = self.granted - self.in_use
        for lease in sorted(self._leases.values(), key=lambda lease: -lease.slots):
            if self.waiting:
                return
            if lease.slots <= idle:
                idle -= lease.slots
                await self._give_back(api, [lease])

    async def _give_back(self, api: LeaseApi, leases: list[_Lease]) -> None:
        for lease in leases:
            if self._leases.pop(lease.id, None) is None:
                continue
            try:  # the slots stop counting here, before the call, so no lane starts on them meanwhile
                await self._call("release", api.release(lease.id))
            except Exception as exc:  # noqa: BLE001 - the server takes them back when the lease ends
                log.warning(
                    "slots of %s: could not give back %d slots (%s); their lease ends within %.0f s",
                    self.name,
                    lease.slots,
                    error_line(exc),
                    self.lease_s,
                )

    async def _renew(self, api: LeaseApi) -> None:
        """Renew every lease before it ends, from this one loop."""
        assert self._leases_changed is not None
        while True:
            now = time.monotonic()
            for lease in [lease for lease in self._leases.values() if lease.renew_at <= now]:
                if lease.id not in self._leases:
                    continue
                asked_at = time.monotonic()
                try:
                    kept = await self._call("renew", api.renew(lease.id, self.lease_s))
                except Exception as exc:  # noqa: BLE001 - tried again until the lease would end
                    lease.failures += 1
                    retry_at = time.monotonic() + min(self.renew_s, 2.0**lease.failures)
                    if retry_at >= lease.expires - self.margin_s:
                        self._lose(lease, f"could not be renewed: {error_line(exc)}")
                    else:
                        lease.renew_at = retry_at
                        log.warning(
                            "slots of %s: renewing a lease failed (%s); trying again", self.name, error_line(exc)
                        )
                    continue
                if not kept:
                    self._lose(lease, "the server no longer has it")
                    continue
                lease.failures, lease.expires, lease.renew_at = 0, asked_at + self.lease_s, asked_at + self.renew_s
            self._drop_expired()
            due = min((lease.renew_at for lease in self._leases.values()), default=None)
            self._leases_changed.clear()
            timeout = None if due is None else max(0.0, due - time.monotonic())
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._leases_changed.wait(), timeout)


# ------------------------------------------------------------------------------------------
# What the run uses


@dataclass
class Slots:
    """One backend's slots in this run: ``limit`` lanes, sharing server slots when a server limit applies."""

    backend: str
    limit: int
    server_limit: str | None = None  # the server's limit, when one applies (then ``pool`` holds its slots)
    pool: LeasedSlots | None = field(default=None, repr=False, compare=False)
    room: asyncio.Semaphore | None = field(default=None, repr=False, compare=False)  # this process's, when local

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        if self.pool is None:
            async with self.room or contextlib.nullcontext():
                yield
            return
        await self.pool.acquire()
        try:
            yield
        finally:
            self.pool.release()

    async def close(self) -> None:
        """Give the run's server slots back (at the end of a run; safe to call twice)."""
        if self.pool is not None:
            await self.pool.close()

    def usage(self) -> dict[str, Any]:
        """What the run's slots cost: for the run's summary."""
        doc: dict[str, Any] = {"limit": self.limit, "server_limit": self.server_limit}
        if self.pool is not None:
            doc.update(
                server_calls=dict(sorted(self.pool.calls.items())),
                peak_leased=self.pool.peak_granted,
                peak_in_use=self.pool.peak_in_use,
                lost=self.pool.lost,
            )
        return doc

    def describe(self) -> str:
        if self.pool is None:
            return f"{self.backend}: {self.limit} at once (in this process)"
        return f"{self.backend}: {self.limit} at once (server limit {self.server_limit}, leased in blocks of up to {self.pool.block()})"


def local_slots(backends: dict[str, Backend], configured: dict[str, int]) -> dict[str, Slots]:
    """Limits held in this process only: shared by the runs in its event loop (a sweep's manifests at once)."""
    return {
        name: Slots(name, limit, room=_room(name, limit)) for name, limit in wanted_limits(backends, configured).items()
    }


_rooms: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Semaphore]] = {}


def _room(backend: str, limit: int) -> asyncio.Semaphore:
    """This process's ``limit`` slots for ``backend`` in the running loop (a semaphore belongs to one loop)."""
    loop = asyncio.get_running_loop()
    held = _rooms.get(backend)
    if held is None or held[0] is not loop:
        held = _rooms[backend] = (loop, asyncio.Semaphore(limit))
    return held[1]
