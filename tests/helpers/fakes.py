"""Backends that misbehave on purpose, loaded by spec ("tests.helpers.fakes:Name")."""

from __future__ import annotations

import asyncio
import wave
import weakref
from pathlib import Path

from mediamill.backends import Backend, BackendError, Generated, Job, JobSpec, PermanentError
from mediamill.manifest import Row


def write_tone_wav(path: Path, seconds: float, rate: int = 16_000) -> Path:
    import math

    frames = int(seconds * rate)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(
            b"".join(
                int(8000 * math.sin(2 * math.pi * 440 * n / rate)).to_bytes(2, "little", signed=True)
                for n in range(frames)
            )
        )
    return path


class _Counting(Backend):
    kinds = frozenset({"tts"})
    default_concurrency = 4
    verifiable = False  # a tone, not its text spoken

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self.in_flight = 0
        self.max_in_flight = 0

    def spec(self, row: Row, base_dir: Path) -> JobSpec:
        return JobSpec(model=type(self).__name__, params={"text": row.text})  # type: ignore[attr-defined]

    hold_s = 0.05  # how long a row takes

    async def _tone(self, job: Job, workdir: Path) -> Generated:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(float(job.row.options.get("hold_s", self.hold_s)))  # a row may say how long
            return Generated(path=write_tone_wav(workdir / "tone.wav", 0.3), cost_usd=0.01, cost_source="price table")
        finally:
            self.in_flight -= 1


class FlakyBackend(_Counting):
    """Fails the first two attempts of every job, then succeeds."""

    name = "flaky"

    async def generate(self, job: Job, workdir: Path, journal=None) -> Generated:
        n = self.calls[job.key] = self.calls.get(job.key, 0) + 1
        if n <= 2:
            raise BackendError(f"transient failure {n} for {job.id}")
        return await self._tone(job, workdir)


class BrokenBackend(_Counting):
    """Fails rows whose text contains 'FAIL' every time; others succeed."""

    name = "broken"

    async def generate(self, job: Job, workdir: Path, journal=None) -> Generated:
        self.calls[job.key] = self.calls.get(job.key, 0) + 1
        if "FAIL" in job.row.text:  # type: ignore[attr-defined]
            raise BackendError("engine exploded on this line")
        return await self._tone(job, workdir)


class RefusingBackend(_Counting):
    """Fails with a permanent error: must not be retried."""

    name = "refusing"

    async def generate(self, job: Job, workdir: Path, journal=None) -> Generated:
        self.calls[job.key] = self.calls.get(job.key, 0) + 1
        raise PermanentError("insufficient balance")


class CountingBackend(_Counting):
    """Always succeeds; records how many rows ran at once."""

    name = "counting"

    async def generate(self, job: Job, workdir: Path, journal=None) -> Generated:
        self.calls[job.key] = self.calls.get(job.key, 0) + 1
        return await self._tone(job, workdir)


def write_speechlike_wav(
    path: Path,
    seconds: float,
    level_db: float = -18.0,
    noise_db: float | None = None,
    rate: int = 16_000,
    seed: int = 1,
) -> Path:
    """Voiced bursts at a syllable rate with short gaps, peaking near ``level_db``, plus optional noise."""
    import math
    import random
    import struct

    rnd = random.Random(seed)
    peak = 10 ** (level_db / 20)
    noise = 10 ** (noise_db / 20) * math.sqrt(3) if noise_db is not None else 0.0  # uniform noise of that RMS
    frames = bytearray()
    for n in range(int(seconds * rate)):
        t = n / rate
        voiced = (t % 1.0) < 0.7  # 0.7 s of "speech", 0.3 s pause, every second
        envelope = abs(math.sin(math.pi * 4 * t)) if voiced else 0.0
        x = (
            envelope
            * peak
            * (
                0.6 * math.sin(2 * math.pi * 180 * t)
                + 0.3 * math.sin(2 * math.pi * 360 * t)
                + 0.1 * math.sin(2 * math.pi * 720 * t)
            )
        )
        x += rnd.uniform(-noise, noise)
        frames += struct.pack("<h", max(-32768, min(32767, round(x * 32767))))
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(bytes(frames))
    return path


class SpeechlikeBackend(Backend):
    """Speech-shaped test audio as long as the text would take to read; options level_db and noise_db."""

    name = "speechlike"
    kinds = frozenset({"tts"})
    default_concurrency = 4
    verifiable = False  # shaped like speech, says nothing

    def spec(self, row: Row, base_dir: Path) -> JobSpec:
        return JobSpec(model="speechlike", params={"text": row.text, **row.options})  # type: ignore[attr-defined]

    async def generate(self, job: Job, workdir: Path, journal=None) -> Generated:
        from mediamill.text import predicted_seconds

        p = job.spec.params
        seconds = max(1.0, predicted_seconds(p["text"]))
        path = write_speechlike_wav(workdir / "speech.wav", seconds, p.get("level_db", -18.0), p.get("noise_db"))
        return Generated(path=path, cost_usd=0.0, cost_source="free")


class SlowFleetBackend(_Counting):
    """A hosted-API stand-in shared by the fleet: each row takes a while and notes when it ran.

    The notes go to the file named by ``MEDIAMILL_TEST_EVENTS`` (one line per start and end, and ``made``
    for a row that finished its audio, appended), so a test can see how many rows ran at once across worker
    processes, and that none was made twice.
    """

    name = "slow-fleet"
    limit_scope = "fleet"
    hold_s = 1.5

    def _note(self, what: str, job: Job) -> None:
        import os
        import time

        with open(os.environ["MEDIAMILL_TEST_EVENTS"], "a", encoding="utf-8") as fh:
            fh.write(f"{time.time():.6f} {what} {os.getpid()} {job.id}\n")

    async def generate(self, job: Job, workdir: Path, journal=None) -> Generated:
        self._note("start", job)
        try:
            made = await self._tone(job, workdir)
            self._note("made", job)
            return made
        finally:
            self._note("end", job)


class MisreadingPiperBackend(Backend):
    """Real Piper speech that reads the wrong text on the first ``misreads`` takes of each row, then the right one.

    An engine stand-in for retakes: a verifier must hear the first takes fail and a later one pass.
    ``misreads`` comes from the row's options (default 1); every take costs 0.01.
    """

    name = "misreading-piper"
    kinds = frozenset({"tts"})
    WRONG = "The weather in the valley turned cold before the harvest."

    def spec(self, row: Row, base_dir: Path) -> JobSpec:
        return JobSpec(model="misreading-piper", params={"text": row.text, **row.options})  # type: ignore[attr-defined]

    async def generate(self, job: Job, workdir: Path, journal=None) -> Generated:
        import anyio

        from mediamill.backends import get_backend

        piper = get_backend("piper")
        misreads = int(job.spec.params.get("misreads", 1))
        text = self.WRONG if job.take < misreads else job.spec.params["text"]
        spoken = JobSpec(
            model="en_US-joe-medium",
            params={"text": text, "sentence_silence": 0.25, "noise_scale": 0, "noise_w_scale": 0},
        )
        import dataclasses

        made = await anyio.to_thread.run_sync(piper.generate_sync, dataclasses.replace(job, spec=spoken), workdir)
        return Generated(path=made.path, cost_usd=0.01, cost_source="price table", task_id=f"take-{job.take}")


class UnpacedBackend(SpeechlikeBackend):
    """An engine without a rate control of its own: a row's speed is left to the pipeline's tempo change."""

    name = "unpaced"
    speed_as_tempo = True


class SameFaultPiperBackend(Backend):
    """Real Piper speech with the same fault in every take, as a deterministic engine makes it.

    Options: ``insert`` (a word read after the row's ``at``-th word: a short extra sound, the way espeak
    once voiced "Father!—chiefly" as "Father exclamation chiefly") or ``drop`` (the row's last ``drop``
    words left out). Every take costs 0.01.
    """

    name = "same-fault-piper"
    kinds = frozenset({"tts"})

    def spec(self, row: Row, base_dir: Path) -> JobSpec:
        return JobSpec(model="same-fault-piper", params={"text": row.text, **row.options})  # type: ignore[attr-defined]

    async def generate(self, job: Job, workdir: Path, journal=None) -> Generated:
        import dataclasses

        import anyio

        from mediamill.backends import get_backend

        params = job.spec.params
        words = params["text"].split()
        if params.get("insert"):
            at = int(params.get("at", 3))
            words = words[:at] + [params["insert"]] + words[at:]
        if params.get("drop"):
            words = words[: -int(params["drop"])]
        spoken = JobSpec(
            model="en_US-joe-medium",
            params={"text": " ".join(words), "sentence_silence": 0.25, "noise_scale": 0, "noise_w_scale": 0},
        )
        piper = get_backend("piper")
        made = await anyio.to_thread.run_sync(piper.generate_sync, dataclasses.replace(job, spec=spoken), workdir)
        return Generated(path=made.path, cost_usd=0.01, cost_source="price table", task_id=f"take-{job.take}")


class TimedBackend(_Counting):
    """A verifiable stand-in that notes when each generation starts and ends (``spans``: job id, take, start, end)."""

    name = "timed"
    verifiable = True  # its checks are the test's own
    default_concurrency = 1
    hold_s = 0.1

    def __init__(self) -> None:
        super().__init__()
        self.spans: list[tuple[str, int, float, float]] = []

    async def generate(self, job: Job, workdir: Path, journal=None) -> Generated:
        import time

        started = time.monotonic()
        try:
            return await self._tone(job, workdir)
        finally:
            self.spans.append((job.id, job.take, started, time.monotonic()))


class LoopBoundBackend(_Counting):
    """A hosted-API stand-in whose client belongs to the event loop, as a real one's does: once closed in a
    loop, a row still running there fails. Rows whose id starts with ``q`` are quick; the others wait for the
    quick one to finish, then take a second more, so they are still running when its run ends."""

    name = "loop-bound"

    def __init__(self) -> None:
        super().__init__()
        self.closed: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()  # the loops it was closed in
        self.quick_done: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Event] = (
            weakref.WeakKeyDictionary()
        )

    async def generate(self, job: Job, workdir: Path, journal=None) -> Generated:
        loop = asyncio.get_running_loop()
        quick_done = self.quick_done.setdefault(loop, asyncio.Event())
        if job.id.startswith("q"):
            made = await self._tone(job, workdir)
            quick_done.set()
        else:
            await asyncio.wait_for(quick_done.wait(), 60)
            await asyncio.sleep(1.0)
            made = await self._tone(job, workdir)
        if loop in self.closed:
            raise PermanentError("the client was closed under this row")
        return made

    async def close(self) -> None:
        self.closed.add(asyncio.get_running_loop())


class LatencyBackend(SlowFleetBackend):
    """One machine's engine, bound by its latency rather than by this machine's cores: each row takes
    ``MEDIAMILL_TEST_ROW_S`` seconds (default 0.25), one row at a time per machine (a per-machine limit of 1,
    so workers with their own ``MEDIAMILL_MACHINE`` stand for machines of their own). Notes as SlowFleetBackend."""

    name = "latency"
    limit_scope = "machine"
    default_concurrency = 1

    @property
    def hold_s(self) -> float:  # type: ignore[override]
        import os

        return float(os.environ.get("MEDIAMILL_TEST_ROW_S", "0.25"))
