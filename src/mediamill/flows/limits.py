"""Per-backend limits on a Prefect server: global concurrency limits, so a bound holds across the fleet.

When a Prefect server is configured (``PREFECT_API_URL``), each backend of a
run gets a Prefect global concurrency limit (see ``generate.limits`` for the
names). A missing limit is created with the configured value
(``MEDIAMILL_CONCURRENCY``, else the backend's default); an existing one is
the operator's and wins, so ``prefect gcl update mediamill-wiro --limit 8``
(or the UI) changes it for runs that start afterwards. Slots are leased: a
worker that dies gives its slots back when the lease runs out.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency import asyncio as prefect_concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.settings import get_current_settings

from ..backends import Backend
from ..core.redact import error_line
from ..generate.limits import LEASE_S, Slots, SlotUnavailable, limit_name, local_slots, wanted_limits
from .tempserver import is_temporary

ACQUIRE_TRIES = 6  # a server too busy to answer (SQLite under load answers 503) is tried this often

log = logging.getLogger("mediamill.limits")


def server_configured() -> bool:
    """Whether runs talk to a Prefect server of the fleet's (not the temporary one a command line run starts)."""
    url = get_current_settings().api.url
    return bool(url) and not is_temporary(url)


class ServerSlots:
    """Slots of one Prefect global concurrency limit, one lease per slot held."""

    def __init__(self, name: str):
        self.name = name

    async def acquire(self) -> Any:
        """Enter Prefect's ``concurrency`` for one slot; a busy server (5xx, timeouts) is tried again.

        A full limit is not an error: Prefect waits for a slot as long as it takes.
        """
        for attempt in range(1, ACQUIRE_TRIES + 1):
            held = prefect_concurrency.concurrency(self.name, occupy=1, lease_duration=LEASE_S, strict=True,
                                                   raise_on_lease_renewal_failure=False)  # fmt: skip
            try:
                await held.__aenter__()
                return held
            except Exception as exc:  # noqa: BLE001
                if attempt == ACQUIRE_TRIES:
                    raise SlotUnavailable(f"no slot of {self.name} after {attempt} tries: {error_line(exc)}") from None
                delay = _busy_delay(attempt)
                log.warning("slot of %s: %s; trying again in %.1f s", self.name, error_line(exc), delay)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def release(self, token: Any) -> None:
        await token.__aexit__(None, None, None)


def _busy_delay(attempt: int) -> float:
    return min(30.0, 0.5 * 2**attempt) * random.uniform(0.5, 1.5)


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
    """Slots for each backend of a run; ``mode`` is auto (server when configured), server or local."""
    if mode == "local" or (mode == "auto" and not server_configured()):
        return local_slots(backends, configured)
    wanted = wanted_limits(backends, configured)
    slots: dict[str, Slots] = {}
    async with get_client() as client:
        for name, engine in backends.items():
            gcl = limit_name(name, getattr(engine, "limit_scope", "machine"))
            for attempt in range(1, ACQUIRE_TRIES + 1):
                try:
                    limit, active = await _server_limit(client, gcl, wanted[name])
                    break
                except Exception as exc:  # noqa: BLE001 - a busy server; give up only after a while
                    if attempt == ACQUIRE_TRIES:
                        raise SlotUnavailable(f"could not read limit {gcl}: {error_line(exc)}") from None
                    await asyncio.sleep(_busy_delay(attempt))
            slots[name] = Slots(name, limit, ServerSlots(gcl)) if active else Slots(name, wanted[name])
    return slots
