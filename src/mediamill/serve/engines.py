"""The engines ``mediamill serve`` speaks with: local VoxCPM (its replicas, or the batched engine) or Piper.

An engine turns one request into 16-bit mono PCM, as an iterator of byte
chunks, checking a cancel event between chunks. ``read`` is the careful path
(long text in pieces, bad-case retakes); ``stream`` yields audio as soon as
the model produces it. Neither knows HTTP. ``voice_design`` says whether the
engine follows ``instructions``; the speed of speech is no engine's concern
(the service changes the tempo of what an engine makes). ``concurrency``,
where an engine has it, is how many requests it generates at once (the
batched engine's capacity); the others generate one per device.

``BatchSpeechEngine`` is VoxCPM on nano-vllm-voxcpm (``VOXCPM_ENGINE``, as for
batch runs): a ``read`` submits every piece at once with bad-case retakes and
hands PCM back in order; a ``stream`` sends the first piece chunk by chunk
while the later ones generate beside it, without retakes (their audio is
already out). Both run on the engine's loop and hand PCM to the calling
thread through a queue; a cancel, an error or a client that leaves cancels
every piece of the request, which frees their places in the batch.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..backends import piper as piper_backend
from ..engines.reading import Reading, Recipe, read_pieces, recipe, silence
from ..engines.voxcpm import (
    INSTALL_HINT,
    Knobs,
    Voicing,
    VoxcpmSettings,
    current_settings,
    installed,
    model_label,
    replica_pool,
    seed_for,
)
from ..engines.voxcpm.batch import (
    BatchEngine,
    BatchVoice,
    chosen_engine,
    get_engine,
    model_folder,
    piece_request,
    read_row,
    requests_of,
    served_timesteps,
)
from ..voices import Voice


class Cancelled(Exception):
    """The request was cancelled while generating."""


class RequestProblem(ValueError):
    """A request this engine cannot serve, with the field to blame."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(message)


@dataclass(frozen=True)
class Speech:
    """One request, with its voice already resolved to files."""

    text: str
    voice: Voice | None = None  # a registry voice or a prompt file, as a Voice
    style: str | None = None
    cfg_value: float = 2.0
    inference_timesteps: int = 10
    max_length: int = 2048
    seed: int | None = None
    engine_voice: str | None = None  # a voice the engine itself knows (Piper's voices)


class VoxcpmEngine:
    name = "voxcpm"
    voice_design = True

    def __init__(self) -> None:
        if not installed():
            raise RuntimeError(INSTALL_HINT)
        self.settings = current_settings()
        self.pool = replica_pool(self.settings)
        self.model = model_label(self.settings.model, self.settings.local_files_only)
        self.sample_rate = 0

    def start(self) -> None:
        with self.pool.replica() as replica:  # load now, not on the first request
            self.sample_rate = replica.sample_rate

    def devices(self) -> list[str]:
        return self.pool.devices

    def native_voices(self) -> list[str]:
        return []

    def _voicing(self, speech: Speech):
        voice = speech.voice
        return Voicing.of(voice.audio if voice else None, voice.transcript if voice else None, speech.style)

    def _recipe(self, speech: Speech) -> Recipe:
        return recipe(speech.text, self.settings, seed_for(speech.text, speech.seed))

    def check(self, speech: Speech) -> None:
        if speech.engine_voice:
            raise RequestProblem("voice", f"unknown voice '{speech.engine_voice}'")

    def read(self, speech: Speech, cancel: threading.Event, reading: Reading) -> Iterator[bytes]:
        cfg = self.settings
        plan = self._recipe(speech)
        voicing = self._voicing(speech)
        knobs = Knobs(speech.cfg_value, speech.inference_timesteps)
        with self.pool.replica() as replica:

            def take(text: str, attempt: int):
                if cancel.is_set():
                    raise Cancelled()
                return replica.take(text, voicing, knobs, plan.seed_of(attempt), plan.check, max_len=speech.max_length)

            for piece, chosen, _ in read_pieces(plan.pieces, take, plan.check, reading, cfg.max_takes, cfg.keep_bad):
                yield chosen.pcm
                yield silence(piece.pause_after, chosen.sample_rate)

    def stream(self, speech: Speech, cancel: threading.Event) -> Iterator[bytes]:
        plan = self._recipe(speech)
        voicing = self._voicing(speech)
        knobs = Knobs(speech.cfg_value, speech.inference_timesteps)
        with self.pool.replica() as replica:
            for piece in plan.pieces:
                if cancel.is_set():
                    raise Cancelled()
                for chunk in replica.stream(piece.text, voicing, knobs, plan.seed, plan.check, speech.max_length):
                    if cancel.is_set():
                        raise Cancelled()
                    yield chunk
                yield silence(piece.pause_after, replica.sample_rate)


class PiperEngine:
    name = "piper"
    voice_design = False
    reading = "espeak"  # Piper phonemizes through espeak-ng: see mediamill.text.reading

    def __init__(self) -> None:
        self._piper = piper_backend
        self.model = "piper"
        self.sample_rate = 0
        self._voices: dict[str, object] = {}
        self._lock = threading.Lock()

    def _load(self, name: str):
        import json

        import onnxruntime
        from piper import PiperConfig, PiperVoice

        with self._lock:
            if name not in self._voices:
                path, _ = self._piper.voices()[name]
                options = onnxruntime.SessionOptions()
                # Readings take turns on the model thread, and onnxruntime's workers spinning between one
                # reading's operators made them cost ~60% more CPU (eight short readings: 4.4 s, not 2.7 s).
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")
                session = onnxruntime.InferenceSession(
                    str(path), sess_options=options, providers=["CPUExecutionProvider"]
                )
                config = PiperConfig.from_dict(json.loads(Path(f"{path}.json").read_text(encoding="utf-8")))
                self._voices[name] = PiperVoice(session=session, config=config)
            return self._voices[name]

    def start(self) -> None:
        voice = self._load(self._piper.DEFAULT_VOICE)
        self.sample_rate = voice.config.sample_rate
        self.model = f"piper:{self._piper.DEFAULT_VOICE}"

    def devices(self) -> list[str]:
        return ["cpu"]

    def native_voices(self) -> list[str]:
        return sorted(self._piper.voices())

    def check(self, speech: Speech) -> None:
        if speech.voice is not None:
            raise RequestProblem("voice", "piper cannot clone a recorded voice; serve VoxCPM for that")
        if speech.style:
            raise RequestProblem("instructions", "piper has no voice design")
        name = speech.engine_voice or self._piper.DEFAULT_VOICE
        if name not in self._piper.voices():
            raise RequestProblem("voice", f"unknown voice '{name}' (piper voices: {', '.join(self.native_voices())})")
        if self._load(name).config.sample_rate != self.sample_rate:
            raise RequestProblem("voice", f"voice '{name}' has another sample rate than the server's default voice")

    def read(self, speech: Speech, cancel: threading.Event, reading: Reading) -> Iterator[bytes]:
        voice = self._load(speech.engine_voice or self._piper.DEFAULT_VOICE)
        pause = silence(0.25, self.sample_rate)
        for i, chunk in enumerate(voice.synthesize(speech.text)):
            if cancel.is_set():
                raise Cancelled()
            reading.pieces += 1
            reading.generations += 1
            yield (pause if i else b"") + chunk.audio_int16_bytes

    def stream(self, speech: Speech, cancel: threading.Event) -> Iterator[bytes]:
        return self.read(speech, cancel, Reading(kept_bad=[]))


_END = object()
Push = Callable[[bytes], None]


class BatchSpeechEngine:
    """VoxCPM on the batched engine: every request in flight shares the engine's steps (see module doc)."""

    name = "voxcpm"
    voice_design = True

    def __init__(self, settings: VoxcpmSettings | None = None) -> None:
        self.settings = settings or current_settings()
        self.model = model_label(self.settings.model, self.settings.local_files_only)
        self.sample_rate = 0
        self.engine: BatchEngine | None = None

    @property
    def concurrency(self) -> int:
        return self.engine.capacity if self.engine is not None else self.settings.batch_max_seqs

    def start(self) -> None:
        folder = model_folder(self.settings.model, self.settings.local_files_only)
        self.engine = get_engine(self.settings, folder)
        self.engine.start_sync()  # loading and CUDA-graph capture happen now, not on the first request
        self.sample_rate = self.engine.sample_rate

    def devices(self) -> list[str]:
        return list(self.engine.devices) if self.engine is not None else []

    def native_voices(self) -> list[str]:
        return []

    def check(self, speech: Speech) -> None:
        if speech.engine_voice:
            raise RequestProblem("voice", f"unknown voice '{speech.engine_voice}'")
        served = served_timesteps(self.settings)
        if speech.inference_timesteps not in served:
            raise RequestProblem(
                "inference_timesteps", f"this server runs {', '.join(map(str, served))} steps (VOXCPM_BATCH_TIMESTEPS)"
            )

    # -- generation --------------------------------------------------------------------
    async def _voice(self, speech: Speech) -> BatchVoice:
        voice = speech.voice
        if voice is None:
            return BatchVoice(style=speech.style)
        assert self.engine is not None  # _voice runs inside _pump, which checked
        latents = await self.engine.latents(voice.audio)
        if voice.transcript:
            return BatchVoice(style=speech.style, prompt_latents=latents, prompt_text=voice.transcript)
        return BatchVoice(style=speech.style, ref_latents=latents)

    def _pump(self, make: Callable[[Push], Coroutine[Any, Any, None]], cancel: threading.Event) -> Iterator[bytes]:
        """Run ``make(push)`` on the engine's loop; yield what it pushes until it ends, fails or is cancelled."""
        assert self.engine is not None, "start() first"
        out: queue.Queue = queue.Queue()
        future = self.engine.submit(make(out.put))
        future.add_done_callback(lambda _: out.put(_END))
        try:
            while True:
                try:
                    item = out.get(timeout=0.1)
                except queue.Empty:
                    if cancel.is_set():
                        raise Cancelled() from None
                    continue
                if item is _END:
                    break
                if cancel.is_set():
                    raise Cancelled()
                yield item
            future.result()  # what went wrong in there, raised here
        finally:
            future.cancel()  # a client that left, a cancel, an error: stop every piece of this request

    def read(self, speech: Speech, cancel: threading.Event, reading: Reading) -> Iterator[bytes]:
        plan = recipe(speech.text, self.settings, seed_for(speech.text, speech.seed))
        pieces, check = plan.pieces, plan.check
        engine = self.engine

        async def make(push: Push) -> None:
            assert engine is not None  # make runs inside _pump, which checked
            voice = await self._voice(speech)

            request_for = requests_of(
                engine,
                plan,
                voice,
                timesteps=speech.inference_timesteps,
                cfg_value=speech.cfg_value,
                max_len=speech.max_length,
            )

            async def sink(piece, take) -> None:
                push(take.pcm)
                push(silence(piece.pause_after, take.sample_rate))

            done = await read_row(
                engine, pieces, request_for, check, sink, self.settings.max_takes, self.settings.keep_bad
            )
            for name in ("pieces", "generations", "regenerated", "sample_rate"):
                setattr(reading, name, getattr(done, name))
            assert reading.kept_bad is not None  # every caller passes Reading(kept_bad=[])
            reading.kept_bad.extend(done.kept_bad or [])

        return self._pump(make, cancel)

    def stream(self, speech: Speech, cancel: threading.Event) -> Iterator[bytes]:
        plan = recipe(speech.text, self.settings, seed_for(speech.text, speech.seed))
        pieces, check, seed = plan.pieces, plan.check, plan.seed
        engine = self.engine
        assert engine is not None, "start() first"

        async def make(push: Push) -> None:
            voice = await self._voice(speech)
            requests = [
                piece_request(
                    engine,
                    piece.text,
                    voice,
                    seed,
                    check,
                    timesteps=speech.inference_timesteps,
                    cfg_value=speech.cfg_value,
                    max_len=speech.max_length,
                )
                for piece in pieces
            ]
            # Later pieces generate alongside the first; the first streams as it is made.
            later = [asyncio.ensure_future(engine.generate_piece(r, None, keep=True)) for r in requests[1:]]
            try:
                await engine.generate_piece(requests[0], push, keep=False)
                push(silence(pieces[0].pause_after, engine.sample_rate))
                for piece, task in zip(pieces[1:], later, strict=True):
                    take = await task
                    push(take.pcm)
                    push(silence(piece.pause_after, engine.sample_rate))
            finally:
                for task in later:
                    task.cancel()

        return self._pump(make, cancel)


def make_engine(name: str):
    if name == "voxcpm":
        if not installed():
            raise RuntimeError(INSTALL_HINT)
        cfg = current_settings()
        if chosen_engine(cfg) == "nanovllm":  # VOXCPM_ENGINE, as for batch runs
            return BatchSpeechEngine(cfg)
        return VoxcpmEngine()
    if name == "piper":
        return PiperEngine()
    raise ValueError(f"unknown engine '{name}' (voxcpm or piper)")


def as_voice(path: Path, transcript: str | None) -> Voice:
    return Voice(path.stem, path, transcript or None)
