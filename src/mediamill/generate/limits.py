"""How many rows of each backend run at once: the limits a run's lanes obey.

A run bounds each backend by running as many lanes as its limit allows
(``lanes.run_lanes``); a lane holds one of the backend's slots while it works.
In one process that is all. When the limit lives on a Prefect server (a
global concurrency limit, so the bound holds across every worker), a
``SlotSource`` hands out the server's slots; ``mediamill.flows.limits``
provides it, since only the flows know Prefect:

- hosted backends (``limit_scope = "fleet"``) share ``mediamill-<backend>``:
  API slots for the whole fleet;
- local engines (``"machine"``) use ``mediamill-<backend>-<host>``: GPU or CPU
  slots per machine, however many workers run on it.

A run holds a slot for a turn of work (``TURN_S``) rather than one row, so
fast rows do not pay a server round trip each.
"""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

from ..backends import Backend
from ..core.redact import error_line

LEASE_S = 300.0  # renewed while held; how long a dead worker's slot stays taken
TURN_S = 30.0  # a run keeps a server slot for this long of work, then lets other runs have a turn

log = logging.getLogger(__name__)


class SlotUnavailable(Exception):
    """The limit's server could not be asked for a slot (not: the limit is full, which just waits)."""


class SlotSource(Protocol):
    """Where a backend's slots come from when the limit is held outside this process."""

    name: str

    async def acquire(self) -> object:
        """Wait for one slot and return a token for ``release``; raises SlotUnavailable."""

    async def release(self, token: object) -> None:
        """Give one slot back."""


def limit_name(backend: str, scope: str, host: str | None = None) -> str:
    """The name of a backend's limit: fleet-wide for hosted APIs, per machine for local engines."""
    name = f"mediamill-{backend}" if scope == "fleet" else f"mediamill-{backend}-{host or socket.gethostname()}"
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name)  # Prefect's names allow no ':' or '/'


def wanted_limits(backends: dict[str, Backend], configured: dict[str, int]) -> dict[str, int]:
    """Each backend's limit from the settings (``MEDIAMILL_CONCURRENCY``), else its own default."""
    return {name: max(1, configured.get(name, engine.default_concurrency)) for name, engine in backends.items()}


@dataclass
class Slots:
    """One backend's slots in this run: ``limit`` lanes, each holding a slot of ``source`` when there is one."""

    backend: str
    limit: int
    source: SlotSource | None = None

    @property
    def server_limit(self) -> str | None:
        return self.source.name if self.source is not None else None

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        if self.source is None:
            yield
            return
        token = await self.source.acquire()
        try:
            yield
        finally:
            try:
                await self.source.release(token)
            except Exception as exc:  # noqa: BLE001 - the row's work is done; the lease runs out by itself
                log.warning("could not give back a slot of %s (%s); its lease ends within %.0f s",
                            self.source.name, error_line(exc), LEASE_S)  # fmt: skip

    def describe(self) -> str:
        where = f"server limit {self.server_limit}" if self.source is not None else "in this process"
        return f"{self.backend}: {self.limit} at once ({where})"


def local_slots(backends: dict[str, Backend], configured: dict[str, int]) -> dict[str, Slots]:
    """Limits held in this process only."""
    return {name: Slots(name, limit) for name, limit in wanted_limits(backends, configured).items()}
