"""The guard every HTTP request passes first: the API key, then the body's size, before any body is read."""

from __future__ import annotations

import hmac
from typing import Any

from starlette.datastructures import Headers

from .responses import BodyTooLarge, SafeJSON
from .settings import OPEN_PATHS


def _key_given(headers: Headers) -> bytes:
    auth = headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    given = token.strip() if scheme.lower() == "bearer" else headers.get("x-api-key", "")
    return given.encode("latin-1", "replace")  # the header's own bytes (Starlette decodes them as latin-1)


class Guard:
    """Every HTTP request passes here first: the API key, then the body's size, before any body is read.

    A body with a Content-Length over the limit is refused at once; every body
    (chunked ones included, whatever Content-Length they also claim) is counted
    as it arrives and refused when it passes the limit.
    """

    def __init__(self, app: Any, key: str | None, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes
        self.key = key.encode("utf-8") if key is not None else None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        is_open = scope["path"] in OPEN_PATHS and scope["method"] == "GET"
        if self.key is not None and not is_open and not hmac.compare_digest(_key_given(headers), self.key):
            error = {"message": "missing or wrong API key", "type": "authentication_error"}
            await SafeJSON({"error": error}, 401, headers={"WWW-Authenticate": "Bearer"})(scope, receive, send)
            return
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            status = 413 if length.isdigit() else 400
            message = f"request body over {self.max_bytes} bytes" if status == 413 else "bad Content-Length"
            await SafeJSON({"error": {"message": message, "type": "invalid_request_error"}}, status)(
                scope, receive, send
            )
            return
        # Count what arrives whatever the headers say: with Transfer-Encoding, a Content-Length is not the size.
        received, started = 0, False

        async def counted() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracked(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except BodyTooLarge as exc:  # read outside a route (routes answer it themselves)
            if started:
                raise
            await SafeJSON({"error": exc.detail}, 413)(scope, receive, send)
