"""``mediamill serve``: an OpenAI-style speech API over local VoxCPM or Piper.

Endpoints: POST ``/v1/audio/speech`` (wav, mp3, flac, opus, aac, pcm),
POST ``/v1/audio/speech/stream`` (raw 16-bit mono PCM, ``X-Sample-Rate``),
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

import asyncio
import functools
import hmac
import itertools
import json
import shutil
import tempfile
import threading
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import anyio
from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException

from .longform import BadCaseError, Reading
from .serve_engines import Cancelled, RequestProblem, Speech, as_voice, make_engine
from .manifest import check_safe_id
from .voices import AUDIO_SUFFIXES, Voice, add_voice, find_voice_in, list_voices

FORMATS = {
    "wav": ("audio/wav", None),
    "mp3": ("audio/mpeg", ["-c:a", "libmp3lame", "-b:a", "128k", "-f", "mp3"]),
    "flac": ("audio/flac", ["-c:a", "flac", "-f", "flac"]),
    "opus": ("audio/ogg", ["-c:a", "libopus", "-b:a", "64k", "-f", "ogg"]),
    "aac": ("audio/aac", ["-c:a", "aac", "-b:a", "128k", "-f", "adts"]),
    "pcm": ("audio/pcm", None),
}
# OpenAI clients always send one of these; they mean "the server's default voice" here.
STOCK_VOICES = {"alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer", "verse"}
# Reachable without the API key (GET only): the health check and the playground page.
OPEN_PATHS = {"/", "/health"}
MAX_PROMPT_PATH = 4096


class ServeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MEDIAMILL_SERVE_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    engine: Literal["voxcpm", "piper"] = "voxcpm"
    api_key: SecretStr | None = None
    voices: list[Path] = Field(default_factory=list, description="Voice registry folders; the first takes uploads.")
    prompts: list[Path] = Field(default_factory=list, description="Extra folders prompt_wav_path may read from.")
    max_input_chars: int = Field(4096, ge=1, le=100_000)
    max_body_mb: float = Field(25.0, gt=0)
    max_pending: int = Field(16, ge=1, description="Requests generating or waiting before 429.")


class SpeechRequest(BaseModel):
    # Unknown fields are ignored, as OpenAI's server does, so OpenAI SDKs work unchanged.
    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    input: str = Field(min_length=1)
    voice: str | None = None
    prompt_wav_path: str | None = None
    prompt_text: str | None = None
    instructions: str | None = Field(None, max_length=1000, description="Voice design / style (VoxCPM2).")
    response_format: Literal["wav", "mp3", "flac", "opus", "aac", "pcm"] = "wav"
    max_length: int = Field(2048, ge=1, le=2048, description="Longest generation per piece, in model steps.")
    cfg_value: float = Field(2.0, ge=0, le=10)
    inference_timesteps: int = Field(10, ge=1, le=100)
    seed: int | None = Field(None, ge=0, le=2**31 - 1)


class _Jobs:
    """Requests in flight, for /health, /cancel and the pending bound."""

    def __init__(self, limit: int):
        self.limit = limit
        self.active: dict[int, threading.Event] = {}
        self.ids = itertools.count(1)
        self.lock = threading.Lock()

    def check(self) -> None:
        if len(self.active) >= self.limit:
            raise HTTPException(429, {"message": "server busy: too many requests in flight; retry shortly",
                                      "type": "rate_limit_error"}, headers={"Retry-After": "1"})  # fmt: skip

    def admit(self) -> tuple[int, threading.Event]:
        with self.lock:
            self.check()
            job = next(self.ids)
            self.active[job] = threading.Event()
            return job, self.active[job]

    def done(self, job: int) -> None:
        with self.lock:
            self.active.pop(job, None)


class _JSON(JSONResponse):
    """JSON that always renders: ASCII escapes, so a lone surrogate in a name cannot turn an answer into a 500."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


class _TooLarge(StarletteHTTPException):
    def __init__(self, max_bytes: int):
        super().__init__(413, {"message": f"request body over {max_bytes} bytes", "type": "invalid_request_error"})


def _key_given(headers: Headers) -> bytes:
    auth = headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    given = token.strip() if scheme.lower() == "bearer" else headers.get("x-api-key", "")
    return given.encode("latin-1", "replace")  # the header's own bytes (Starlette decodes them as latin-1)


class _Guard:
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
            await _JSON({"error": error}, 401, headers={"WWW-Authenticate": "Bearer"})(scope, receive, send)
            return
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            status = 413 if length.isdigit() else 400
            message = f"request body over {self.max_bytes} bytes" if status == 413 else "bad Content-Length"
            await _JSON({"error": {"message": message, "type": "invalid_request_error"}}, status)(scope, receive, send)
            return
        # Count what arrives whatever the headers say: with Transfer-Encoding, a Content-Length is not the size.
        received, started = 0, False

        async def counted() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge(self.max_bytes)
            return message

        async def tracked(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except _TooLarge as exc:  # read outside a route (routes answer it themselves)
            if started:
                raise
            await _JSON({"error": exc.detail}, 413)(scope, receive, send)


class _Stream(StreamingResponse):
    """A streamed answer whose clean-up runs however it ends: done, failed, or the client gone before a byte.

    (A generator's own ``finally`` never runs when the client leaves before it
    starts, and cannot await once its task is cancelled: that leaked the slot.)
    """

    def __init__(self, content: Any, on_close: Any, **kwargs: Any):
        super().__init__(content, **kwargs)
        self._on_close = on_close

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await self._on_close()


def _error(status: int, message: str, field: str | None = None) -> HTTPException:
    detail: dict[str, Any] = {"message": message, "type": "invalid_request_error"}
    if field:
        detail["param"] = field
    return HTTPException(status, detail)


def _under(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True


def _safe_name(name: str) -> bool:
    try:
        check_safe_id(name)
    except ValueError:
        return False
    return True


@functools.lru_cache(maxsize=512)
def _decodes(path: str, size: int, mtime_ns: int) -> bool:
    from .media.probe import probe

    try:
        info = probe(path)
    except Exception:  # noqa: BLE001 - whatever the reason, the engine could not read it either
        return False
    return bool(info.sample_rate) and info.duration_s > 0


def _readable_audio(path: Path) -> bool:
    """Whether a file holds audio (headers only, cached by size and time), before a model is given it."""
    try:
        st = path.stat()
    except OSError:
        return False
    return _decodes(str(path), st.st_size, st.st_mtime_ns)


def create_app(settings: ServeSettings | None = None, engine: Any = None) -> FastAPI:
    cfg = settings or ServeSettings()
    engine = engine or make_engine(cfg.engine)
    voice_dirs = [d.expanduser().resolve() for d in cfg.voices] or [Path("voices").resolve()]
    prompt_roots = voice_dirs + [d.expanduser().resolve() for d in cfg.prompts]
    jobs = _Jobs(cfg.max_pending)
    key = cfg.api_key.get_secret_value() if cfg.api_key else None

    model_threads: list[ThreadPoolExecutor] = []

    async def lifespan(app: FastAPI):
        await anyio.to_thread.run_sync(engine.start)
        # Readings run on one long-lived thread per replica: waiting requests hold no thread, and the
        # engine's native memory stays with those threads instead of spreading over dozens of workers'
        # allocator caches (which grew the process by ~0.5 MB per request under concurrent load).
        model_threads.append(ThreadPoolExecutor(max(1, len(engine.devices())), thread_name_prefix="mediamill-model"))
        yield
        model_threads.pop().shutdown(wait=False, cancel_futures=True)

    async def on_model_thread(fn: Any, *args: Any) -> Any:
        if not model_threads:  # an app driven without its lifespan (some test clients)
            return await anyio.to_thread.run_sync(fn, *args)
        future = asyncio.get_running_loop().run_in_executor(model_threads[0], fn, *args)
        with anyio.CancelScope(shield=True):  # a request never leaves its generation running unattended
            return await future

    # Without a key the documentation is open like the rest; with one, the guard asks for it there too.
    app = FastAPI(title="mediamill speech", lifespan=lifespan, docs_url="/docs", redoc_url=None,
                  default_response_class=_JSON)  # fmt: skip

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = jsonable_encoder(exc.errors(), exclude={"input", "ctx", "url"})
        summary = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}" for e in errors)
        return _JSON({"error": {"message": summary, "type": "invalid_request_error"}, "detail": errors}, 422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and isinstance(exc.__cause__, (ValueError, RecursionError)):
            # FastAPI could not decode the body at all (not UTF-8, nested too deep): as malformed as bad JSON.
            error = {"message": "body: not a JSON object in UTF-8", "type": "invalid_request_error"}
            return _JSON({"error": error}, 422)
        detail = exc.detail if isinstance(exc.detail, dict) else {"message": str(exc.detail)}
        return _JSON({"error": detail}, exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def failed(request: Request, exc: Exception) -> JSONResponse:
        # The traceback goes to the server's log; the client learns nothing of paths or internals.
        return _JSON({"error": {"message": "internal error; see the server's log", "type": "server_error"}}, 500)

    def resolve_prompt(value: str) -> Path:
        refused = _error(403, "prompt_wav_path must name an audio file inside the server's voice or prompt folders",
                         "prompt_wav_path")  # fmt: skip
        if "\x00" in value or len(value) > MAX_PROMPT_PATH:
            raise refused
        for root in prompt_roots:
            try:
                candidate = (root / value).resolve()  # an absolute value replaces root; resolve() follows links
                found = _under(candidate, root) and candidate.suffix.lower() in AUDIO_SUFFIXES and candidate.is_file()
            except (OSError, ValueError, RuntimeError):  # a name too long, a symlink loop
                continue
            if found:
                if not _readable_audio(candidate):
                    raise _error(422, "prompt_wav_path: the file holds no readable audio", "prompt_wav_path")
                return candidate
        raise refused

    def registry_voice(name: str) -> Voice | None:
        if not _safe_name(name):  # a voice is a name, never a path
            return None
        for folder in voice_dirs:
            try:
                voice = find_voice_in(folder, name)
            except (OSError, ValueError):
                voice = None
            if voice is not None:
                if not _readable_audio(voice.audio):
                    raise _error(422, f"voice '{name}': its recording holds no readable audio", "voice")
                return voice
        return None

    def speech_of(req: SpeechRequest) -> Speech:
        if len(req.input) > cfg.max_input_chars:
            raise _error(422, f"input: at most {cfg.max_input_chars} characters per request", "input")
        if not req.input.strip():
            raise _error(422, "input: nothing to say", "input")
        if req.prompt_text and len(req.prompt_text) > cfg.max_input_chars:
            raise _error(422, f"prompt_text: at most {cfg.max_input_chars} characters", "prompt_text")
        voice = engine_voice = None
        if req.prompt_wav_path:
            voice = as_voice(resolve_prompt(req.prompt_wav_path), req.prompt_text)
        elif req.prompt_text:
            raise _error(422, "prompt_text needs prompt_wav_path", "prompt_text")
        elif req.voice and req.voice.lower() not in STOCK_VOICES:
            voice = registry_voice(req.voice)
            if voice is None:
                if req.voice not in engine.native_voices():
                    known = sorted({v.name for v in list_voices(voice_dirs)} | set(engine.native_voices()))
                    named = f" '{req.voice}'" if _safe_name(req.voice) else ""  # never echo a path or odd bytes
                    raise _error(422, f"unknown voice{named} (known: {', '.join(known) or 'none'})", "voice")
                engine_voice = req.voice
        speech = Speech(
            text=req.input, voice=voice, style=req.instructions, cfg_value=req.cfg_value,
            inference_timesteps=req.inference_timesteps, max_length=req.max_length, seed=req.seed,
            engine_voice=engine_voice,
        )  # fmt: skip
        try:
            engine.check(speech)
        except RequestProblem as exc:
            raise _error(422, str(exc), exc.field) from None
        return speech

    @app.post("/v1/audio/speech")
    async def speech(req: SpeechRequest) -> Response:
        jobs.check()  # refuse at once when busy, before any work
        spoken = await anyio.to_thread.run_sync(speech_of, req)  # it looks at files: off the event loop
        job, cancel = jobs.admit()
        folder = Path(tempfile.mkdtemp(prefix="mediamill-serve-"))
        try:
            reading = Reading(kept_bad=[])
            wav_path = folder / "speech.wav"
            try:
                await on_model_thread(_write_wav, engine.read(spoken, cancel, reading), wav_path, engine.sample_rate)
            except Cancelled:
                raise _error(409, "cancelled") from None
            except BadCaseError as exc:
                raise HTTPException(500, {"message": f"implausible speech: {exc}", "type": "server_error"}) from None
            media_type, body = await anyio.to_thread.run_sync(_encode, wav_path, req.response_format)
            headers = {"X-Sample-Rate": str(engine.sample_rate), "X-Request-Id": str(job),
                       "X-Pieces": str(reading.pieces), "X-Takes": str(reading.generations)}  # fmt: skip
            return Response(body, media_type=media_type, headers=headers)
        finally:
            jobs.done(job)
            shutil.rmtree(folder, ignore_errors=True)

    @app.post("/v1/audio/speech/stream")
    async def stream(req: SpeechRequest) -> StreamingResponse:
        jobs.check()
        spoken = await anyio.to_thread.run_sync(speech_of, req)
        job, cancel = jobs.admit()
        chunks = engine.stream(spoken, cancel)

        async def body():
            while True:
                try:
                    chunk = await anyio.to_thread.run_sync(next, chunks, None)
                except Cancelled:
                    return
                if chunk is None:
                    return
                yield chunk

        async def close() -> None:  # however the stream ended: free the model and the slot for the next request
            cancel.set()
            try:
                await anyio.to_thread.run_sync(chunks.close)
            finally:
                jobs.done(job)

        headers = {"X-Sample-Rate": str(engine.sample_rate), "X-Request-Id": str(job)}
        return _Stream(body(), close, media_type="application/octet-stream", headers=headers)

    @app.post("/v1/audio/speech/cancel")
    async def cancel(request_id: int | None = None) -> dict:
        with jobs.lock:
            targets = [j for j in jobs.active if request_id in (None, j)]
            for j in targets:
                jobs.active[j].set()
        message = f"cancelled {len(targets)} request(s)" if targets else "no generation in progress"
        return {"status": "success", "message": message, "cancelled": targets}

    def _voice_doc(v) -> dict:
        return {"name": v.name, "transcript": v.transcript}

    @app.get("/voices")
    @app.get("/v1/voices")
    async def voices() -> dict:
        registered = list_voices(voice_dirs)
        return {
            "voices": [v.name for v in registered] + engine.native_voices(),
            "count": len(registered) + len(engine.native_voices()),
            "registered": [_voice_doc(v) for v in registered],
            "engine_voices": engine.native_voices(),
        }

    @app.post("/v1/voices", status_code=201)
    async def create_voice(name: str = Form(...), file: UploadFile = File(...), text: str | None = Form(None)) -> dict:
        suffix = Path(file.filename or "").suffix.lower()
        if suffix not in AUDIO_SUFFIXES:
            raise _error(422, f"file: a recording must be one of {', '.join(AUDIO_SUFFIXES)}", "file")
        folder = Path(tempfile.mkdtemp(prefix="mediamill-voice-"))
        try:
            upload = folder / f"upload{suffix}"
            upload.write_bytes(await file.read())
            try:
                voice = await anyio.to_thread.run_sync(add_voice, name, upload, text, voice_dirs[0])
            except ValueError as exc:
                raise _error(422, str(exc).replace(str(upload), file.filename or "file"), "file") from None
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return _voice_doc(voice)

    @app.get("/health")
    async def health() -> dict:
        return {
            "status": "healthy" if engine.sample_rate else "loading",
            "is_processing": bool(jobs.active),
            "active": len(jobs.active),
            "queue_pending": max(0, len(jobs.active) - len(engine.devices())),
            "model": engine.model,
            "engine": engine.name,
            "devices": engine.devices(),
            "sample_rate": engine.sample_rate,
        }

    @app.get("/", response_class=HTMLResponse)
    async def playground() -> str:
        return PLAYGROUND

    app.add_middleware(_Guard, key=key, max_bytes=int(cfg.max_body_mb * 1024 * 1024))
    return app


def _write_wav(chunks, path: Path, sample_rate: int) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        for chunk in chunks:
            wav.writeframes(chunk)


def _encode(wav_path: Path, fmt: str) -> tuple[str, bytes]:
    from .media.ffmpeg import run_ffmpeg

    media_type, codec = FORMATS[fmt]
    if fmt == "wav":
        return media_type, wav_path.read_bytes()
    if fmt == "pcm":
        with wave.open(str(wav_path)) as wav:
            return media_type, wav.readframes(wav.getnframes())
    out = wav_path.with_suffix(f".{fmt}")
    run_ffmpeg("-i", wav_path, *codec, out)
    return media_type, out.read_bytes()


PLAYGROUND = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mediamill speech</title>
<style>
body{font:15px system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;color:#222}
textarea{width:100%;height:8rem;font:inherit}label{display:inline-block;margin:.4rem 1rem .4rem 0}
input,select{font:inherit}#status{color:#666;margin:.5rem 0}
</style></head><body>
<h1>mediamill speech</h1>
<p id="health">…</p>
<textarea id="input">The lamplighter walked the length of Harrow Street, and one by one the lamps came on.</textarea>
<div>
<label>Voice <select id="voice"><option value="">default</option></select></label>
<label>Format <select id="format"><option>wav</option><option>mp3</option><option>flac</option><option>opus</option><option>aac</option></select></label>
<label>CFG <input id="cfg" type="number" value="2" min="0" max="10" step="0.1" style="width:4rem"></label>
<label>Steps <input id="steps" type="number" value="10" min="1" max="100" style="width:4rem"></label>
</div>
<div><label>Style <input id="style" placeholder="e.g. a calm, low voice" style="width:20rem"></label>
<label>API key <input id="key" type="password" style="width:10rem"></label></div>
<button id="go">Speak</button> <button id="stop">Cancel</button>
<div id="status"></div><audio id="player" controls></audio>
<script>
const $ = id => document.getElementById(id);
const headers = () => Object.assign({"Content-Type": "application/json"},
  $("key").value ? {"Authorization": "Bearer " + $("key").value} : {});
fetch("/health").then(r => r.json()).then(h => $("health").textContent =
  `${h.engine} · ${h.model} · ${h.devices.join(", ")} · ${h.sample_rate} Hz`);
function loadVoices() {
  fetch("/voices", {headers: headers()}).then(r => r.ok ? r.json() : {voices: []}).then(v => {
    for (const name of v.voices) { const o = document.createElement("option"); o.textContent = name; $("voice").append(o); }
  });
}
loadVoices();
$("go").onclick = async () => {
  $("status").textContent = "generating…";
  const body = {input: $("input").value, response_format: $("format").value,
    cfg_value: +$("cfg").value, inference_timesteps: +$("steps").value};
  if ($("voice").value) body.voice = $("voice").value;
  if ($("style").value) body.instructions = $("style").value;
  const t = performance.now();
  const r = await fetch("/v1/audio/speech", {method: "POST", headers: headers(), body: JSON.stringify(body)});
  if (!r.ok) { const e = await r.json(); $("status").textContent = `${r.status}: ${e.error.message}`; return; }
  $("player").src = URL.createObjectURL(await r.blob());
  $("status").textContent = `done in ${((performance.now() - t) / 1000).toFixed(1)} s`;
  $("player").play();
};
$("stop").onclick = () => fetch("/v1/audio/speech/cancel", {method: "POST", headers: headers()});
</script></body></html>
"""
