"""Silence: a backend that writes silent audio of the length speech would take.

For dry runs of a manifest (plan, stitching, results) at no cost, and for
measuring mediamill's own overhead, since it does next to no work.
"""

from __future__ import annotations

import wave
from pathlib import Path

from ..manifest import Row, TtsRow
from ..store import Journal
from .base import Backend, CostEstimate, Generated, Job, JobSpec

SAMPLE_RATE = 22_050
CHARS_PER_SECOND = 15.0  # a typical narration pace


class SilenceBackend(Backend):
    name = "silence"
    kinds = frozenset({"tts"})
    default_concurrency = 8
    dry_run = True
    batch_rows = 100

    def estimate(self, texts: list[str], speech_s: float) -> CostEstimate:
        return CostEstimate(self.name, 0.0, "free: runs on this machine")

    def spec(self, row: Row, base_dir: Path) -> JobSpec:
        assert isinstance(row, TtsRow)
        seconds = max(0.2, len(row.text) / CHARS_PER_SECOND / (row.speed or 1.0))
        # The text is part of the key so a dry run has the same jobs a real engine would.
        return JobSpec(model="silence", params={"text": row.text, "seconds": round(seconds, 3)})

    async def generate(self, job: Job, workdir: Path, journal: Journal) -> Generated:
        out = workdir / "silence.wav"
        with wave.open(str(out), "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(SAMPLE_RATE)
            wav.writeframes(b"\0\0" * int(SAMPLE_RATE * job.spec.params["seconds"]))
        return Generated(path=out, compute_s=0.0, cost_usd=0.0, cost_source="free")
