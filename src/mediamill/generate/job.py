"""One job into the store: generate only what the store lacks, measure it, record it, link it.

``generate_job`` asks the backend for the job's media in a private scratch
folder, probes it (paid-for output that is not media fails the row for good),
checks a speech take against its text and takes it again when it fails
(``Verification``), adds the per-row QC flags and puts it in the store under
its content key, with the check's verdict and word timings beside it.
``link_output`` gives a stored file its readable name under ``segments/``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import shutil
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import anyio

from ..backends import Backend, Generated, Job, PermanentError, get_backend
from ..core import exact_sum
from ..manifest import SPEECH_KINDS
from ..media import MediaError, MediaInfo, probe
from ..store import Entry, Store
from ..verify.rowqc import row_flags
from ..verify.takes import TakeCheck
from .speed import retime

log = logging.getLogger("mediamill.generate")


@dataclass(frozen=True)
class Outcome:
    entry: Entry
    generated: Generated | None  # None when the store already had it (and only checked it, if that)
    elapsed_s: float
    retakes: int = 0


# Checks one take by ear: (job, audio) -> TakeCheck. The flow passes one that runs as its own task run,
# under its own limit; without Prefect it is a call in a worker thread.
TakeChecker = Callable[[Job, Path], Awaitable[TakeCheck]]


class PieceChecker(Protocol):
    """Checks one piece of a take: (piece audio, piece text, language) -> its check."""

    def __call__(self, audio: Path, text: str, /, language: str | None = None) -> TakeCheck: ...


@dataclass(frozen=True)
class Verification:
    """How a run checks its speech takes, and what it does with a take that fails."""

    check: TakeChecker
    # For engines that read a row in pieces: (piece audio, piece text, language) -> its check, made as it goes.
    piece: PieceChecker | None = None
    max_takes: int = 3  # generations per row at most, the first included
    keep_failed: bool = False  # keep (flagged) the best take of a row whose every take fails

    def applies(self, job: Job, backend: Backend) -> bool:
        return job.kind in SPEECH_KINDS and backend.verifiable and not backend.dry_run


class TakeFailed(PermanentError):
    """Every take of a row failed its check; what they cost is kept, so the row's cost tells the truth."""

    def __init__(self, message: str, cost_usd: float | None, compute_s: float | None, takes: int):
        super().__init__(message)
        self.cost_usd, self.compute_s, self.takes = cost_usd, compute_s, takes


@dataclass
class _Take:
    generated: Generated
    info: MediaInfo
    check: TakeCheck | None
    number: int


def _sum(values: list[float | None]) -> float | None:
    return exact_sum(values)  # what was billed, to the last digit the provider gave


async def generate_job(
    job: Job,
    store: Store,
    verification: Verification | None = None,
    engine: contextlib.AbstractAsyncContextManager | None = None,
) -> Outcome:
    """Return the stored media for a job, generating it only if the store lacks it.

    With ``verification``, a speech take is checked against its text; one that
    fails is generated again (a new take: a new seed where the engine takes one,
    a new paid task for a hosted engine), up to ``max_takes`` in all, and the
    best is kept. A row whose takes all fail raises ``TakeFailed`` unless
    ``keep_failed``. A stored take made before it was ever checked is checked
    now, and retaken only if it fails. ``engine`` is held around each
    generation, so a lane's next row may generate while this take is checked.
    """
    started = time.perf_counter()
    journal = store.journal(job.key)
    backend = get_backend(job.backend)
    checking = verification is not None and verification.applies(job, backend)
    entry = store.get(job.key)
    if entry is not None:
        journal.clear()  # a run killed between storing and clearing
        if not checking or "verified" in entry.meta:
            return Outcome(entry, None, 0.0)
        assert verification is not None
        check: TakeCheck | None  # a take's check, None while unchecked
        check = await verification.check(job, entry.path)  # take 0: the stored one
        if check.passed or not check.judged or verification.keep_failed:
            extras: dict | None  # None below for a take never checked
            fields, extras = _check_record(check, 0)
            entry = await anyio.to_thread.run_sync(store.annotate, entry, fields, extras)
            return Outcome(entry, None, time.perf_counter() - started)
        log.info("row %s: its stored take does not say its text (%s); taking it again", job.id, check.reason)
    takes: list[_Take] = []
    with store.workdir(job.key) as workdir:
        limit = verification.max_takes if checking else 1  # type: ignore[union-attr]  # checking: not None
        for number in range(limit):
            take_dir = workdir / f"take-{number}"
            take_dir.mkdir()
            piece = verification.piece if checking else None  # type: ignore[union-attr]  # checking: not None
            this_take = job.for_take(number, functools.partial(piece, language=job.language) if piece else None)
            async with engine or contextlib.nullcontext():  # the lane's engine: one generation at a time
                generated = await backend.generate(this_take, take_dir, journal)
            try:
                await retime(job, generated)  # a row's speed, for backends that leave it to the pipeline
                info = await anyio.to_thread.run_sync(probe, generated.path)
                if info.duration_s <= 0:
                    raise MediaError("no duration")
            except MediaError as exc:
                # Possibly paid for: do not regenerate on our own; the row fails and a rerun decides.
                journal.clear()
                raise PermanentError(f"{job.backend} returned unusable media: {exc}") from None
            check = None
            if checking:
                assert verification is not None  # checking says so
                check = generated.extra.get("check") or await verification.check(this_take, generated.path)
            takes.append(_Take(generated, info, check, number))
            if check is None or check.passed or not check.judged:
                break
            if len(takes) > 1 and takes[-2].check is not None and check.repeats(takes[-2].check):
                # The same fault twice: the engine reads this text this way, and another take (paid, on
                # a hosted engine) would say it again. What the fault is decides below.
                log.warning(
                    "row %s, take %d fails where the take before it did (%s); no further takes",
                    job.id,
                    number + 1,
                    check.reason,
                )
                break
            if number + 1 < limit:
                journal.clear()  # this take is in hand; the next is a new generation, not a resumed one
                log.warning(
                    "row %s, take %d does not say its text (%s); taking it again", job.id, number + 1, check.reason
                )
        best = min(takes, key=lambda t: t.check.badness() if t.check else (0.0,))
        spent_cost = _sum([t.generated.cost_usd for t in takes])
        spent_compute = _sum([t.generated.compute_s for t in takes])
        if best.check is not None and best.check.judged and not best.check.passed:
            if best.check.minor():
                # A short extra sound, every take: keep the take, flagged for a listen (results, qc.md).
                best = dataclasses.replace(best, check=dataclasses.replace(best.check, status="flagged"))
            elif not verification.keep_failed:  # type: ignore[union-attr]  # a judged check: not None
                assert best.check is not None  # as tested above (mypy forgets it past the branch that replaces best)
                journal.clear()
                raise TakeFailed(_failure(best.check, len(takes)), spent_cost, spent_compute, len(takes))
        generated = best.generated
        text = job.spoken or getattr(job.row, "text", None)
        # Placeholders from a dry run (silence) have no speech to judge.
        speed = getattr(job.row, "speed", None) or 1.0
        flags = (
            None
            if backend.dry_run
            else await anyio.to_thread.run_sync(row_flags, job.kind, text, generated.path, speed)
        )
        meta = {
            "backend": job.backend,
            "model": job.spec.model,
            "kind": job.kind,
            "duration_s": best.info.duration_s,
            "sample_rate": best.info.sample_rate,
            "channels": best.info.channels,
            "compute_s": spent_compute,
            "cost_usd": spent_cost,  # every take is paid for, the ones thrown away too
            "cost_source": generated.cost_source,
            "task_id": generated.task_id,
            "queue_s": generated.queue_s,
            "attempts_inside": sum(t.generated.attempts_inside for t in takes),
            "pieces": generated.extra.get("pieces"),
            "device": generated.extra.get("device"),
            "warnings": "; ".join(generated.extra.get("kept_bad") or []) or None,
            "qc": flags,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        extras = None
        if best.check is not None:
            fields, extras = _check_record(best.check, len(takes) - 1)
            meta.update(fields)
        # put() fsyncs; in a thread, so hundreds of rows polling on this loop are not held up.
        entry = await anyio.to_thread.run_sync(store.put, job.key, generated.path, meta, extras)
        journal.clear()
    return Outcome(entry, generated, time.perf_counter() - started, len(takes) - 1)


def _check_record(check: TakeCheck, retakes: int) -> tuple[dict, dict]:
    """What the store keeps of a check: fields in the record, the verdict and word timings beside it."""
    fields = {**check.summary(), "retakes": retakes}
    extras = {"verify.json": check.detail()}
    if check.judged:
        extras["words.json"] = {"words": check.words()}
    return fields, extras


def _failure(check: TakeCheck, takes: int) -> str:
    summary = check.summary()
    detail = "; ".join(
        f"{label}: {summary[k]}" for label, k in (("missing", "missing"), ("extra speech", "extra")) if summary[k]
    )
    return f"no take says its text after {takes} take(s): {check.reason}" + (f" ({detail})" if detail else "")


def link_output(entry: Entry, dest: Path) -> Path:
    """Give a stored file a readable name (hard link, copy across filesystems), atomically."""
    dest = dest.with_suffix(entry.path.suffix)
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        if dest.exists() and os.path.samefile(dest, entry.path):
            return dest
    except OSError:
        pass
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.link")  # unique across machines too
    tmp.unlink(missing_ok=True)
    try:
        os.link(entry.path, tmp)
    except OSError:
        shutil.copyfile(entry.path, tmp)
    os.replace(tmp, dest)
    return dest
