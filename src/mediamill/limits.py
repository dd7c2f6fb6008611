"""How many rows of each backend run at once: in one process, and across the fleet.

A run bounds each backend by running as many lanes as its limit allows (see
``flows.produce``). When a Prefect server is configured (``PREFECT_API_URL``),
each backend also has a Prefect global concurrency limit, and a lane holds one
of its slots while it works, so the bound holds across every worker that
talks to that server:

- hosted backends (``limit_scope = "fleet"``) share ``mediamill-<backend>``:
  API slots for the whole fleet;
- local engines (``"machine"``) use ``mediamill-<backend>-<host>``: GPU or CPU
  slots per machine, however many workers run on it.

A missing limit is created with the configured value (``MEDIAMILL_CONCURRENCY``,
else the backend's default); an existing one is the operator's and wins, so
``prefect gcl update mediamill-wiro --limit 8`` (or the UI) changes it live for
runs that start afterwards. Slots are leased: a worker that dies gives its
slots back when the lease runs out. A run holds a slot for a turn of work
(``TURN_S``) rather than one row, so fast rows do not pay a server round trip
each.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from .backends import Backend
from .redact import error_line

LEASE_S = 300.0  # renewed while held; how long a dead worker's slot stays taken
TURN_S = 30.0  # a run keeps a server slot for this long of work, then lets other runs have a turn
ACQUIRE_TRIES = 6  # a server too busy to answer (SQLite under load answers 503) is tried this often

log = logging.getLogger(__name__)


class SlotUnavailable(Exception):
    """The Prefect server could not be asked for a slot (not: the limit is full, which just waits)."""


def server_configured() -> bool:
    from prefect.settings import get_current_settings

    return bool(get_current_settings().api.url)


def limit_name(backend: str, scope: str, host: str | None = None) -> str:
    name = f"mediamill-{backend}" if scope == "fleet" else f"mediamill-{backend}-{host or socket.gethostname()}"
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name)  # Prefect's names allow no ':' or '/'


@dataclass
class Slots:
    """One backend's slots in this run: ``limit`` lanes, each holding a server slot when one applies."""

    backend: str
    limit: int
    server_limit: str | None = None  # the Prefect global concurrency limit, when one applies

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        if self.server_limit is None:
            yield
            return
        held = await self._take_server_slot()
        try:
            yield
        finally:
            try:
                await held.__aexit__(None, None, None)
            except Exception as exc:  # noqa: BLE001 - the row's work is done; the lease runs out by itself
                log.warning("could not give back a slot of %s (%s); its lease ends within %.0f s",
                            self.server_limit, error_line(exc), LEASE_S)  # fmt: skip

    async def _take_server_slot(self) -> Any:
        """Enter Prefect's ``concurrency`` for one slot; a busy server (5xx, timeouts) is tried again.

        A full limit is not an error: Prefect waits for a slot as long as it takes.
        """
        from prefect.concurrency.asyncio import concurrency

        assert self.server_limit is not None
        for attempt in range(1, ACQUIRE_TRIES + 1):
            held = concurrency(self.server_limit, occupy=1, lease_duration=LEASE_S, strict=True,
                               raise_on_lease_renewal_failure=False)  # fmt: skip
            try:
                await held.__aenter__()
                return held
            except Exception as exc:  # noqa: BLE001
                if attempt == ACQUIRE_TRIES:
                    raise SlotUnavailable(
                        f"no slot of {self.server_limit} after {attempt} tries: {error_line(exc)}"
                    ) from None
                delay = min(30.0, 0.5 * 2**attempt) * random.uniform(0.5, 1.5)
                log.warning("slot of %s: %s; trying again in %.1f s", self.server_limit, error_line(exc), delay)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    def describe(self) -> str:
        where = f"server limit {self.server_limit}" if self.server_limit else "in this process"
        return f"{self.backend}: {self.limit} at once ({where})"


async def _server_limit(client: Any, name: str, wanted: int) -> tuple[int, bool]:
    """The limit's (value, active) on the server, creating it with ``wanted`` if missing."""
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

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
    wanted = {name: max(1, configured.get(name, engine.default_concurrency)) for name, engine in backends.items()}
    if mode == "local" or (mode == "auto" and not server_configured()):
        return {name: Slots(name, limit) for name, limit in wanted.items()}
    from prefect.client.orchestration import get_client

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
                    await asyncio.sleep(min(30.0, 0.5 * 2**attempt) * random.uniform(0.5, 1.5))
            slots[name] = Slots(name, limit, gcl) if active else Slots(name, wanted[name])
    return slots
