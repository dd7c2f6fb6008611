"""Answers ``mediamill serve`` gives: JSON that always renders, OpenAI-shaped errors, and streams that clean up."""

from __future__ import annotations

import json
from typing import Any

import anyio
from fastapi import HTTPException
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Receive, Scope, Send


class SafeJSON(JSONResponse):
    """JSON that always renders: ASCII escapes, so a lone surrogate in a name cannot turn an answer into a 500."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


class BodyTooLarge(StarletteHTTPException):
    def __init__(self, max_bytes: int):
        detail = {"message": f"request body over {max_bytes} bytes", "type": "invalid_request_error"}
        super().__init__(413, detail)  # type: ignore[arg-type]  # starlette says str; _http_error renders dicts


class CleanStream(StreamingResponse):
    """A streamed answer whose clean-up runs however it ends: done, failed, or the client gone before a byte.

    (A generator's own ``finally`` never runs when the client leaves before it
    starts, and cannot await once its task is cancelled: that leaked the slot.)
    """

    def __init__(self, content: Any, on_close: Any, **kwargs: Any):
        super().__init__(content, **kwargs)
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await self._on_close()


def api_error(status: int, message: str, field: str | None = None) -> HTTPException:
    detail: dict[str, Any] = {"message": message, "type": "invalid_request_error"}
    if field:
        detail["param"] = field
    return HTTPException(status, detail)
