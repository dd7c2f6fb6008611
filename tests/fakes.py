"""Backends that misbehave on purpose, loaded by spec ("tests.fakes:Name")."""

from __future__ import annotations

import asyncio
import wave
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
            b"".join(int(8000 * math.sin(2 * math.pi * 440 * n / rate)).to_bytes(2, "little", signed=True) for n in range(frames))
        )
    return path


class _Counting(Backend):
    kinds = frozenset({"tts"})
    default_concurrency = 4

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self.in_flight = 0
        self.max_in_flight = 0

    def spec(self, row: Row, base_dir: Path) -> JobSpec:
        return JobSpec(model=type(self).__name__, params={"text": row.text})  # type: ignore[attr-defined]

    async def _tone(self, job: Job, workdir: Path) -> Generated:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.05)
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
