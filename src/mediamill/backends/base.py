"""The one small protocol every engine implements.

A backend knows its engine and nothing of Prefect, the store or stitching:
it checks rows it is asked to run, says which inputs make a job unique, and
turns one job into one media file in a folder it is given. The caller
measures the file, stores it atomically and records the result.

A row's ``speed`` is, for a backend with ``speed_as_tempo``, not the
backend's business: ``job_spec`` notes it as the spec's ``tempo``, and the
caller changes the tempo of the generated take before measuring it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import anyio

from ..engines.errors import BackendError, NotInstalledError, PermanentError
from ..manifest import Row
from ..store import Journal
from ..verify.takes import PieceCheck

__all__ = [
    "Backend",
    "BackendError",
    "CostEstimate",
    "Generated",
    "Job",
    "JobSpec",
    "NotInstalledError",
    "PermanentError",
    "ThreadedBackend",
]


@dataclass(frozen=True)
class JobSpec:
    """What a backend says determines its output, for the content key."""

    model: str
    params: dict[str, Any] = field(default_factory=dict)
    # Input files whose *bytes* matter (reference audio, images), by role.
    inputs: dict[str, Path] = field(default_factory=dict)
    # A pitch-keeping tempo change of the generated take (a row's speed), made after the backend's work.
    tempo: float | None = None

    @property
    def key_params(self) -> dict[str, Any]:
        """The parameters as the content key sees them: with the speed only when there is one,
        so rows without it keep the keys they always had."""
        return self.params if self.tempo is None else {**self.params, "speed": self.tempo}


@dataclass(frozen=True)
class Job:
    """One row, resolved: everything needed to generate it and to name its output."""

    row: Row
    row_number: int
    backend: str
    spec: JobSpec
    key: str
    # What the row's text says in words, as verification hears it (the lexicon's say forms); None: the text.
    spoken: str | None = None
    # The row's language (its own column, else the sidecar's), for verification; not part of the key.
    language: str | None = None
    # Which generation of the row this is: 0, then 1, 2... for retakes. Engines that take a seed vary it by
    # the take, so a retake is a new attempt rather than the same audio again. Not part of the key.
    take: int = 0
    # Checks a piece's audio against its text (by ear), for engines that read in pieces: only a bad piece is
    # read again. Set by the generate stage for a take when it verifies; None: no checking. Not in the key.
    check_piece: PieceCheck | None = field(default=None, compare=False, repr=False)

    @property
    def id(self) -> str:
        return self.row.id

    def for_take(self, take: int, check_piece: PieceCheck | None = None) -> Job:
        """This job as its ``take``-th generation, its pieces checked by ``check_piece`` (None: unchecked)."""
        return replace(self, take=take, check_piece=check_piece)

    @property
    def kind(self) -> str:
        return self.row.kind


@dataclass(frozen=True)
class CostEstimate:
    """What producing some texts with a backend would cost, said before anything runs."""

    backend: str
    usd: float | None  # None: cannot be known in advance
    basis: str  # how the figure was reached, for people

    def to_dict(self) -> dict:
        return {"backend": self.backend, "usd": self.usd, "basis": self.basis}


@dataclass
class Generated:
    """A backend's result: the file it wrote plus what only the engine knows."""

    path: Path
    compute_s: float | None = None  # engine time; None when the engine does not say
    cost_usd: float | None = None
    cost_source: str | None = None  # "reported" by the service, "price table", "gpu time", "free"
    task_id: str | None = None  # the hosted service's id for the work
    queue_s: float | None = None
    attempts_inside: int = 1  # generations the backend made, its own bad-case retakes included
    extra: dict[str, Any] = field(default_factory=dict)


class Backend:
    """Base class; subclasses set the class attributes and override the methods."""

    name: ClassVar[str]
    kinds: ClassVar[frozenset[str]] = frozenset({"tts"})
    # Rows this backend runs at once in one process unless settings say otherwise.
    default_concurrency: ClassVar[int] = 1
    # Who shares that limit on a Prefect server: "machine" (local compute) or "fleet" (a hosted API).
    limit_scope: ClassVar[str] = "machine"
    # Rows one Prefect task runs in turn: above 1 only for engines so quick that a task per row
    # (6-9 ms of orchestration) would cost more than the work.
    batch_rows: ClassVar[int] = 1
    # Row columns this engine has no use for: a value there is a mistake worth reporting.
    unused_columns: ClassVar[frozenset[str]] = frozenset()
    # A dry-run engine makes placeholders (silence): there is nothing to master or measure.
    dry_run: ClassVar[bool] = False
    # Whether a speech row's output is its text spoken, which verification can check by ear.
    verifiable: ClassVar[bool] = True
    # A row's speed is applied to the generated take as a tempo change (pitch kept) rather than by the
    # engine: the same speed then means the same speech rate on every engine that says so.
    speed_as_tempo: ClassVar[bool] = False
    # How a row's text is prepared before this engine reads it (mediamill.text.reading.STYLES): "layout"
    # keeps scene breaks and punctuation clusters from being voiced; engines that read through espeak-ng
    # need "espeak" (numbers, abbreviations, money, Roman numerals too).
    reading: ClassVar[str] = "layout"
    # Where the engine runs: "gpu" for one that wants this machine's GPU, so a sweep on a Prefect fleet hands
    # its manifests to the GPU pool's deployment; "cpu" for the rest (hosted APIs included).
    hardware: ClassVar[str] = "cpu"

    def check(self, row: Row, base_dir: Path) -> list[tuple[str | None, str]]:
        """Problems with a row for this engine, as (column, message) pairs."""
        return self.check_unused(row)

    def check_unused(self, row: Row) -> list[tuple[str | None, str]]:
        return [
            (column, f"{self.name} does not use this column; leave it empty")
            for column in sorted(self.unused_columns)
            if getattr(row, column, None) not in (None, [], {})
        ]

    def spec(self, row: Row, base_dir: Path) -> JobSpec:
        """The model, parameters and input files that decide this row's output."""
        raise NotImplementedError

    def job_spec(self, row: Row, base_dir: Path) -> JobSpec:
        """``spec``, with the row's speed as the tempo change when this backend leaves speed to it."""
        spec = self.spec(row, base_dir)
        speed = getattr(row, "speed", None)
        if self.speed_as_tempo and speed is not None and speed != 1.0:  # 1 is the voice's own pace
            spec = replace(spec, tempo=speed)
        return spec

    async def generate(self, job: Job, workdir: Path, journal: Journal) -> Generated:
        """Write the job's media into ``workdir`` and describe it.

        ``journal`` keeps a small record across runs for this job's content
        key: hosted backends note their task id there before waiting on it.
        """
        raise NotImplementedError

    def estimate(self, texts: list[str], speech_s: float) -> CostEstimate:
        """What reading ``texts`` (about ``speech_s`` seconds of speech) would cost, before anything runs.

        The backend knows its own prices and how it cuts text into requests; one that cannot say, says so.
        """
        return CostEstimate(self.name, None, "no price known for this backend (MEDIAMILL_PRICES)")

    async def close(self) -> None:
        """Release what this backend holds for the current event loop (HTTP clients)."""


class ThreadedBackend(Backend):
    """A backend whose engine is blocking (local inference): runs in a worker thread."""

    async def generate(self, job: Job, workdir: Path, journal: Journal) -> Generated:
        started = time.perf_counter()
        result = await anyio.to_thread.run_sync(self.generate_sync, job, workdir)
        if result.compute_s is None:
            result.compute_s = time.perf_counter() - started
        return result

    def generate_sync(self, job: Job, workdir: Path) -> Generated:
        raise NotImplementedError
