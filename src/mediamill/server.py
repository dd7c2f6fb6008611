"""``mediamill serve``: an OpenAI-style speech API over local VoxCPM or Piper.

Endpoints: POST ``/v1/audio/speech`` (wav, mp3, flac, opus, aac, pcm),
POST ``/v1/audio/speech/stream`` (raw 16-bit mono PCM, ``X-Sample-Rate``),
POST ``/v1/audio/speech/cancel``, POST ``/v1/voices`` and GET ``/voices``
(the voice registry), GET ``/health``, and a playground page at ``/``.

Safety: binds to 127.0.0.1 unless told otherwise; with
``MEDIAMILL_SERVE_API_KEY`` set, every endpoint but ``/health`` and ``/``
needs ``Authorization: Bearer KEY`` (or ``X-API-Key``). ``prompt_wav_path``
may only name audio files inside the voice and prompt folders; request
bodies and texts are bounded.
"""

from __future__ import annotations

import hmac
import itertools
import shutil
import tempfile
import threading
import wave
from pathlib import Path
from typing import Any, Literal

import anyio
from fastapi import Depends, FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from .longform import BadCaseError, Reading
from .serve_engines import Cancelled, RequestProblem, Speech, as_voice, make_engine
from .voices import AUDIO_SUFFIXES, add_voice, find_voice_in, list_voices

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

    def admit(self) -> tuple[int, threading.Event]:
        with self.lock:
            if len(self.active) >= self.limit:
                raise HTTPException(429, "server busy: too many requests in flight; retry shortly")
            job = next(self.ids)
            self.active[job] = threading.Event()
            return job, self.active[job]

    def done(self, job: int) -> None:
        with self.lock:
            self.active.pop(job, None)


class _BodyLimit:
    """Refuse bodies over the limit before reading them (and bodies of unknown length)."""

    def __init__(self, app: Any, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] in ("POST", "PUT", "PATCH"):
            headers = dict(scope["headers"])
            length = headers.get(b"content-length")
            status, message = 0, ""
            if length is None and headers.get(b"transfer-encoding"):
                status, message = 411, "send a Content-Length"
            elif length is not None and (not length.isdigit() or int(length) > self.max_bytes):
                status, message = 413, f"request body over {self.max_bytes} bytes"
            if status:
                await JSONResponse({"error": {"message": message}}, status_code=status)(scope, receive, send)
                return
        await self.app(scope, receive, send)


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


def create_app(settings: ServeSettings | None = None, engine: Any = None) -> FastAPI:
    cfg = settings or ServeSettings()
    engine = engine or make_engine(cfg.engine)
    voice_dirs = [d.expanduser().resolve() for d in cfg.voices] or [Path("voices").resolve()]
    prompt_roots = voice_dirs + [d.expanduser().resolve() for d in cfg.prompts]
    jobs = _Jobs(cfg.max_pending)
    key = cfg.api_key.get_secret_value() if cfg.api_key else None

    async def lifespan(app: FastAPI):
        await anyio.to_thread.run_sync(engine.start)
        yield

    app = FastAPI(title="mediamill speech", lifespan=lifespan, docs_url="/docs", redoc_url=None)

    def authorised(request: Request) -> None:
        if key is None:
            return
        given = request.headers.get("x-api-key") or ""
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        if not hmac.compare_digest(given.encode(), key.encode()):
            raise HTTPException(401, {"message": "missing or wrong API key", "type": "authentication_error"})

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = jsonable_encoder(exc.errors(), exclude={"input", "ctx", "url"})
        summary = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}" for e in errors)
        return JSONResponse({"error": {"message": summary, "type": "invalid_request_error"}, "detail": errors}, 422)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, dict) else {"message": str(exc.detail)}
        return JSONResponse({"error": detail}, exc.status_code, headers=exc.headers)

    def resolve_prompt(value: str) -> Path:
        for root in prompt_roots:
            candidate = (root / value).resolve()  # an absolute value replaces root; resolve() follows links
            if _under(candidate, root) and candidate.is_file() and candidate.suffix.lower() in AUDIO_SUFFIXES:
                return candidate
        raise _error(403, "prompt_wav_path must name an audio file inside the server's voice or prompt folders",
                     "prompt_wav_path")  # fmt: skip

    def speech_of(req: SpeechRequest) -> Speech:
        if len(req.input) > cfg.max_input_chars:
            raise _error(422, f"input: at most {cfg.max_input_chars} characters per request", "input")
        if not req.input.strip():
            raise _error(422, "input: nothing to say", "input")
        voice = engine_voice = None
        if req.prompt_wav_path:
            voice = as_voice(resolve_prompt(req.prompt_wav_path), req.prompt_text)
        elif req.prompt_text:
            raise _error(422, "prompt_text needs prompt_wav_path", "prompt_text")
        elif req.voice and req.voice.lower() not in STOCK_VOICES:
            voice = next((v for d in voice_dirs if (v := find_voice_in(d, req.voice))), None)
            if voice is None:
                if req.voice not in engine.native_voices():
                    known = sorted({v.name for v in list_voices(voice_dirs)} | set(engine.native_voices()))
                    raise _error(422, f"unknown voice '{req.voice}' (known: {', '.join(known) or 'none'})", "voice")
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

    @app.post("/v1/audio/speech", dependencies=[Depends(authorised)])
    async def speech(req: SpeechRequest) -> Response:
        spoken = speech_of(req)
        job, cancel = jobs.admit()
        folder = Path(tempfile.mkdtemp(prefix="mediamill-serve-"))
        try:
            reading = Reading(kept_bad=[])
            wav_path = folder / "speech.wav"
            try:
                await anyio.to_thread.run_sync(_write_wav, engine.read(spoken, cancel, reading), wav_path, engine.sample_rate)
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

    @app.post("/v1/audio/speech/stream", dependencies=[Depends(authorised)])
    async def stream(req: SpeechRequest) -> StreamingResponse:
        spoken = speech_of(req)
        job, cancel = jobs.admit()
        chunks = engine.stream(spoken, cancel)

        async def body():
            try:
                while True:
                    try:
                        chunk = await anyio.to_thread.run_sync(next, chunks, None)
                    except Cancelled:
                        return
                    if chunk is None:
                        return
                    yield chunk
            finally:  # also when the client goes away: free the model for the next request
                cancel.set()
                await anyio.to_thread.run_sync(chunks.close)
                jobs.done(job)

        headers = {"X-Sample-Rate": str(engine.sample_rate), "X-Request-Id": str(job)}
        return StreamingResponse(body(), media_type="application/octet-stream", headers=headers)

    @app.post("/v1/audio/speech/cancel", dependencies=[Depends(authorised)])
    async def cancel(request_id: int | None = None) -> dict:
        with jobs.lock:
            targets = [j for j in jobs.active if request_id in (None, j)]
            for j in targets:
                jobs.active[j].set()
        message = f"cancelled {len(targets)} request(s)" if targets else "no generation in progress"
        return {"status": "success", "message": message, "cancelled": targets}

    def _voice_doc(v) -> dict:
        return {"name": v.name, "transcript": v.transcript}

    @app.get("/voices", dependencies=[Depends(authorised)])
    @app.get("/v1/voices", dependencies=[Depends(authorised)])
    async def voices() -> dict:
        registered = list_voices(voice_dirs)
        return {
            "voices": [v.name for v in registered] + engine.native_voices(),
            "count": len(registered) + len(engine.native_voices()),
            "registered": [_voice_doc(v) for v in registered],
            "engine_voices": engine.native_voices(),
        }

    @app.post("/v1/voices", status_code=201, dependencies=[Depends(authorised)])
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

    app.add_middleware(_BodyLimit, max_bytes=int(cfg.max_body_mb * 1024 * 1024))
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
