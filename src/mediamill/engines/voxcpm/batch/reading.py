"""Reading text on the batched engine: every piece submitted at once, each judged and retaken, delivered in order.

``read_row(engine, pieces, request_for, check, sink, max_takes, keep_bad)``
runs one coroutine per piece on the engine's loop, all at once, so one
chapter can fill a batch. Each piece keeps the rules of
``mediamill.engines.reading.read_pieces``, the sequential reader it replaces here:

- take ``attempt`` of a piece is ``request_for(index, attempt)`` (the caller
  seeds it ``take_seed(seed, attempt)``, like the plain engine);
- a take is judged after the fact by ``DurationCheck`` (nano-vllm has no
  minimum length, so a take that stopped too early is *truncated* and taken
  again; one that ran to its cap is *babbling*);
- the first plausible take wins, else after ``max_takes`` the one closest to
  the predicted length, which fails the reading (``BadCaseError``, same
  message as the sequential reader) unless ``keep_bad``.

``sink(piece, take)`` receives the chosen takes in piece order, whatever
order they finish in (the WAV file is written piece by piece; a take that
finishes early waits in memory). A failed piece cancels the others.
``piece_request`` builds the engine request for one take: step cap from the
babbling bound, clamped to what the engine's ``max_model_len`` leaves after
the prompt. ``WavSink`` writes a 16-bit mono WAV with each piece's pause.

The returned ``BatchReading`` adds to ``engines.reading.Reading`` what a row is
charged: ``compute_s`` (its takes' shares of GPU time, rejected takes
included), ``queue_s`` (until its first piece was admitted) and the devices.
"""

from __future__ import annotations

import asyncio
import math
import re
import wave
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from ....text import Piece, predicted_seconds
from ....verify import DurationCheck
from ....verify.takes import TakeCheck
from ...errors import PermanentError
from ...reading import BadCaseError, Hear, Reading, Recipe, silence, steps_for
from .engine import BatchEngine, BatchTake, TakeRequest

__all__ = ["BatchReading", "BatchVoice", "WavSink", "piece_request", "read_row", "requests_of"]


@dataclass(frozen=True)
class BatchVoice:
    """How every piece of a row should sound, in the engine's terms."""

    style: str | None = None  # VoxCPM2 voice design, read as a "(style)" prefix
    prompt_latents: bytes | None = None  # continuation: with prompt_text
    prompt_text: str = ""
    ref_latents: bytes | None = None  # VoxCPM2 reference mode: timbre only

    def text(self, text: str) -> str:
        return f"({self.style}){text}" if self.style else text


@dataclass
class BatchReading(Reading):
    compute_s: float = 0.0
    queue_s: float | None = None
    devices: set[str] = field(default_factory=set)


_SPACES = re.compile(r"\s+")


def requests_of(
    engine: BatchEngine,
    plan: Recipe,
    voice: BatchVoice,
    *,
    timesteps: int,
    cfg_value: float,
    max_len: int | None = None,
    normalize: Callable[[str], str] | None = None,
) -> Callable[[int, int], TakeRequest]:
    """``request_for(index, attempt)`` for ``read_row``: a piece's take with the recipe's seed for that attempt
    (the first take of every piece uses the text's own seed; each retake another)."""

    def request_for(index: int, attempt: int) -> TakeRequest:
        return piece_request(
            engine,
            plan.pieces[index].text,
            voice,
            plan.seed_of(attempt),
            plan.check,
            timesteps=timesteps,
            cfg_value=cfg_value,
            max_len=max_len,
            normalize=normalize,
        )

    return request_for


def piece_request(
    engine: BatchEngine,
    text: str,
    voice: BatchVoice,
    seed: int,
    check: DurationCheck,
    *,
    timesteps: int,
    cfg_value: float,
    max_len: int | None = None,
    normalize: Callable[[str], str] | None = None,
) -> TakeRequest:
    """One take of one piece: capped at the babbling bound (and ``max_len``) and at what the engine can hold."""
    spoken = _SPACES.sub(" ", text.replace("\n", " "))  # what voxcpm itself does to a text
    if normalize is not None:
        spoken = normalize(spoken)
    cap = steps_for(check.max_seconds(text), engine.steps_per_s)
    if max_len is not None:
        cap = min(cap, max_len)
    request = TakeRequest(
        text=voice.text(spoken),
        seed=seed,
        max_len=cap,
        timesteps=timesteps,
        cfg_value=cfg_value,
        prompt_latents=voice.prompt_latents,
        prompt_text=voice.prompt_text,
        ref_latents=voice.ref_latents,
        expected_steps=steps_for(predicted_seconds(text), engine.steps_per_s),
    )
    room = engine.cfg.batch_max_model_len - engine.prompt_tokens(request)
    if room < 1:
        raise PermanentError(
            f"a piece and its voice prompt need {engine.prompt_tokens(request)} of the engine's "
            f"{engine.cfg.batch_max_model_len} tokens: shorten the prompt or raise "
            "VOXCPM_BATCH_MAX_MODEL_LEN"
        )
    return TakeRequest(**{**request.__dict__, "max_len": min(cap, room)})


Sink = Callable[[Piece, BatchTake], Awaitable[None]]


async def read_row(
    engine: BatchEngine,
    pieces: list[Piece],
    request_for: Callable[[int, int], TakeRequest],
    check: DurationCheck,
    sink: Sink,
    max_takes: int = 3,
    keep_bad: bool = False,
    hear: Hear | None = None,
) -> BatchReading:
    """Read every piece at once on ``engine``; ``sink`` gets the chosen takes in order.

    With ``hear`` (see ``engines.reading.hearing``), a take of plausible length is also checked by ear, in a
    worker thread, and taken again when it does not say its piece; the checks land in ``reading.checks`` at
    each piece's start in the row's audio (``sink`` must have a ``frames`` count and a ``rate``).
    """
    return await engine.run(_read_row(engine, pieces, request_for, check, sink, max_takes, keep_bad, hear))


async def _read_row(engine, pieces, request_for, check, sink, max_takes, keep_bad, hear=None) -> BatchReading:  # noqa: ANN001
    reading = BatchReading(kept_bad=[])
    started = asyncio.get_running_loop().time()
    chosen: dict[int, tuple[BatchTake, TakeCheck | None]] = {}
    bad: dict[int, str] = {}
    next_up = 0
    order_lock = asyncio.Lock()

    async def deliver() -> None:
        nonlocal next_up
        async with order_lock:  # one writer, in piece order
            while next_up in chosen:
                take, heard = chosen.pop(next_up)
                if heard is not None:
                    reading.checks.append((getattr(sink, "frames", 0) / take.sample_rate, heard))
                await sink(pieces[next_up], take)
                next_up += 1

    async def one(index: int, piece: Piece) -> None:
        expected = max(predicted_seconds(piece.text), 1e-3)
        best: tuple[tuple, BatchTake, TakeCheck | None] | None = None
        loop = asyncio.get_running_loop()
        for attempt in range(max_takes):
            take = await engine.take(request_for(index, attempt))
            reading.generations += 1
            reading.compute_s += take.compute_s
            reading.devices.add(take.device)
            if attempt == 0:  # the row waited until its first piece got a slot
                reading.queue_s = take.queue_s if reading.queue_s is None else min(reading.queue_s, take.queue_s)
            if attempt == 1:
                reading.regenerated += 1
            miss = abs(math.log(max(take.duration_s, 1e-3) / expected))
            if check.judge(take.duration_s, piece.text, take.hit_cap) is None:
                heard = await loop.run_in_executor(None, hear, take, piece.text) if hear is not None else None
                if heard is None or heard.passed or not heard.judged:
                    best = ((-1,), take, heard)
                    break
                rank: tuple = (0, *heard.badness(), miss)
            else:
                heard, rank = None, (1, 0.0, 0.0, 0.0, miss)
            if best is None or rank < best[0]:
                best = (rank, take, heard)
        assert best is not None
        take, heard = best[1], best[2]
        verdict = check.judge(take.duration_s, piece.text, take.hit_cap)
        if verdict:
            where = f"piece {index + 1} of {len(pieces)} ({_excerpt(piece.text)})"
            if not keep_bad:
                raise BadCaseError(f"{where}: {verdict}, after {max_takes} takes")
            bad[index] = f"{where}: {verdict}"
        if not reading.sample_rate:
            reading.sample_rate = take.sample_rate
        elif take.sample_rate != reading.sample_rate:
            raise ValueError("the engine changed sample rate between pieces")
        reading.pieces += 1
        chosen[index] = (take, heard)
        await deliver()

    tasks = [asyncio.ensure_future(one(i, piece)) for i, piece in enumerate(pieces)]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    reading.kept_bad = [bad[i] for i in sorted(bad)]
    if reading.queue_s is None:
        reading.queue_s = asyncio.get_running_loop().time() - started
    return reading


class WavSink:
    """Writes the chosen takes into a 16-bit mono WAV, each followed by its piece's pause."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self._wav: wave.Wave_write | None = None
        self.frames = 0

    async def __call__(self, piece: Piece, take: BatchTake) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self._write, piece, take)

    def _write(self, piece: Piece, take: BatchTake) -> None:
        if self._wav is None:
            self._wav = wave.open(str(self.out), "wb")
            self._wav.setnchannels(1)
            self._wav.setsampwidth(2)
            self._wav.setframerate(take.sample_rate)
        self._wav.writeframes(take.pcm)
        self._wav.writeframes(silence(piece.pause_after, take.sample_rate))
        self.frames = self._wav.tell()

    def close(self) -> None:
        if self._wav is not None:
            self._wav.close()
            self._wav = None


def _excerpt(text: str, width: int = 40) -> str:
    return repr(text if len(text) <= width else text[: width - 3] + "...")
