"""Bounded downloads of a service's output: size, time, type and redirects checked, nothing half-written left.

A service's answer names a URL; ``download`` streams it beside its destination
and renames it into place when whole. Redirects are followed by hand (http(s)
only, no credentials carried); a body over ``MEDIAMILL_MAX_DOWNLOAD_MB`` is
refused on its ``Content-Length`` or cut off as it arrives; an attempt is
bounded by ``MEDIAMILL_DOWNLOAD_TIMEOUT_S`` end to end.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import TypeGuard

import httpx

from ...config import settings
from ...core.waits import doubling
from ..base import BackendError, PermanentError
from .http import url_host

DOWNLOAD_ATTEMPTS = 4
MAX_REDIRECTS = 5  # hops a download may take (CDNs use one or two)
# What a media download may be served as. A missing type is accepted too; the file is probed
# after download either way, so a mislabelled file is caught there.
MEDIA_TYPES = ("audio/", "video/", "application/octet-stream", "binary/octet-stream", "application/ogg")

__all__ = [
    "MEDIA_TYPES",
    "download",
    "download_deadline_s",
    "guess_suffix",
    "is_http_url",
    "max_download_bytes",
    "url_host",
]


def max_download_bytes() -> int:
    """``MEDIAMILL_MAX_DOWNLOAD_MB`` (default 2048): the largest output file accepted."""
    return int(settings().max_download_mb * 1024 * 1024)


def download_deadline_s() -> float:
    """``MEDIAMILL_DOWNLOAD_TIMEOUT_S`` (default 600): one download attempt, start to end.

    httpx's timeouts bound each read only: a server sending a byte a second never trips them.
    """
    return settings().download_timeout_s


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


def is_http_url(value: object) -> TypeGuard[str]:
    """Whether a value from a service's answer is an http(s) URL we may fetch."""
    return isinstance(value, str) and value.startswith(("http://", "https://"))


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
