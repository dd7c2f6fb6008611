"""The HTTP routes of ``mediamill serve``: speech, streaming, cancel, voices, health and the playground.

Routes only translate HTTP to the service and back; the service (held on
``app.state.service``) resolves voices, bounds the work in flight and runs
the engine. ``/v1/audio/speech`` answers a whole file, read with retakes,
or with ``stream_format=sse`` OpenAI's events as the audio is generated;
``/v1/audio/speech/stream`` streams raw PCM (or the same events).
"""

from __future__ import annotations

import shutil
import tempfile
from importlib.resources import files
from pathlib import Path

import anyio
from fastapi import APIRouter, Depends, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from ..engines.reading import BadCaseError, Reading
from ..voices import AUDIO_SUFFIXES, add_voice, list_voices
from .encode import encode, encode_stream, write_wav
from .engines import Cancelled
from .events import audio_delta, audio_done
from .responses import CleanStream, api_error
from .service import Service
from .settings import SpeechRequest

router = APIRouter()
PLAYGROUND = files(__package__).joinpath("playground.html").read_text(encoding="utf-8")


def service(request: Request) -> Service:
    return request.app.state.service


@router.post("/v1/audio/speech")
async def speech(req: SpeechRequest, svc: Service = Depends(service)) -> Response:
    if req.stream_format == "sse":  # OpenAI streams events from this same endpoint
        return await _streamed(req, svc, req.response_format, sse=True)
    svc.jobs.check()  # refuse at once when busy, before any work
    prepared = await anyio.to_thread.run_sync(svc.prepare, req)  # it looks at files: off the event loop
    job, cancel = svc.jobs.admit()
    folder = Path(tempfile.mkdtemp(prefix="mediamill-serve-"))
    engine = svc.engine
    try:
        reading = Reading(kept_bad=[])
        wav_path = folder / "speech.wav"
        try:
            await svc.on_model_thread(
                write_wav, engine.read(prepared.speech, cancel, reading), wav_path, engine.sample_rate
            )
        except Cancelled:
            raise api_error(409, "cancelled") from None
        except BadCaseError as exc:
            raise HTTPException(500, {"message": f"implausible speech: {exc}", "type": "server_error"}) from None
        media_type, body = await anyio.to_thread.run_sync(encode, wav_path, req.response_format, prepared.tempo)
        headers = {
            "X-Sample-Rate": str(engine.sample_rate),
            "X-Request-Id": str(job),
            "X-Pieces": str(reading.pieces),
            "X-Takes": str(reading.generations),
            **prepared.headers,
        }
        return Response(body, media_type=media_type, headers=headers)
    finally:
        svc.jobs.done(job)
        shutil.rmtree(folder, ignore_errors=True)


@router.post("/v1/audio/speech/stream")
async def stream(req: SpeechRequest, svc: Service = Depends(service)) -> StreamingResponse:
    # This route's audio is raw 16-bit PCM whatever response_format says, in events too with sse.
    return await _streamed(req, svc, "pcm", sse=req.stream_format == "sse")


async def _streamed(req: SpeechRequest, svc: Service, fmt: str, sse: bool) -> StreamingResponse:
    """Audio as the engine makes it: raw bytes of ``fmt``, or OpenAI's server-sent events carrying them."""
    svc.jobs.check()
    prepared = await anyio.to_thread.run_sync(svc.prepare, req)
    job, cancel = svc.jobs.admit()
    sample_rate = svc.engine.sample_rate
    # Generated (and encoded) on a model thread, like a whole-file answer: see ModelStream.
    chunks = svc.stream(
        lambda: encode_stream(svc.engine.stream(prepared.speech, cancel), sample_rate, fmt, prepared.tempo), cancel
    )

    async def body():
        try:
            async for chunk in chunks:
                if chunk:
                    yield audio_delta(chunk) if sse else chunk
        except Cancelled:
            return  # without speech.audio.done: the client can tell a cut stream from a finished one
        if sse:
            yield audio_done()

    async def close() -> None:  # however the stream ended: free the model and the slot for the next request
        try:
            await chunks.aclose()
        finally:
            svc.jobs.done(job)

    headers = {"X-Sample-Rate": str(sample_rate), "X-Request-Id": str(job), **prepared.headers}
    if sse:
        headers["Cache-Control"] = "no-cache"
    media_type = "text/event-stream" if sse else "application/octet-stream"
    return CleanStream(body(), close, media_type=media_type, headers=headers)


@router.post("/v1/audio/speech/cancel")
async def cancel(request_id: int | None = None, svc: Service = Depends(service)) -> dict:
    jobs = svc.jobs
    with jobs.lock:
        targets = [j for j in jobs.active if request_id in (None, j)]
        for j in targets:
            jobs.active[j].set()
    message = f"cancelled {len(targets)} request(s)" if targets else "no generation in progress"
    return {"status": "success", "message": message, "cancelled": targets}


def _voice_doc(v) -> dict:
    return {"name": v.name, "transcript": v.transcript}


@router.get("/voices")
@router.get("/v1/voices")
async def voices(svc: Service = Depends(service)) -> dict:
    registered = list_voices(svc.voice_dirs)
    native = svc.engine.native_voices()
    return {
        "voices": [v.name for v in registered] + native,
        "count": len(registered) + len(native),
        "registered": [_voice_doc(v) for v in registered],
        "engine_voices": native,
    }


@router.post("/v1/voices", status_code=201)
async def create_voice(
    name: str = Form(...), file: UploadFile = File(...), text: str | None = Form(None), svc: Service = Depends(service)
) -> dict:
    suffix = Path(file.filename or "").suffix.lower()
    if suffix not in AUDIO_SUFFIXES:
        raise api_error(422, f"file: a recording must be one of {', '.join(AUDIO_SUFFIXES)}", "file")
    folder = Path(tempfile.mkdtemp(prefix="mediamill-voice-"))
    try:
        upload = folder / f"upload{suffix}"
        upload.write_bytes(await file.read())
        try:
            voice = await anyio.to_thread.run_sync(add_voice, name, upload, text, svc.voice_dirs[0])
        except ValueError as exc:
            raise api_error(422, str(exc).replace(str(upload), file.filename or "file"), "file") from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return _voice_doc(voice)


@router.get("/health")
async def health(svc: Service = Depends(service)) -> dict:
    engine, jobs = svc.engine, svc.jobs
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


@router.get("/", response_class=HTMLResponse)
async def playground() -> str:
    return PLAYGROUND
