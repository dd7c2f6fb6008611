"""One job into the store: generate only what the store lacks, measure it, record it, link it.

``generate_job`` asks the backend for the job's media in a private scratch
folder, probes it (paid-for output that is not media fails the row for good),
adds the per-row QC flags and puts it in the store under its content key.
``link_output`` gives a stored file its readable name under ``segments/``.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import anyio

from ..backends import Generated, Job, PermanentError, get_backend
from ..media import MediaError, probe
from ..store import Entry, Store
from ..verify.rowqc import row_flags
from .speed import retime


@dataclass(frozen=True)
class Outcome:
    entry: Entry
    generated: Generated | None  # None when the store already had it
    elapsed_s: float


async def generate_job(job: Job, store: Store) -> Outcome:
    """Return the stored media for a job, generating it only if the store lacks it."""
    started = time.perf_counter()
    journal = store.journal(job.key)
    entry = store.get(job.key)
    if entry is not None:
        journal.clear()  # a run killed between storing and clearing
        return Outcome(entry, None, 0.0)
    backend = get_backend(job.backend)
    with store.workdir(job.key) as workdir:
        generated = await backend.generate(job, workdir, journal)
        try:
            await retime(job, generated)  # a row's speed, for backends that leave it to the pipeline
            info = await anyio.to_thread.run_sync(probe, generated.path)
            if info.duration_s <= 0:
                raise MediaError("no duration")
        except MediaError as exc:
            # Possibly paid for: do not regenerate on our own; the row fails and a rerun decides.
            journal.clear()
            raise PermanentError(f"{job.backend} returned unusable media: {exc}") from None
        text = getattr(job.row, "text", None)
        # Placeholders from a dry run (silence) have no speech to judge.
        flags = None if backend.dry_run else await anyio.to_thread.run_sync(row_flags, job.kind, text, generated.path)
        meta = {
            "backend": job.backend,
            "model": job.spec.model,
            "kind": job.kind,
            "duration_s": info.duration_s,
            "sample_rate": info.sample_rate,
            "channels": info.channels,
            "compute_s": generated.compute_s,
            "cost_usd": generated.cost_usd,
            "cost_source": generated.cost_source,
            "task_id": generated.task_id,
            "queue_s": generated.queue_s,
            "attempts_inside": generated.attempts_inside,
            "pieces": generated.extra.get("pieces"),
            "device": generated.extra.get("device"),
            "warnings": "; ".join(generated.extra.get("kept_bad") or []) or None,
            "qc": flags,
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        # put() fsyncs; in a thread, so hundreds of rows polling on this loop are not held up.
        entry = await anyio.to_thread.run_sync(store.put, job.key, generated.path, meta)
        journal.clear()
    return Outcome(entry, generated, time.perf_counter() - started)


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
