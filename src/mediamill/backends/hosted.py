"""What every hosted-API backend shares: one HTTP client per event loop,
bounded downloads, polling back-off, a price table and a "no credit" breaker.

Nothing here knows a particular service's wire format.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import random
import time
import weakref
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from .base import BackendError, PermanentError

MAX_DOWNLOAD_BYTES = int(os.environ.get("MEDIAMILL_MAX_DOWNLOAD_MB", "2048")) * 1024 * 1024
DOWNLOAD_ATTEMPTS = 4


HTTP_IN_FLIGHT = 48  # requests on the wire at once, per backend and event loop


class LoopClients:
    """One ``httpx.AsyncClient`` per event loop: clients cannot cross loops, and each
    flow run has its own. Many concurrent polls share one client and its pool.

    ``slot()`` bounds the requests handed to the client at once: httpcore's pool
    scans its whole queue for every request it places, so a thousand queued
    polls cost quadratic time (measured: 1,000 tasks took 10x their ideal).
    """

    def __init__(self, **client_args: Any):
        limits = httpx.Limits(max_connections=HTTP_IN_FLIGHT, max_keepalive_connections=HTTP_IN_FLIGHT)
        self._args = {"limits": limits, **client_args}
        # Per event loop: its client and the semaphore bounding that client's requests.
        self._loops: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[httpx.AsyncClient, asyncio.Semaphore]
        ] = weakref.WeakKeyDictionary()

    def _current(self) -> tuple[httpx.AsyncClient, asyncio.Semaphore]:
        loop = asyncio.get_running_loop()
        pair = self._loops.get(loop)
        if pair is None or pair[0].is_closed:
            pair = self._loops[loop] = (httpx.AsyncClient(**self._args), asyncio.Semaphore(HTTP_IN_FLIGHT))
        return pair

    def get(self) -> httpx.AsyncClient:
        return self._current()[0]

    def slot(self) -> asyncio.Semaphore:
        return self._current()[1]

    async def close(self) -> None:
        """Close the current loop's client; each flow run does this when its rows are done."""
        pair = self._loops.pop(asyncio.get_running_loop(), None)
        if pair is not None:
            await pair[0].aclose()


def backoff(initial: float, maximum: float, factor: float = 1.5, jitter: float = 0.1) -> Iterator[float]:
    """Delays that grow by ``factor`` up to ``maximum``, each with a little jitter."""
    delay = initial
    while True:
        yield delay * (1 + random.uniform(-jitter, jitter))
        delay = min(maximum, delay * factor)


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


@dataclass(frozen=True)
class Price:
    per_request: float = 0.0
    per_1k_chars: float = 0.0

    def cost(self, chars: int) -> float:
        return round(self.per_request + self.per_1k_chars * chars / 1000, 6)


def price_table() -> dict[str, Price]:
    return _parse_prices(os.environ.get("MEDIAMILL_PRICES", "").strip())


@functools.lru_cache(maxsize=8)
def _parse_prices(raw: str) -> dict[str, Price]:
    """Prices for services that do not report a cost, from ``MEDIAMILL_PRICES``.

    JSON object keyed by ``backend:model`` (or ``backend``), each value either
    a number (USD per request) or ``{"per_request": .., "per_1k_chars": ..}``;
    the value may also name a JSON file holding that object.
    """
    if not raw:
        return {}
    if not raw.startswith("{"):
        raw = Path(raw).read_text()
    table = {}
    for key, value in json.loads(raw).items():
        table[key] = Price(per_request=float(value)) if isinstance(value, (int, float)) else Price(**value)
    return table


def lookup_price(backend: str, model: str, defaults: dict[str, Price]) -> Price | None:
    table = {**defaults, **price_table()}
    return table.get(f"{backend}:{model}") or table.get(backend)


async def download(
    client: httpx.AsyncClient,
    url: str,
    dest: Path,
    *,
    accept: tuple[str, ...] = ("audio/", "video/", "application/octet-stream"),
    max_bytes: int | None = None,
    timeout: float = 300.0,
    slot: asyncio.Semaphore | None = None,
) -> Path:
    """Stream ``url`` into ``dest`` (written beside it first, renamed when complete).

    A transfer that breaks is started again a few times; a response that is
    too large or of the wrong type is refused at once.
    """
    limit = max_bytes or MAX_DOWNLOAD_BYTES
    partial = dest.with_name(dest.name + ".part")
    last: Exception | None = None
    for attempt in range(DOWNLOAD_ATTEMPTS):
        if attempt:
            await asyncio.sleep(min(8.0, 0.5 * 2**attempt))
        try:
            async with slot or contextlib.nullcontext(), client.stream(
                "GET", url, timeout=timeout, follow_redirects=True, headers={"Accept-Encoding": "identity"}
            ) as response:
                if response.status_code >= 500 or response.status_code == 429:
                    raise BackendError(f"download failed: HTTP {response.status_code}")
                if response.status_code != 200:
                    raise PermanentError(f"download refused: HTTP {response.status_code}")
                ctype = response.headers.get("content-type", "").split(";")[0].strip().lower()
                if ctype and not ctype.startswith(accept):
                    raise PermanentError(f"download is {ctype!r}, not media")
                declared = int(response.headers.get("content-length") or 0)
                if declared > limit:
                    raise PermanentError(f"download of {declared} bytes exceeds the {limit}-byte limit")
                received = 0
                with partial.open("wb") as fh:
                    async for chunk in response.aiter_bytes():
                        received += len(chunk)
                        if received > limit:
                            raise PermanentError(f"download exceeds the {limit}-byte limit")
                        fh.write(chunk)
                if declared and received != declared:
                    raise BackendError(f"download broke off at {received} of {declared} bytes")
            partial.replace(dest)
            return dest
        except PermanentError:
            partial.unlink(missing_ok=True)
            raise
        except (httpx.HTTPError, BackendError) as exc:
            partial.unlink(missing_ok=True)
            last = exc
    raise BackendError(f"download failed after {DOWNLOAD_ATTEMPTS} attempts: {last}")


# Requests under way to stop paid work (cancel/kill), so an interrupted CLI waits for them.
STOPS_IN_FLIGHT = 0


@contextlib.asynccontextmanager
async def stopping() -> AsyncIterator[None]:
    global STOPS_IN_FLIGHT
    STOPS_IN_FLIGHT += 1
    try:
        yield
    finally:
        STOPS_IN_FLIGHT -= 1


def guess_suffix(url: str, content_type: str | None = None, default: str = ".bin") -> str:
    path = httpx.URL(url).path
    suffix = Path(path).suffix.lower()
    if suffix in (".wav", ".mp3", ".flac", ".ogg", ".m4a", ".aac", ".mp4", ".webm", ".mov", ".opus"):
        return suffix
    by_type = {"audio/mpeg": ".mp3", "audio/wav": ".wav", "audio/x-wav": ".wav", "video/mp4": ".mp4", "audio/flac": ".flac"}
    return by_type.get((content_type or "").lower(), default)
