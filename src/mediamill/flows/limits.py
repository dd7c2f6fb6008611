"""Per-backend limits on a Prefect server: global concurrency limits, so a bound holds across the fleet.

When a Prefect server is configured (``PREFECT_API_URL``; not the temporary
one a command line run starts for itself), each backend of a run gets a
Prefect global concurrency limit (see ``generate.limits`` for the names and
for the holder that leases its slots in blocks). A missing limit is created
with the configured value (``MEDIAMILL_CONCURRENCY``, else the backend's
default); an existing one is the operator's and wins, so
``prefect gcl update mediamill-wiro --limit 8`` (or the UI) changes it for
runs that start afterwards. The holder's four server calls are Prefect's
``/v2/concurrency_limits/increment-with-lease``, lease renewal, release and
the limit's read (``PrefectLeases``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

import httpx
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.settings import get_current_settings

from ..backends import Backend
from ..config import settings
from ..core.redact import error_line
from ..core.waits import doubling
from ..generate.limits import (
    ACQUIRE_TRIES,
    RENEW_S,
    LeaseApi,
    LeasedSlots,
    LimitMissing,
    LimitTooLow,
    Slots,
    SlotUnavailable,
    limit_name,
    local_slots,
    wanted_limits,
)
from .tempserver import is_temporary


def server_configured() -> bool:
    """Whether runs talk to a Prefect server of the fleet's (not the temporary one a command line run starts)."""
    url = get_current_settings().api.url
    return bool(url) and not is_temporary(url)


class PrefectLeases:
    """:class:`LeaseApi` on a Prefect client: ``/v2/concurrency_limits/increment-with-lease`` and friends."""

    def __init__(self, client: Any, name: str, holder: Any = None):
        self.client, self.name, self.holder = client, name, holder

    async def lease(self, slots: int, duration_s: float) -> UUID | None:
        try:
            response = await self.client.increment_concurrency_slots_with_lease(
                names=[self.name], slots=slots, mode="concurrency", lease_duration=duration_s, holder=self.holder
            )
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code == 423:  # full: Locked, with a Retry-After we do not need
                return None
            if exc.response.status_code == 422 and "greater than the limit" in exc.response.text:
                raise LimitTooLow(exc.response.text) from None
            raise
        data = response.json()
        if not data.get("limits"):
            raise LimitMissing(f"limit {self.name} does not exist on the server")
        return UUID(data["lease_id"])

    async def renew(self, lease_id: UUID, duration_s: float) -> bool:
        try:
            await self.client.renew_concurrency_lease(lease_id=lease_id, lease_duration=duration_s)
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code in (404, 410):
                return False
            raise
        return True

    async def release(self, lease_id: UUID) -> None:
        await self.client.release_concurrency_slots_with_lease(lease_id=lease_id)

    async def read(self) -> tuple[int, int]:
        try:
            found = await self.client.read_global_concurrency_limit_by_name(self.name)
        except ObjectNotFound:
            raise LimitMissing(f"limit {self.name} does not exist on the server") from None
        return found.limit, found.active_slots


def prefect_leases(name: str, holder: Any = None) -> Callable[[], contextlib.AbstractAsyncContextManager[LeaseApi]]:
    """Open a Prefect client for one holder's lifetime (on the holder's own task)."""

    @asynccontextmanager
    async def connect() -> AsyncIterator[LeaseApi]:
        async with get_client() as client:
            yield PrefectLeases(client, name, holder)

    return connect


def _lease_holder() -> Any:
    """The flow run, named on the server as the leases' holder (None outside a flow run)."""
    try:
        from prefect.client.schemas.objects import ConcurrencyLeaseHolder
        from prefect.runtime import flow_run

        return ConcurrencyLeaseHolder(type="flow_run", id=UUID(str(flow_run.id))) if flow_run.id else None
    except Exception:  # noqa: BLE001 - the holder is for the record only
        return None


async def _server_limit(client: Any, name: str, wanted: int) -> tuple[int, bool]:
    """The limit's (value, active) on the server, creating it with ``wanted`` if missing."""
    try:
        found = await client.read_global_concurrency_limit_by_name(name)
    except ObjectNotFound:
        try:
            await client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=wanted))
        except ObjectAlreadyExists:
            pass  # another worker made it first
        found = await client.read_global_concurrency_limit_by_name(name)
    return found.limit, bool(found.active)


async def open_slots(backends: dict[str, Backend], configured: dict[str, int], mode: str = "auto") -> dict[str, Slots]:
    """Slots for each backend of a run; ``mode`` is auto (server when configured), server or local.

    Close each with ``Slots.close()`` when the run's rows are done, so the server gets its slots back now
    rather than when their leases end.
    """
    if mode == "local" or (mode == "auto" and not server_configured()):
        return local_slots(backends, configured)
    wanted = wanted_limits(backends, configured)
    lease_s, machine = settings().lease_s, settings().machine

    slots: dict[str, Slots] = {}
    async with get_client() as client:
        for name, engine in backends.items():
            gcl = limit_name(name, getattr(engine, "limit_scope", "machine"), machine)
            for attempt in range(1, ACQUIRE_TRIES + 1):
                try:
                    limit, active = await _server_limit(client, gcl, wanted[name])
                    break
                except Exception as exc:  # noqa: BLE001 - a busy server; give up only after a while
                    if attempt == ACQUIRE_TRIES:
                        raise SlotUnavailable(f"could not read limit {gcl}: {error_line(exc)}") from None
                    await asyncio.sleep(doubling(attempt, jitter=0.5))
            if active:
                pool = LeasedSlots(
                    gcl, limit, prefect_leases(gcl, _lease_holder()), lease_s=lease_s, renew_s=min(RENEW_S, lease_s / 4)
                )
                slots[name] = Slots(name, limit, gcl, pool)
            else:
                slots[name] = Slots(name, wanted[name])
    return slots
