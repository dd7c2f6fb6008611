"""What every hosted-API backend shares: one HTTP client per event loop,
bounded downloads, polling back-off, a price table and a "no credit" breaker.

Nothing here knows a particular service's wire format.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import time
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from ..config import settings
from ..core.waits import doubling
from .base import BackendError, CostEstimate, PermanentError

DOWNLOAD_ATTEMPTS = 4
MAX_REDIRECTS = 5  # hops a download may take (CDNs use one or two)
# What a media download may be served as. A missing type is accepted too; the file is probed
# after download either way, so a mislabelled file is caught there.
MEDIA_TYPES = ("audio/", "video/", "application/octet-stream", "binary/octet-stream", "application/ogg")


def max_download_bytes() -> int:
    """``MEDIAMILL_MAX_DOWNLOAD_MB`` (default 2048): the largest output file accepted."""
    return int(settings().max_download_mb * 1024 * 1024)


def download_deadline_s() -> float:
    """``MEDIAMILL_DOWNLOAD_TIMEOUT_S`` (default 600): one download attempt, start to end.

    httpx's timeouts bound each read only: a server sending a byte a second never trips them.
    """
    return settings().download_timeout_s


HTTP_IN_FLIGHT = 48  # requests on the wire at once, per backend and event loop
KEEPALIVE_S = 2.0  # idle connections kept this long at most


class LoopClients:
    """One ``httpx.AsyncClient`` per event loop: clients cannot cross loops, and each
    flow run has its own. Many concurrent polls share one client and its pool.

    ``slot()`` bounds the requests handed to the client at once: httpcore's pool
    scans its whole queue for every request it places, so a thousand queued
    polls cost quadratic time (measured: 1,000 tasks took 10x their ideal).
    """

    def __init__(self, **client_args: Any):
        # An idle connection is let go well before a server's own idle timeout (uvicorn's is 5 s, as is httpx's
        # default here): with equal timers, a request sent just as the server closes the connection fails with a
        # ReadError, and a submission that fails so is a row failed as possibly paid for.
        limits = httpx.Limits(
            max_connections=HTTP_IN_FLIGHT, max_keepalive_connections=HTTP_IN_FLIGHT, keepalive_expiry=KEEPALIVE_S
        )
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
    return _parse_prices(settings().prices.strip())


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


def priced(backend: str, price: Price | None, requests: int, chars: int, unpriced: CostEstimate) -> CostEstimate:
    """A cost estimate from a price (``requests`` requests of ``chars`` characters in all); ``unpriced`` without one."""
    if price is None:
        return unpriced
    usd = round(price.per_request * requests + price.per_1k_chars * chars / 1000, 4)
    return CostEstimate(backend, usd, f"price table: {requests} requests x ${price.per_request:g} + "
                                      f"{chars / 1000:.1f}k characters x ${price.per_1k_chars:g}")  # fmt: skip


def lookup_price(backend: str, model: str, defaults: dict[str, Price]) -> Price | None:
    table = {**defaults, **price_table()}
    return table.get(f"{backend}:{model}") or table.get(backend)


async def download(
    client: httpx.AsyncClient,
    url: str,
    dest: Path,
    *,
    accept: tuple[str, ...] = MEDIA_TYPES,
    max_bytes: int | None = None,
    timeout: float = 300.0,
    slot: asyncio.Semaphore | None = None,
) -> Path:
    """Stream ``url`` into ``dest`` (written beside it first, renamed when complete).

    A transfer that breaks is started again a few times; a response that is too
    large, of the wrong type or redirected somewhere odd is refused at once; one
    that outlasts ``download_deadline_s()`` fails the attempt (the row's retries decide).
    """
    limit = max_bytes or max_download_bytes()
    deadline = download_deadline_s()
    partial = dest.with_name(dest.name + ".part")
    last: Exception | None = None
    try:
        for attempt in range(DOWNLOAD_ATTEMPTS):
            if attempt:
                await asyncio.sleep(doubling(attempt, cap=8.0))
            try:
                async with slot or contextlib.nullcontext():
                    async with asyncio.timeout(deadline):  # the clock starts once a slot is ours
                        await _fetch(client, url, partial, accept, limit, timeout)
                partial.replace(dest)
                return dest
            except TimeoutError:
                # Not retried here: a server this slow is as slow the next time, and each try costs the deadline.
                raise BackendError(f"download from {url_host(url)} did not finish within {deadline:g} s") from None
            except PermanentError:
                raise
            except (httpx.HTTPError, BackendError) as exc:
                last = exc
    finally:
        partial.unlink(missing_ok=True)  # nothing half-written stays behind, whatever happened
    raise BackendError(f"download failed after {DOWNLOAD_ATTEMPTS} attempts: {last}")


def is_http_url(value: object) -> bool:
    """Whether a value from a service's answer is an http(s) URL we may fetch."""
    return isinstance(value, str) and value.startswith(("http://", "https://"))


def url_host(url: str | httpx.URL) -> str:
    try:
        return httpx.URL(url).netloc.decode("ascii", "replace") or "?"
    except (httpx.InvalidURL, TypeError):
        return "?"


async def _fetch(
    client: httpx.AsyncClient, url: str, partial: Path, accept: tuple[str, ...], limit: int, timeout: float
) -> None:
    """GET ``url`` into ``partial``, following redirects by hand.

    Each hop is a fresh request with only the headers below (and the client's defaults, which
    hold no credentials), so nothing of ours reaches the host a redirect names; only http(s)
    and at most MAX_REDIRECTS hops.
    """
    try:
        target = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        raise PermanentError(f"download URL is not a URL: {str(url)[:100]!r}") from None
    for hop in range(MAX_REDIRECTS + 1):
        if target.scheme not in ("http", "https"):
            via = f" (redirected from {url_host(url)})" if hop else ""
            raise PermanentError(f"download refused: a {target.scheme or 'relative'!r} URL{via}; only http and https")
        request = client.build_request("GET", target, headers={"Accept-Encoding": "identity"}, timeout=timeout)
        response = await client.send(request, stream=True, follow_redirects=False)
        try:
            if not response.is_redirect:
                await _save(response, partial, accept, limit)
                return
            try:
                target = target.join(response.headers["location"])
            except httpx.InvalidURL:
                raise PermanentError(f"download from {url_host(target)} redirected to an invalid URL") from None
        finally:
            await response.aclose()
    raise PermanentError(f"download from {url_host(url)} redirected more than {MAX_REDIRECTS} times")


async def _save(response: httpx.Response, partial: Path, accept: tuple[str, ...], limit: int) -> None:
    status = response.status_code
    if status >= 500 or status == 429:
        raise BackendError(f"download failed: HTTP {status}")
    if status != 200:
        raise PermanentError(f"download refused: HTTP {status}")
    ctype = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype and not ctype.startswith(accept):
        raise PermanentError(f"download is {ctype!r}, not audio or video (an error page?)")
    declared = int(response.headers.get("content-length") or 0)  # h11 has checked it is digits
    if declared > limit:  # refused before a byte of the body is read
        raise PermanentError(f"download of {declared} bytes exceeds the {limit}-byte limit (MEDIAMILL_MAX_DOWNLOAD_MB)")
    received = 0
    with partial.open("wb") as fh:
        async for chunk in response.aiter_bytes():
            received += len(chunk)
            if received > limit:
                raise PermanentError(f"download exceeds the {limit}-byte limit (MEDIAMILL_MAX_DOWNLOAD_MB)")
            fh.write(chunk)
    if declared and received != declared:
        raise BackendError(f"download broke off at {received} of {declared} bytes")


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
    try:
        path = httpx.URL(url).path
    except (httpx.InvalidURL, TypeError):
        path = ""  # the download will say what is wrong with it
    suffix = Path(path).suffix.lower()
    if suffix in (".wav", ".mp3", ".flac", ".ogg", ".m4a", ".aac", ".mp4", ".webm", ".mov", ".opus"):
        return suffix
    by_type = {
        "audio/mpeg": ".mp3",
        "audio/wav": ".wav",
        "audio/x-wav": ".wav",
        "video/mp4": ".mp4",
        "audio/flac": ".flac",
    }
    return by_type.get((content_type or "").lower(), default)
