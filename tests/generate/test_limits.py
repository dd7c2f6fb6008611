"""The block holder's accounting (``generate.limits.LeasedSlots``) against a fake server, and the real
server's answers to the calls it makes (``flows.limits.PrefectLeases``).

The fake keeps a limit as Prefect does: a lease takes its slots whole or not at all, a lease
not renewed in time ends and its slots come back, and any call can be made to fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections import Counter

import pytest

from mediamill.generate import limits
from mediamill.generate.limits import LeasedSlots, LimitMissing, LimitTooLow, SlotUnavailable

FAST = dict(linger_s=0.05, poll_s=(0.01, 0.05))


class FakeServer:
    """One global concurrency limit with leases, as the Prefect server keeps it."""

    def __init__(self, limit: int):
        self.limit = limit
        self.exists = True
        self.leases: dict[uuid.UUID, tuple[int, float]] = {}  # id -> (slots, expires)
        self.calls: Counter[str] = Counter()
        self.failing: Counter[str] = Counter()  # calls of this kind that fail (a busy server)
        self.peak = 0

    @property
    def active(self) -> int:
        self._expire()
        return sum(slots for slots, _ in self.leases.values())

    def _expire(self) -> None:
        now = time.monotonic()
        for lease_id in [i for i, (_, expires) in self.leases.items() if expires <= now]:
            del self.leases[lease_id]

    def revoke_all(self) -> None:
        self.leases.clear()

    def connect(self):
        server = self

        @contextlib.asynccontextmanager
        async def connect():
            yield FakeApi(server)

        return connect


class FakeApi:
    def __init__(self, server: FakeServer):
        self.server = server

    async def _call(self, kind: str) -> None:
        self.server.calls[kind] += 1
        await asyncio.sleep(0.001)  # a round trip
        if self.server.failing[kind] > 0:
            self.server.failing[kind] -= 1
            raise RuntimeError("503 Service Unavailable")

    async def lease(self, slots: int, duration_s: float) -> uuid.UUID | None:
        await self._call("lease")
        if not self.server.exists:
            raise LimitMissing("gone")
        if slots > self.server.limit:
            raise LimitTooLow("Slots requested is greater than the limit")
        if self.server.active + slots > self.server.limit:
            return None
        lease_id = uuid.uuid4()
        self.server.leases[lease_id] = (slots, time.monotonic() + duration_s)
        self.server.peak = max(self.server.peak, self.server.active)
        return lease_id

    async def renew(self, lease_id: uuid.UUID, duration_s: float) -> bool:
        await self._call("renew")
        self.server._expire()
        if lease_id not in self.server.leases:
            return False
        self.server.leases[lease_id] = (self.server.leases[lease_id][0], time.monotonic() + duration_s)
        return True

    async def release(self, lease_id: uuid.UUID) -> None:
        await self._call("release")
        self.server.leases.pop(lease_id, None)

    async def read(self) -> tuple[int, int]:
        await self._call("read")
        if not self.server.exists:
            raise LimitMissing("gone")
        return self.server.limit, self.server.active


def pool(server: FakeServer, cap: int, **kwargs) -> LeasedSlots:
    return LeasedSlots("mediamill-test", cap, server.connect(), **{**FAST, **kwargs})


async def eventually(check, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


class Lanes:
    """Rows run through pools; counts rows in flight across all of them, as the limit sees them."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.peak = 0

    async def row(self, slots: LeasedSlots, seconds: float) -> None:
        await slots.acquire()
        try:
            assert slots.in_use <= slots.granted, "a row started beyond what the server granted"
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            await asyncio.sleep(seconds)
        finally:
            self.in_flight -= 1
            slots.release()


def test_two_runs_sharing_a_limit_never_exceed_it_and_give_everything_back():
    async def main() -> None:
        server, lanes = FakeServer(limit=10), Lanes()
        runs = [pool(server, 10), pool(server, 10)]
        rng = random.Random(3)
        await asyncio.gather(*(lanes.row(runs[i % 2], rng.uniform(0.001, 0.02)) for i in range(400)))
        assert lanes.peak == 10 and server.peak <= 10
        for run in runs:
            await run.close()
            assert run.peak_in_use <= run.peak_granted <= 10
        assert server.active == 0 and not server.leases

    asyncio.run(main())


@pytest.mark.parametrize("rows", [200, 1000])
def test_server_calls_depend_on_the_limit_not_on_the_rows_in_flight(rows):
    async def main() -> None:
        server, lanes = FakeServer(limit=200), Lanes()
        slots = pool(server, 200)
        await asyncio.gather(*(lanes.row(slots, 0.3) for _ in range(rows)))
        await slots.close()
        assert lanes.peak == 200
        # Eight blocks of 25 fill the limit; each comes back once (idle at the end, or at close).
        assert server.calls["lease"] == limits.BLOCKS and server.calls["release"] == limits.BLOCKS
        assert server.calls["read"] == 0 and slots.leases == 0 and server.active == 0

    asyncio.run(main())


def test_idle_blocks_go_back_while_the_rest_keep_running():
    async def main() -> None:
        server = FakeServer(limit=8)
        slots = pool(server, 8, blocks=4)  # blocks of 2
        held = [asyncio.Event() for _ in range(8)]

        async def lane(done: asyncio.Event) -> None:
            await slots.acquire()
            await done.wait()
            slots.release()

        tasks = [asyncio.create_task(lane(e)) for e in held]
        await eventually(lambda: slots.in_use == 8)
        assert server.active == 8 and slots.leases == 4
        for e in held[:5]:  # the run's queue drained: five rows end, three still run
            e.set()
        await eventually(lambda: server.active == 4)  # two whole blocks back; the half-idle one stays
        assert slots.granted == 4 and slots.in_use == 3
        for e in held[5:]:
            e.set()
        await asyncio.gather(*tasks)
        await eventually(lambda: server.active == 0)  # given back before close, once idle
        await slots.close()
        assert server.calls["release"] == 4

    asyncio.run(main())


def test_a_full_limit_waits_and_close_fails_the_waiting_lanes():
    async def main() -> None:
        server = FakeServer(limit=2)
        other = pool(server, 2)
        await other.acquire()
        await other.acquire()  # another run holds the whole limit
        mine = pool(server, 2)
        waiting = asyncio.create_task(mine.acquire())
        await asyncio.sleep(0.3)
        assert not waiting.done() and mine.granted == 0
        # Polling a full limit costs one lease and one read per pause, the pause growing to poll_s[1].
        assert server.calls["read"] <= 0.3 / 0.01
        await mine.close()
        with pytest.raises(SlotUnavailable, match="closed"):
            await waiting
        other.release()
        other.release()
        await other.close()
        assert server.active == 0

    asyncio.run(main())


def test_slots_freed_elsewhere_are_taken_a_part_at_a_time():
    async def main() -> None:
        server = FakeServer(limit=8)
        other = pool(server, 8, blocks=8)
        for _ in range(6):
            await other.acquire()
        mine = pool(server, 8, blocks=1)  # wants one block of 8; only 2 are free
        lanes = [asyncio.create_task(mine.acquire()) for _ in range(8)]
        await eventually(lambda: mine.in_use == 2)
        assert mine.granted == 2 and server.active == 8
        for _ in range(6):
            other.release()
        await eventually(lambda: mine.in_use == 8)
        assert server.active == 8 and server.peak <= 8
        await asyncio.gather(*lanes)
        for _ in range(8):
            mine.release()
        await mine.close()
        await other.close()
        assert server.active == 0

    asyncio.run(main())


def test_leases_stay_bounded_when_slots_come_free_one_at_a_time():
    async def main() -> None:
        server = FakeServer(limit=40)
        other = pool(server, 40, blocks=40, max_leases=40)  # 40 leases of one slot, given back one by one
        for _ in range(40):
            await other.acquire()
        mine = pool(server, 40, blocks=4, max_leases=5)  # blocks of 10, and at most 5 leases
        lanes = [asyncio.create_task(mine.acquire()) for _ in range(40)]
        for _ in range(40):
            other.release()
            await asyncio.sleep(0.06)  # past its linger: each slot goes back on its own
            assert mine.leases <= 5
        await eventually(lambda: mine.in_use == 40)  # parts of 8 or more: five leases cover the 40
        assert mine.leases <= 5 and server.peak <= 40
        await asyncio.gather(*lanes)
        for _ in range(40):
            mine.release()
        await mine.close()
        await other.close()
        assert server.active == 0

    asyncio.run(main())


def test_a_revoked_lease_stops_new_rows_until_slots_are_leased_again():
    async def main() -> None:
        server = FakeServer(limit=4)
        slots = pool(server, 4, lease_s=2.0, renew_s=0.05)
        for _ in range(3):
            await slots.acquire()  # three rows run, on three leases of one slot (blocks of 4 / 8)
        assert slots.granted == 3
        server.revoke_all()  # e.g. the server restarted with in-memory leases, or expired them
        await eventually(lambda: slots.lost == 3)  # found at the next renewal; the keeper covers the three again

        async def fourth() -> bool:
            await slots.acquire()
            return slots.in_use <= slots.granted

        # The three rows keep running; the keeper leases again to cover them before the fourth lane starts.
        assert await asyncio.wait_for(fourth(), 5)
        assert slots.granted == 4 and slots.in_use == 4 and server.active == 4 and server.peak <= 4
        for _ in range(4):
            slots.release()
        await slots.close()
        assert server.active == 0

    asyncio.run(main())


def test_a_lease_that_cannot_be_renewed_counts_as_lost_before_it_would_end():
    async def main() -> None:
        server = FakeServer(limit=1)
        slots = pool(server, 1, lease_s=1.0, renew_s=0.2)
        await slots.acquire()
        leased = time.monotonic()
        server.failing["renew"] = 10**6  # the server cannot be reached for renewals
        await eventually(lambda: slots.lost == 1)
        # Lost before the lease ends on the server (a margin of lease_s / 10), so a late renewal
        # never leaves a row running on slots the server has already handed to someone else.
        assert time.monotonic() - leased < 0.95 and server.active == 1
        assert server.calls["renew"] >= 3  # tried again before giving up
        waiting = asyncio.create_task(slots.acquire())
        await asyncio.sleep(0.05)
        assert not waiting.done()  # no new row while the running one is not covered
        slots.release()
        await eventually(lambda: waiting.done(), timeout=3.0)  # the old lease ended on the server: leased anew
        assert server.peak <= 1
        slots.release()
        server.failing["renew"] = 0
        await slots.close()
        assert server.active == 0

    asyncio.run(main())


def test_a_server_too_busy_to_lease_fails_the_lanes_after_the_tries(monkeypatch):
    monkeypatch.setattr("mediamill.core.waits.jittered", lambda delay, jitter: delay * 0.001)

    async def main() -> None:
        server = FakeServer(limit=4)
        server.failing["lease"] = 10**6
        slots = pool(server, 40, blocks=1)  # one block of 40 covers the lanes
        lanes = [asyncio.create_task(slots.acquire()) for _ in range(30)]
        done = await asyncio.gather(*lanes, return_exceptions=True)
        assert all(isinstance(e, SlotUnavailable) and "after 6 tries" in str(e) and "503" in str(e) for e in done)
        assert server.calls["lease"] == limits.ACQUIRE_TRIES  # one holder tries, not each lane
        with pytest.raises(SlotUnavailable):
            await slots.acquire()  # later lanes fail at once
        await slots.close()

    asyncio.run(main())


def test_a_busy_server_now_and_then_only_delays_the_slots(monkeypatch):
    monkeypatch.setattr("mediamill.core.waits.jittered", lambda delay, jitter: delay * 0.001)

    async def main() -> None:
        server, lanes = FakeServer(limit=4), Lanes()
        server.failing.update(lease=2, release=1)
        slots = pool(server, 4)
        await asyncio.gather(*(lanes.row(slots, 0.01) for _ in range(20)))
        await slots.close()
        assert lanes.peak == 4
        # The release that failed is left to the lease's end (the fake lets it run out at once).
        assert len(server.leases) <= 1

    asyncio.run(main())


def test_an_operator_may_lower_pause_and_raise_the_limit():
    async def main() -> None:
        server = FakeServer(limit=2)  # lowered from the 8 this run read at its start
        slots = pool(server, 8, blocks=1)
        lanes = [asyncio.create_task(slots.acquire()) for _ in range(4)]
        await eventually(lambda: slots.in_use == 2)  # asked for 4: more than the limit; read it, leased 2
        assert slots.granted == 2 and slots.limit_now == 2 and slots.waiting == 2
        await eventually(lambda: sum(lane.done() for lane in lanes) == 2)
        for lane in lanes:
            if lane.done():
                slots.release()
            else:
                lane.cancel()
        await asyncio.gather(*lanes, return_exceptions=True)
        await eventually(lambda: server.active == 0)  # idle: given back
        server.limit = 0  # paused: lanes wait
        waiting = asyncio.create_task(slots.acquire())
        await asyncio.sleep(0.2)
        assert not waiting.done() and slots.limit_now == 0
        server.limit = 3  # resumed
        await eventually(lambda: waiting.done())
        slots.release()
        await slots.close()
        assert server.active == 0 and server.peak <= 3

    asyncio.run(main())


def test_a_deleted_limit_fails_the_lanes():
    async def main() -> None:
        server = FakeServer(limit=2)
        server.exists = False
        slots = pool(server, 2)
        with pytest.raises(SlotUnavailable, match="does not exist|gone"):
            await slots.acquire()
        await slots.close()

    asyncio.run(main())


def test_a_lane_cancelled_while_waiting_takes_no_slot_with_it():
    async def main() -> None:
        server = FakeServer(limit=1)
        slots = pool(server, 1)
        await slots.acquire()
        waiting = asyncio.create_task(slots.acquire())
        await asyncio.sleep(0.02)
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        slots.release()
        assert slots.in_use == 0
        await slots.acquire()  # the slot is free for the next lane
        assert slots.in_use == 1
        slots.release()
        await slots.close()
        assert server.active == 0

    asyncio.run(main())


# ------------------------------------------------------------------------------------------
# The real server's answers


def test_prefect_leases_on_a_real_server(prefect_api):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

    from mediamill.flows.limits import PrefectLeases

    name = f"mediamill-test-{uuid.uuid4().hex[:8]}"

    async def main() -> None:
        async with get_client() as client:
            api = PrefectLeases(client, name)
            with pytest.raises(LimitMissing):
                await api.read()
            with pytest.raises(LimitMissing):
                await api.lease(1, 60)
            await client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=3))
            first = await api.lease(2, 60)
            assert first is not None and await api.read() == (3, 2)
            assert await api.lease(2, 60) is None  # full: 423
            with pytest.raises(LimitTooLow):
                await api.lease(4, 60)  # more than the limit: 422
            assert await api.renew(first, 60) is True
            await api.release(first)
            assert await api.read() == (3, 0)
            assert await api.renew(first, 60) is False  # gone: 410

    asyncio.run(main())
