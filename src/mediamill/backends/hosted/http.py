"""The one HTTP client of the hosted backends: how a call is sent, and what each way it can fail means.

A call to a service ends in one of four ways, and each backend treats them alike:

- ``NotSent``: the request never left (no connection): safe to send again.
- ``Uncertain``: it may have reached the service, but the answer was lost, late
  or unreadable. A call that may have started paid work is never sent again
  on a guess: the caller fails the row with what it knows.
- ``PermanentError``: a redirect (never followed: the key is a custom header
  httpx would send to any host), refused credentials, a request the service
  rejects. Retrying cannot help.
- an ``httpx.Response`` the caller reads: ``json_object`` insists on a JSON
  object, ``error_text`` finds the service's message in an error body, and
  ``retry_wait`` honours ``Retry-After`` (else doubling, ``core.waits``).

``post`` is the async call on a ``LoopClients`` (one client per event loop,
requests bounded); ``request_sync`` the same call for a backend that runs in
a worker thread, on a plain ``httpx.Client``. Nothing here knows a service's
wire format.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

import httpx

from ...core.waits import doubling, retry_after
from ..base import BackendError, PermanentError

__all__ = [
    "HTTP_IN_FLIGHT",
    "KEEPALIVE_S",
    "LoopClients",
    "NotSent",
    "ServiceError",
    "Uncertain",
    "error_text",
    "json_object",
    "post",
    "refuse_redirect",
    "request_sync",
    "retry_wait",
    "url_host",
]

HTTP_IN_FLIGHT = 48  # requests on the wire at once, per backend and event loop
KEEPALIVE_S = 2.0  # idle connections kept this long at most


class ServiceError(BackendError):
    """A call to a hosted service that failed in a way a later try may not (retriable)."""


class NotSent(ServiceError):
    """The request never reached the service (no connection): sending it again cannot pay twice."""


class Uncertain(ServiceError):
    """The request may have reached the service, but its answer was lost, late or unreadable."""


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


def refuse_redirect(response: httpx.Response, where: str, setting: str) -> PermanentError:
    """The error for a redirect: never followed, so the credentials stay here; ``setting`` names the address."""
    return PermanentError(
        f"{where}: answered with a redirect (HTTP {response.status_code}) to "
        f"{url_host(response.headers.get('location', ''))}; not followed, so the key stays here: check {setting}"
    )


async def post(
    clients: LoopClients, url: str, where: str, *, setting: str, timeout: float, headers: dict[str, str], **kw: Any
) -> httpx.Response:
    """POST on this event loop's client; the answer whole within ``timeout``; redirects refused.

    ``where`` names the call in messages (``"wiro Run/x"``); ``setting`` is the variable holding the service's
    address. Raises ``NotSent``, ``Uncertain`` or ``PermanentError`` (see the module doc); any status is returned.
    """
    try:
        async with clients.slot(), asyncio.timeout(timeout):  # httpx times each read; this, the whole answer
            response = await clients.get().post(url, headers=headers, timeout=timeout, follow_redirects=False, **kw)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        raise NotSent(f"{where}: {type(exc).__name__} (request not sent)") from None
    except (httpx.TimeoutException, TimeoutError):
        raise Uncertain(f"{where}: no complete answer within {timeout:g} s") from None
    except httpx.HTTPError as exc:
        raise Uncertain(f"{where}: {type(exc).__name__}") from None
    if response.is_redirect:
        raise refuse_redirect(response, where, setting)
    return response


def request_sync(
    client: httpx.Client, method: str, path: str, where: str, *, setting: str, max_bytes: int, **kw: Any
) -> httpx.Response:
    """``post``'s twin for a worker thread: one request on a plain client, failures mapped the same way, and
    a body over ``max_bytes`` refused (on its ``Content-Length``, else as it arrives)."""
    try:
        response = client.send(client.build_request(method, path, **kw), stream=True, follow_redirects=False)
        try:
            if response.is_redirect:
                raise refuse_redirect(response, where, setting)
            declared = int(response.headers.get("content-length") or 0)
            if declared > max_bytes:
                raise PermanentError(f"{where}: an answer of {declared} bytes exceeds the {max_bytes}-byte limit")
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > max_bytes:
                    raise PermanentError(f"{where}: the answer exceeds the {max_bytes}-byte limit")
        finally:
            response.close()
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        raise NotSent(f"{where}: {type(exc).__name__} (request not sent)") from None
    except httpx.TimeoutException:
        raise Uncertain(f"{where}: no complete answer in time") from None
    except httpx.HTTPError as exc:
        raise Uncertain(f"{where}: {type(exc).__name__}") from None
    # The body as read (decoded already), under the limit: the answer's headers, less those of the encoding.
    headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in _ENCODING_HEADERS]
    return httpx.Response(response.status_code, headers=headers, content=bytes(body), request=response.request)


_ENCODING_HEADERS = ("content-encoding", "content-length", "transfer-encoding")


def json_object(response: httpx.Response, where: str) -> dict[str, Any]:
    """The answer's JSON object; ``Uncertain`` when it is not JSON or not an object (a proxy's page, a cut body)."""
    try:
        body = response.json()
    except ValueError:
        raise Uncertain(f"{where}: malformed JSON (HTTP {response.status_code})") from None
    if not isinstance(body, dict):
        raise Uncertain(f"{where}: answered a JSON {type(body).__name__}, not an object")
    return body


def error_text(response: httpx.Response) -> str:
    """The service's own words in an error answer: ``error`` (text, or an object's ``message``), ``message``,
    ``detail``; else the start of the body."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200].strip() or response.reason_phrase
    if isinstance(body, dict):
        for key in ("error", "message", "detail"):
            value = body.get(key)
            if isinstance(value, str):
                return value[:300]
            if isinstance(value, dict) and isinstance(value.get("message"), str):
                return value["message"][:300]
            if key == "detail" and value is not None:
                return str(value)[:300]
    return str(body)[:200]


def retry_wait(response: httpx.Response, attempt: int, base: float = 0.5, cap: float = 60.0) -> float:
    """How long to wait before trying again after a busy answer: its ``Retry-After``, else doubling from ``base``."""
    return retry_after(response.headers.get("retry-after"), doubling(attempt, base, cap))


def url_host(url: str | httpx.URL) -> str:
    """A URL's host and port, for messages (never its path or credentials)."""
    try:
        return httpx.URL(url).netloc.decode("ascii", "replace") or "?"
    except (httpx.InvalidURL, TypeError):
        return "?"
