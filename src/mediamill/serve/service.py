"""The speech service behind the routes: the engine, requests in flight, and what a request may name.

A request's voice is resolved to files here: a registry voice by name only
(never a path), or ``prompt_wav_path`` confined to the voice and prompt
folders after resolving ``..`` and links, and holding readable audio. Readings,
whole or streamed, run on one long-lived thread per engine replica, so waiting
requests hold no thread and the engine's native memory stays with those threads.

What the engine cannot do is decided here too. ``speed`` is a pitch-keeping
tempo change of whatever the engine made, the same for every engine (Piper's
length scale is not proportional: 0.5 reads only 1.6 times as fast).
``instructions`` to an engine without voice design are set aside and the
answer says so (``X-Instructions-Ignored``): SDK users often send them on
every call, and a client should not break on switching engines. With
``strict`` they are refused (422) instead. Manifests stay strict whatever
this says: a manifest is reviewed, and a column nothing reads is a mistake
worth reporting before a long run.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from fastapi import HTTPException

from ..core.ids import check_safe_id
from ..media import probe
from ..text.reading import prepare
from ..voices import AUDIO_SUFFIXES, Voice, find_voice_in, list_voices
from .engines import Cancelled, RequestProblem, Speech, as_voice
from .responses import api_error
from .settings import MAX_PROMPT_PATH, STOCK_VOICES, ServeSettings, SpeechRequest


@dataclass(frozen=True)
class Prepared:
    """A request made ready for the engine: what to say, how to re-time it, and notes for the answer."""

    speech: Speech
    tempo: float | None = None  # the request's speed, applied to the engine's audio; None when 1
    headers: dict[str, str] = field(default_factory=dict)  # what was set aside, said in the answer


_END = object()


class ModelStream:
    """Chunks an iterator makes on a model thread, handed to the event loop as they come.

    The iterator is made, advanced and closed on one model thread, which it holds
    until it ends, as a whole-file reading does: streams then generate no more at
    once than the engine does, and the engine's native memory stays with the
    model threads. (Advanced on anyio's worker threads, every stream's inference
    ran at once, on whichever worker was free: rounds of 6 concurrent SSE streams
    on Piper grew the idle server from 326 to 502 MB in four rounds.) The queue is
    unbounded, so a slow client never holds the thread; it holds at most one
    answer's audio, as a whole-file answer does. ``aclose`` sets ``cancel`` (the
    request's event) and waits for the generation to end; a generation cancelled
    before its turn on the thread never starts.
    """

    def __init__(self, svc: Service, make: Callable[[], Iterator[bytes]], cancel: threading.Event):
        self._loop, self._cancel = asyncio.get_running_loop(), cancel
        self._queue: asyncio.Queue = asyncio.Queue()
        self._task = asyncio.ensure_future(svc.on_model_thread(self._produce, make))
        self._task.add_done_callback(lambda _: self._queue.put_nowait(_END))

    def _produce(self, make: Callable[[], Iterator[bytes]]) -> None:
        if self._cancel.is_set():  # the client left (or cancelled) while it waited for the thread
            raise Cancelled()
        chunks = make()
        try:
            for chunk in chunks:
                if self._cancel.is_set():  # an engine may check only between sentences
                    raise Cancelled()
                self._loop.call_soon_threadsafe(self._queue.put_nowait, chunk)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:  # on this thread: a generator refuses a close from another while it runs
                close()

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        while (chunk := await self._queue.get()) is not _END:
            yield chunk
        self._task.result()  # what went wrong on the model thread (Cancelled included), raised here

    async def aclose(self) -> None:
        self._cancel.set()
        with anyio.CancelScope(shield=True):
            try:
                await self._task
            except (Exception, asyncio.CancelledError):  # noqa: BLE001 - raised to the answer, or nobody is left
                pass


class Jobs:
    """Requests in flight, for /health, /cancel and the pending bound."""

    def __init__(self, limit: int):
        self.limit = limit
        self.active: dict[int, threading.Event] = {}
        self.ids = itertools.count(1)
        self.lock = threading.Lock()

    def check(self) -> None:
        if len(self.active) >= self.limit:
            raise HTTPException(
                429,
                {"message": "server busy: too many requests in flight; retry shortly", "type": "rate_limit_error"},
                headers={"Retry-After": "1"},
            )

    def admit(self) -> tuple[int, threading.Event]:
        with self.lock:
            self.check()
            job = next(self.ids)
            self.active[job] = threading.Event()
            return job, self.active[job]

    def done(self, job: int) -> None:
        with self.lock:
            self.active.pop(job, None)


def _under(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True


def safe_name(name: str) -> bool:
    try:
        check_safe_id(name)
    except ValueError:
        return False
    return True


@functools.lru_cache(maxsize=512)
def _decodes(path: str, size: int, mtime_ns: int) -> bool:
    try:
        info = probe(path)
    except Exception:  # noqa: BLE001 - whatever the reason, the engine could not read it either
        return False
    return bool(info.sample_rate) and info.duration_s > 0


def readable_audio(path: Path) -> bool:
    """Whether a file holds audio (headers only, cached by size and time), before a model is given it."""
    try:
        st = path.stat()
    except OSError:
        return False
    return _decodes(str(path), st.st_size, st.st_mtime_ns)


def serve_bounds(engine: Any, max_pending: int) -> tuple[int, int]:
    """(model threads, requests in flight before 429) for an engine.

    An engine that batches says how many requests it generates at once
    (``concurrency``); one that does not generates one per device. Each
    request being generated holds a model thread (``read``/``stream`` are
    blocking iterators), so there are that many threads, and the 429 bound
    is never below them: a batch engine is fed whole batches.
    """
    concurrency = int(getattr(engine, "concurrency", 0) or 0) or len(engine.devices())
    return max(1, concurrency), max(max_pending, concurrency)


class Service:
    def __init__(self, cfg: ServeSettings, engine: Any):
        self.cfg = cfg
        self.engine = engine
        self.voice_dirs = [d.expanduser().resolve() for d in cfg.voices] or [Path("voices").resolve()]
        self.prompt_roots = self.voice_dirs + [d.expanduser().resolve() for d in cfg.prompts]
        self.jobs = Jobs(cfg.max_pending)
        self._model_threads: ThreadPoolExecutor | None = None

    # -- the engine's life -----------------------------------------------
    def start(self) -> None:
        self.engine.start()
        # One long-lived thread per request the engine generates at once: a pool of dozens of idle
        # workers grew the process by ~0.5 MB per request under concurrent load (allocator caches).
        threads, self.jobs.limit = serve_bounds(self.engine, self.cfg.max_pending)
        self._model_threads = ThreadPoolExecutor(threads, thread_name_prefix="mediamill-model")

    def stop(self) -> None:
        if self._model_threads is not None:
            self._model_threads.shutdown(wait=False, cancel_futures=True)
            self._model_threads = None

    async def on_model_thread(self, fn: Any, *args: Any) -> Any:
        if self._model_threads is None:  # an app driven without its lifespan (some test clients)
            return await anyio.to_thread.run_sync(fn, *args)
        future = asyncio.get_running_loop().run_in_executor(self._model_threads, fn, *args)
        with anyio.CancelScope(shield=True):  # a request never leaves its generation running unattended
            return await future

    def stream(self, make: Callable[[], Iterator[bytes]], cancel: threading.Event) -> ModelStream:
        """The chunks of ``make()``, generated on a model thread for the whole answer (see ``ModelStream``)."""
        return ModelStream(self, make, cancel)

    # -- what a request names --------------------------------------------
    def resolve_prompt(self, value: str) -> Path:
        refused = api_error(
            403,
            "prompt_wav_path must name an audio file inside the server's voice or prompt folders",
            "prompt_wav_path",
        )
        if "\x00" in value or len(value) > MAX_PROMPT_PATH:
            raise refused
        for root in self.prompt_roots:
            try:
                candidate = (root / value).resolve()  # an absolute value replaces root; resolve() follows links
                found = _under(candidate, root) and candidate.suffix.lower() in AUDIO_SUFFIXES and candidate.is_file()
            except (OSError, ValueError, RuntimeError):  # a name too long, a symlink loop
                continue
            if found:
                if not readable_audio(candidate):
                    raise api_error(422, "prompt_wav_path: the file holds no readable audio", "prompt_wav_path")
                return candidate
        raise refused

    def registry_voice(self, name: str) -> Voice | None:
        if not safe_name(name):  # a voice is a name, never a path
            return None
        for folder in self.voice_dirs:
            try:
                voice = find_voice_in(folder, name)
            except (OSError, ValueError):
                voice = None
            if voice is not None:
                if not readable_audio(voice.audio):
                    raise api_error(422, f"voice '{name}': its recording holds no readable audio", "voice")
                return voice
        return None

    def prepare(self, req: SpeechRequest) -> Prepared:
        """The request as the engine's ``Speech`` and what follows it, or an HTTP error naming the field at fault."""
        cfg, engine = self.cfg, self.engine
        if len(req.input) > cfg.max_input_chars:
            raise api_error(422, f"input: at most {cfg.max_input_chars} characters per request", "input")
        if not req.input.strip():
            raise api_error(422, "input: nothing to say", "input")
        if req.prompt_text and len(req.prompt_text) > cfg.max_input_chars:
            raise api_error(422, f"prompt_text: at most {cfg.max_input_chars} characters", "prompt_text")
        voice = engine_voice = None
        if req.prompt_wav_path:
            voice = as_voice(self.resolve_prompt(req.prompt_wav_path), req.prompt_text)
        elif req.prompt_text:
            raise api_error(422, "prompt_text needs prompt_wav_path", "prompt_text")
        elif req.voice and req.voice.lower() not in STOCK_VOICES:
            voice = self.registry_voice(req.voice)
            if voice is None:
                if req.voice not in engine.native_voices():
                    known = sorted({v.name for v in list_voices(self.voice_dirs)} | set(engine.native_voices()))
                    named = f" '{req.voice}'" if safe_name(req.voice) else ""  # never echo a path or odd bytes
                    raise api_error(422, f"unknown voice{named} (known: {', '.join(known) or 'none'})", "voice")
                engine_voice = req.voice
        style, headers = req.instructions or None, {}
        if style and not engine.voice_design and not cfg.strict:
            style, headers["X-Instructions-Ignored"] = None, f"{engine.name} has no voice design"
        # The text as the engine should read it (dash clusters, scene breaks; for Piper numbers and the rest).
        text = prepare(req.input, getattr(engine, "reading", "layout"))
        if not text.strip():
            raise api_error(422, "input: nothing to read (no words once prepared for reading)", "input")
        speech = Speech(
            text=text,
            voice=voice,
            style=style,
            cfg_value=req.cfg_value,
            inference_timesteps=req.inference_timesteps,
            max_length=req.max_length,
            seed=req.seed,
            engine_voice=engine_voice,
        )
        try:
            engine.check(speech)
        except RequestProblem as exc:
            raise api_error(422, f"{exc.field}: {exc}", exc.field) from None
        return Prepared(speech, tempo=req.speed if req.speed != 1.0 else None, headers=headers)
