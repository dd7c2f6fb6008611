"""``mediamill serve``: an OpenAI-style speech API over local VoxCPM or Piper.

Endpoints: POST ``/v1/audio/speech`` (wav, mp3, flac, opus, aac, pcm; with
``stream_format=sse``, OpenAI's server-sent audio events), POST
``/v1/audio/speech/stream`` (raw 16-bit mono PCM, ``X-Sample-Rate``),
POST ``/v1/audio/speech/cancel``, POST ``/v1/voices`` and GET ``/voices``
(the voice registry), GET ``/health``, and a playground page at ``/``.

Safety: binds to 127.0.0.1 unless told otherwise; with
``MEDIAMILL_SERVE_API_KEY`` set, every path but ``GET /health`` and ``GET /``
(``/docs`` and ``/openapi.json`` included) needs ``Authorization: Bearer KEY``
(or ``X-API-Key``), checked before the body is read; a key in the query string
is not accepted. ``prompt_wav_path`` may only name a readable audio file inside
the voice and prompt folders (403 otherwise, never echoing the path), and a
``voice`` is a registry name, never a path. Bodies are bounded whether they
come with a Content-Length or chunked (413), texts by
``MEDIAMILL_SERVE_MAX_INPUT_CHARS``; requests beyond ``MAX_PENDING`` get 429
with ``Retry-After``. Malformed bodies get 422; an unexpected failure gets a
JSON 500 that says nothing of the request.
"""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .engines import make_engine
from .guard import Guard
from .responses import SafeJSON
from .routes import router
from .service import Service
from .settings import ServeSettings


async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = jsonable_encoder(exc.errors(), exclude={"input", "ctx", "url"})
    fields = [".".join(str(p) for p in e["loc"][1:]) or "body" for e in errors]
    summary = "; ".join(f"{name}: {e['msg']}" for name, e in zip(fields, errors))
    # OpenAI's error object names the (first) parameter at fault; its SDKs show it to the caller.
    error = {"message": summary, "type": "invalid_request_error", "param": fields[0] if fields else None}
    return SafeJSON({"error": error, "detail": errors}, 422)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    if exc.status_code == 400 and isinstance(exc.__cause__, (ValueError, RecursionError)):
        # FastAPI could not decode the body at all (not UTF-8, nested too deep): as malformed as bad JSON.
        error = {"message": "body: not a JSON object in UTF-8", "type": "invalid_request_error"}
        return SafeJSON({"error": error}, 422)
    detail = exc.detail if isinstance(exc.detail, dict) else {"message": str(exc.detail)}
    return SafeJSON({"error": detail}, exc.status_code, headers=exc.headers)


async def _failed(request: Request, exc: Exception) -> JSONResponse:
    # The traceback goes to the server's log; the client learns nothing of paths or internals.
    return SafeJSON({"error": {"message": "internal error; see the server's log", "type": "server_error"}}, 500)


def create_app(settings: ServeSettings | None = None, engine: Any = None) -> FastAPI:
    cfg = settings or ServeSettings()
    svc = Service(cfg, engine or make_engine(cfg.engine))

    async def lifespan(app: FastAPI):
        await anyio.to_thread.run_sync(svc.start)
        yield
        svc.stop()

    # Without a key the documentation is open like the rest; with one, the guard asks for it there too.
    app = FastAPI(
        title="mediamill speech", lifespan=lifespan, docs_url="/docs", redoc_url=None, default_response_class=SafeJSON
    )
    app.state.service = svc
    app.add_exception_handler(RequestValidationError, _invalid)  # type: ignore[arg-type]  # takes a subclass
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]  # takes a subclass
    app.add_exception_handler(Exception, _failed)
    app.include_router(router)
    key = cfg.api_key.get_secret_value() if cfg.api_key else None
    app.add_middleware(Guard, key=key, max_bytes=int(cfg.max_body_mb * 1024 * 1024))
    return app
