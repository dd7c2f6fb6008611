"""A local Pixazo VoxCPM2 gateway (https://gateway.pixazo.ai) for tests.

It follows /work/notes/pixazo.md:

* ``POST /voxcpm/v1/text-to-speech`` and ``POST /voxcpm/v1/voice-cloning`` are
  synchronous: the answer carries the URL of a finished 48 kHz WAV file;
* the key travels in ``Ocp-Apim-Subscription-Key`` and the gateway is Azure API
  Management, so gateway errors (401, 403 quota, 429 rate limit, 404 unknown
  operation) have APIM's ``{"statusCode", "message"}`` body, while the backend's
  own errors (400 validation, 402 credits, 500) have ``{"error": "..."}``;
* the files are public (an R2/CDN bucket in production) and served here with
  ``GET /files/<id>.wav``.

Faults are queued with :meth:`PixazoEmulator.inject` and consumed by the next
matching requests.
"""

from __future__ import annotations

import hmac
import json
import time
import uuid

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from .server import HOSTILE_DOWNLOADS, Emulator, add_elsewhere, sample_media
from .wiro import TruncatedResponse

CALL_FAULTS = {
    "http400",
    "http401",
    "http402",
    "http403",
    "http429",
    "http500",
    "http502",
    "malformed",  # HTTP 200 with broken JSON
    "timeout",  # answers only after slow_s (other requests are not blocked)
    "drip",  # HTTP 200 headers, then one space every drip_s, forever (slow-loris)
    "redirect",  # 307 to /elsewhere on another host name (records what arrives there)
    "html_200",  # HTTP 200 with an HTML page, not JSON
}
# The synthesis runs, then its answer comes back in the wrong shape.
SHAPE_FAULTS = {
    "list": lambda answer: [answer],  # a JSON list, not an object
    "no_output": lambda answer: {"status": "success"},  # no URL field at all
    "output_object": lambda answer: {
        k: {"href": v} if k in ("output", "url", "audio_url") else v for k, v in answer.items()
    },
}
CALL_FAULTS |= set(SHAPE_FAULTS)
DOWNLOAD_FAULTS = {
    "download_broken",  # half the bytes under the full Content-Length, then the socket is dropped
    "download_404",
} | HOSTILE_DOWNLOADS  # see tests/helpers/emulators/server.py
FAULTS = CALL_FAULTS | DOWNLOAD_FAULTS

CFG_RANGE = (1.0, 3.0)  # cfg_value, default 2.0
STEPS_RANGE = (4, 30)  # dit_steps, default 10
SAMPLE_RATE = 48000

INVALID_KEY = (
    "Access denied due to invalid subscription key. Make sure to provide a valid key for an active subscription."
)
MISSING_KEY = (
    "Access denied due to missing subscription key."
    " Make sure to include subscription key when making requests to an API."
)


def _apim(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    """An Azure API Management gateway error body."""
    return JSONResponse({"statusCode": status, "message": message}, status_code=status, headers=headers)


def _error(status: int, message: str) -> JSONResponse:
    """A backend error body: 4xx validation errors carry an "error" key [DOC skills table]."""
    return JSONResponse({"error": message}, status_code=status)


FAULT_ANSWERS = {
    "http400": lambda: _error(400, "Bad request: the request could not be processed"),
    "http401": lambda: _apim(401, INVALID_KEY),
    "http402": lambda: _error(402, "Insufficient credits"),
    "http403": lambda: _apim(403, "Out of call volume quota. Quota will be replenished in 00:00:59."),
    "http429": lambda: _apim(429, "Rate limit is exceeded. Try again in 1 seconds.", {"Retry-After": "0.1"}),
    "http500": lambda: _error(500, "Internal server error"),
    # a Cloudflare origin error page in front of the GPU backend: HTML, not JSON
    "http502": lambda: Response(
        "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center>"
        "<hr><center>cloudflare</center></body></html>",
        status_code=502,
        media_type="text/html",
    ),
}


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _validate(operation: str, body: dict) -> str | None:
    """The first validation problem of a request body, or None. Unknown keys are ignored."""
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        return "text is required"
    if "cfg_value" in body:
        cfg = body["cfg_value"]
        if not _number(cfg) or not CFG_RANGE[0] <= cfg <= CFG_RANGE[1]:
            return f"cfg_value must be a number between {CFG_RANGE[0]} and {CFG_RANGE[1]}"
    if "dit_steps" in body:
        steps = body["dit_steps"]
        if not _number(steps) or steps != int(steps) or not STEPS_RANGE[0] <= steps <= STEPS_RANGE[1]:
            return f"dit_steps must be an integer between {STEPS_RANGE[0]} and {STEPS_RANGE[1]}"
    if operation == "voice-cloning":
        ref = body.get("reference_audio_url")
        if not isinstance(ref, str) or not ref.strip():
            return "reference_audio_url is required"
        if not ref.startswith(("http://", "https://", "data:audio/")):
            return "reference_audio_url must be a publicly reachable http(s) URL"
        if body.get("prompt_text") is not None and not isinstance(body["prompt_text"], str):
            return "prompt_text must be a string"
    return None


class PixazoEmulator(Emulator):
    name = "Pixazo"
    FAULTS = frozenset(FAULTS)

    def __init__(self, *, api_key: str = "pixazo-test-key-0123456789", latency_s: float = 0.05, slow_s: float = 5.0):
        super().__init__(slow_s)
        self.api_key = api_key
        self.latency_s = latency_s
        self._requests: list[tuple[str, dict]] = []
        self._downloads = 0
        sample_media("wav")  # made (and cached) before any request needs it
        self.app = self._build_app()

    # -- observation (snapshots, safe to read from the test thread) --------------------------

    @property
    def requests(self) -> list[tuple[str, dict]]:
        with self._lock:
            return list(self._requests)

    @property
    def downloads(self) -> int:
        with self._lock:
            return self._downloads

    # -- internals --------------------------------------------------------------------------

    def _new_file(self) -> str:
        return f"{self.url}/files/{uuid.uuid4().hex}.wav"

    async def _call(self, operation: str, request: Request):
        started = time.monotonic()
        raw = await request.body()
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError:
            body = None
        with self._lock:
            self._requests.append((operation, body if isinstance(body, dict) else {}))

        # The gateway checks the subscription key before anything reaches the backend.
        key = request.headers.get("ocp-apim-subscription-key")
        if not key:
            return _apim(401, MISSING_KEY)
        if not hmac.compare_digest(key.encode(), self.api_key.encode()):
            return _apim(401, INVALID_KEY)

        fault = self._take(*CALL_FAULTS)
        if fault in FAULT_ANSWERS:
            return FAULT_ANSWERS[fault]()
        if fault == "redirect":
            return self.redirect_elsewhere(request)
        if fault == "drip":
            return self.drip("application/json")
        if fault == "html_200":
            return Response("<html><body><h1>Service is busy</h1></body></html>", media_type="text/html")
        if not isinstance(body, dict):
            return _error(400, "Invalid JSON body")
        if problem := _validate(operation, body):
            return _error(400, problem)

        await self._sleep(self.slow_s if fault == "timeout" else self.latency_s)  # synthesis time
        url = self._new_file()
        if operation == "text-to-speech":
            answer = {"output": url}
        else:
            elapsed = round(time.monotonic() - started, 3)
            # [INF] the full shape is undocumented; url/audio_url are seen in third-party clients
            answer = {
                "url": url,
                "audio_url": url,
                "sample_rate": SAMPLE_RATE,
                "elapsed_s": elapsed,
                "status": "success",
            }
        if fault == "malformed":
            text = json.dumps(answer)
            return Response(text[: len(text) // 2], media_type="application/json")
        if fault in SHAPE_FAULTS:
            return JSONResponse(SHAPE_FAULTS[fault](answer))
        return answer

    # -- endpoints --------------------------------------------------------------------------

    def _build_app(self) -> FastAPI:
        app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

        @app.exception_handler(StarletteHTTPException)
        async def not_found(request: Request, exc: StarletteHTTPException):
            if exc.status_code in (404, 405):  # APIM: no operation matches the method and path
                return _apim(404, "Resource not found")
            return _apim(exc.status_code, str(exc.detail))

        @app.post("/voxcpm/v1/text-to-speech")
        async def text_to_speech(request: Request):
            return await self._call("text-to-speech", request)

        @app.post("/voxcpm/v1/voice-cloning")
        async def voice_cloning(request: Request):
            return await self._call("voice-cloning", request)

        add_elsewhere(app, self)

        @app.get("/files/{name}")
        async def download(name: str, request: Request):
            """The public file bucket: no subscription key needed.

            Any <id>.wav is served, not only the ones this instance handed out: the files are
            public and long-lived, so a URL noted by an earlier run still downloads."""
            self._visit(request)
            with self._lock:
                self._downloads += 1
            known = name.endswith(".wav") and len(name) > len(".wav")
            fault = self._take(*DOWNLOAD_FAULTS) if known else None
            if not known or fault == "download_404":
                return Response("Not Found", status_code=404, media_type="text/plain")
            if fault == "download_broken":
                return TruncatedResponse(sample_media("wav"), media_type="audio/wav")
            if fault in HOSTILE_DOWNLOADS:
                return self.hostile_download(fault, request, sample_media("wav"), "audio/wav")
            return Response(sample_media("wav"), media_type="audio/wav")

        return app
