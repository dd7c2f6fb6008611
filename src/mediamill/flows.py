"""Prefect flows and tasks: the orchestration layer, and nothing else.

``produce`` loads and plans a manifest, fans the rows that the store lacks
out as Prefect task runs (one per distinct content key, named after the row;
a batch of rows for engines too quick to be worth a task run each), stitches
and delivers the book and writes the results table and artifacts. Batches run
concurrently on the flow's event loop, each holding a slot of its backend's
limit (``limits``). ``sweep`` produces an inbox's new or changed manifests,
each as its own subflow run.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import anyio
from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    acreate_markdown_artifact,
    acreate_progress_artifact,
    acreate_table_artifact,
    aupdate_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.states import Cancelled, Completed, Failed

from . import progress
from .backends import Job
from .book import BookOutputs, slug, stitch_book
from .config import RetryPolicy, settings
from .delivery import Delivery, deliver
from .generate import link_output
from .inbox import find_manifests, is_due, mark_produced
from .limits import TURN_S, SlotUnavailable, open_slots
from .manifest import ManifestError
from .plan import Plan, validate
from .qc import qc_markdown
from .results import RowResult, summarise, summary_markdown, write_results
from .rows import RowOutcome, make_batches, run_batch
from .store import Entry, Store, write_json_atomic


@task(name="rows", task_run_name="{label}", cache_policy=NO_CACHE, persist_result=False)
async def generate_rows(label: str, groups: list[list[Job]], outputs: str, policy: RetryPolicy,
                        on_done: Callable[[RowOutcome], Awaitable[None]]) -> Any:  # fmt: skip
    """One batch of rows (usually one row): failed rows fail the task run, with their ids in its message."""
    outcomes = await run_batch(groups, Store(Path(outputs)), policy, get_run_logger(), on_done)
    failed = [o for o in outcomes if not o.ok]
    if failed:
        detail = "; ".join(f"{o.jobs[0].id}: {o.error}" for o in failed[:3])
        return Failed(message=f"{len(failed)} of {len(outcomes)} rows failed: {detail}", data=outcomes)
    return outcomes


def batch_label(groups: list[list[Job]]) -> str:
    first, last = groups[0][0], groups[-1][0]
    if len(groups) == 1:
        return f"{first.kind}:{first.id}"
    return f"{first.kind}:{first.id}..{last.id} ({len(groups)} rows)"


@task(name="stitch", task_run_name="stitch:{name}", cache_policy=NO_CACHE, persist_result=False)
async def stitch(name: str, plan: Plan, entries: dict[str, Entry], out_dir: Path, scratch: Path) -> BookOutputs:
    return await anyio.to_thread.run_sync(stitch_book, plan, entries, out_dir, scratch)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _result(job: Job, status: str, **fields: Any) -> RowResult:
    base: dict[str, Any] = dict(
        id=job.id, row=job.row_number, kind=job.kind, chapter=job.row.chapter, backend=job.backend,
        model=job.spec.model, status=status, attempts=0, error=None, output=None, audio_s=None,
        sample_rate=None, elapsed_s=0.0, compute_s=None, queue_s=None, cost_usd=None,
        cost_source=None, task_id=None, key=job.key, created_at=_now(),
    )  # fmt: skip
    base.update(fields)
    return RowResult(**base)


def _stored_result(job: Job, entry: Entry, status: str, output: Path, attempts: int, elapsed: float) -> RowResult:
    m = entry.meta
    fresh = status == "done"
    return _result(
        job, status,
        attempts=attempts, output=output.as_posix(), audio_s=m.get("duration_s"), sample_rate=m.get("sample_rate"),
        elapsed_s=round(elapsed, 3),
        # A cached row cost nothing in this run; its origin stays traceable by task_id and key.
        compute_s=m.get("compute_s") if fresh else 0.0,
        queue_s=m.get("queue_s") if fresh else None,
        cost_usd=m.get("cost_usd") if fresh else 0.0,
        cost_source=m.get("cost_source") if fresh else "cached",
        task_id=m.get("task_id"),
        created_at=m.get("created_at") or _now(),
        takes=m.get("attempts_inside") if fresh else 0,
        pieces=m.get("pieces"),
        device=m.get("device"),
        warnings=m.get("warnings"),
        qc=m.get("qc"),
    )  # fmt: skip


class _Progress:
    """The Prefect progress artifact, updated at most every couple of seconds."""

    def __init__(self, key: str, total: int, done: int):
        self.total, self.done, self.last = max(total, 1), done, 0.0
        self.id: Any = None
        self.key = key

    async def start(self) -> None:
        self.id = await acreate_progress_artifact(progress=self.percent, key=self.key, description="rows finished")

    @property
    def percent(self) -> float:
        return round(100.0 * self.done / self.total, 1)

    async def advance(self) -> None:
        self.done += 1
        now = time.monotonic()
        if now - self.last > 2.0 or self.done >= self.total:
            self.last = now
            await aupdate_progress_artifact(artifact_id=self.id, progress=self.percent)


async def _cancel_when_requested(rows: asyncio.Future, every_s: float, requested: asyncio.Event) -> None:
    """Cancel the rows when the flow run is asked to cancel (Prefect UI, API or CLI).

    Runs started by a worker are also stopped by the worker; a run started by
    ``mediamill run`` has no supervisor, so the flow watches its own state.
    Sets ``requested`` before it cancels the rows.
    """
    from prefect.client.orchestration import get_client
    from prefect.runtime import flow_run

    run_id = flow_run.id
    if not run_id:
        return
    async with get_client() as client:
        while not rows.done():
            await asyncio.sleep(every_s)
            try:
                state = (await client.read_flow_run(run_id)).state
            except Exception:  # noqa: BLE001 - an unreachable API must not stop the work
                continue
            if state is not None and (state.is_cancelling() or state.is_cancelled()):
                requested.set()
                rows.cancel()
                return


@task(name="deliver", task_run_name="deliver:{name}", cache_policy=NO_CACHE, persist_result=False)
async def deliver_task(name: str, plan: Plan, book: BookOutputs, entries: dict[str, Entry], out_dir: Path,
                       scratch: Path, profiles: list[str] | None) -> list[Delivery]:  # fmt: skip
    return await anyio.to_thread.run_sync(deliver, plan, book, entries, out_dir, scratch, profiles)


@flow(name="produce", log_prints=False)
async def produce(
    manifest: str, backend: str | None = None, outputs: str | None = None, profiles: list[str] | None = None
) -> Any:
    """Produce everything a manifest describes; rows already in the store are not generated again."""
    logger = get_run_logger()
    cfg = settings()
    started = time.perf_counter()
    root = Path(outputs) if outputs else cfg.outputs
    try:
        plan = validate(manifest, backend)
    except ManifestError as exc:
        logger.error("%s", exc)  # the problems are the message; a traceback would bury them
        return Failed(message=str(exc))
    store = Store(root)
    store.sweep_tmp()
    out_dir = root / plan.name
    segments = out_dir / "segments"
    key_prefix = slug(plan.name)

    results: dict[str, RowResult] = {}
    entries: dict[str, Entry] = {}
    waiting: dict[str, list[Job]] = {}  # key -> rows sharing it, generated once
    for job in plan.jobs:
        entry = store.get(job.key)
        if entry is not None:
            entries[job.key] = entry
            out = link_output(entry, segments / job.id).relative_to(out_dir)
            results[job.id] = _stored_result(job, entry, "cached", out, 0, 0.0)
        else:
            waiting.setdefault(job.key, []).append(job)
    logger.info(
        "%s: %d rows, %d in the store, %d to generate", plan.name, len(plan.jobs), len(results), len(waiting)
    )
    progress.emit("planned", name=plan.name, total=len(plan.jobs), cached=len(results))
    bar = _Progress(f"{key_prefix}-progress", len(plan.jobs), len(results))
    await bar.start()

    engines = plan.backends()
    slots = await open_slots({name: engines[name] for name in {j[0].backend for j in waiting.values()}},
                             cfg.concurrency, cfg.limits)  # fmt: skip
    for limit in slots.values():
        logger.info("limit %s", limit.describe())
    sizes = {name: cfg.batch_rows.get(name, engine.batch_rows) for name, engine in engines.items()}
    batches = make_batches(list(waiting.values()), sizes, {name: s.limit for name, s in slots.items()})

    async def record(outcome: RowOutcome) -> None:
        first = outcome.jobs[0]
        if outcome.entry is not None:
            entries[first.key] = outcome.entry
            for job in outcome.jobs:
                out = link_output(outcome.entry, segments / job.id).relative_to(out_dir)
                fresh = outcome.fresh and job is first
                attempts = outcome.attempts if fresh else 0
                results[job.id] = _stored_result(job, outcome.entry, "done" if fresh else "cached", out, attempts,
                                                 outcome.elapsed_s)  # fmt: skip
        else:
            for job in outcome.jobs:
                results[job.id] = _result(job, "failed", attempts=outcome.attempts, error=outcome.error)
        for job in outcome.jobs:
            progress.emit("row", result=results[job.id])
            await bar.advance()

    async def fail_unreached(groups: list[list[Job]], message: str) -> None:
        for jobs in groups:  # rows the task never reached (no slot, crashed, cancelled)
            if jobs[0].id not in results:
                await record(RowOutcome(jobs, attempts=0, error=message))

    async def lane(backend: str, queue: deque[list[list[Job]]]) -> None:
        """One slot of a backend: runs its batches while there are any.

        The slot is given back after each turn of ``TURN_S`` so other runs get
        theirs; asking the server for a slot per batch would cost a round trip
        each (up to seconds on a busy SQLite server, measured).
        """
        while queue:
            try:
                async with slots[backend].hold():
                    turn_ends = time.monotonic() + TURN_S
                    while queue and time.monotonic() < turn_ends:
                        groups = queue.popleft()
                        state = await generate_rows(batch_label(groups), groups, str(root), cfg.retry_policy(backend),
                                                    record, return_state=True)  # fmt: skip
                        if not state.is_completed():
                            await fail_unreached(groups, state.message or "the task did not finish")
            except SlotUnavailable as exc:
                logger.error("%s", exc)
                while queue:  # the server cannot be reached: the rest of this backend's rows wait for a rerun
                    await fail_unreached(queue.popleft(), str(exc))

    queues: dict[str, deque[list[list[Job]]]] = {}
    for groups in batches:
        queues.setdefault(groups[0][0].backend, deque()).append(groups)
    # At least one lane: a server limit of 0 (an operator's pause) then waits for a slot, as Prefect does.
    lanes = [lane(name, q) for name, q in queues.items() for _ in range(max(1, min(slots[name].limit, len(q))))]
    planned = time.perf_counter()
    rows = asyncio.ensure_future(asyncio.gather(*lanes))
    cancel_requested = asyncio.Event()
    watcher = asyncio.create_task(_cancel_when_requested(rows, cfg.cancel_check_s, cancel_requested))
    try:
        await rows
    except asyncio.CancelledError:
        if not cancel_requested.is_set():
            raise  # cancelled from outside (Ctrl-C, SIGTERM): let it propagate
    finally:
        watcher.cancel()
        for engine in engines.values():
            await engine.close()  # HTTP clients belong to this run's event loop
    cancelled = cancel_requested.is_set()
    generated = time.perf_counter()

    ordered = [results.get(j.id) or _result(j, "failed", error="cancelled before it finished") for j in plan.jobs]
    write_results(out_dir, ordered)
    if cancelled:
        logger.warning("%s: cancelled; in-flight hosted tasks were stopped", plan.name)
        return Cancelled(message=f"cancelled with {sum(r.status != 'failed' for r in ordered)} of {len(ordered)} rows done")
    book = await stitch(plan.name, plan, entries, out_dir, store.tmp)
    stitched = time.perf_counter()
    deliveries: list[Delivery] = []
    dry_run = all(engine.dry_run for engine in plan.backends().values())
    # A delivery from a partial production would mislead; a dry run has nothing to master.
    if not dry_run and not any(r.status == "failed" for r in ordered):
        deliveries = await deliver_task(plan.name, plan, book, entries, out_dir, store.tmp, profiles)
    undelivered = [f"{d.profile}: {failure}" for d in deliveries for failure in d.failures()]
    wall = time.perf_counter() - started
    summary = summarise([r.__dict__ for r in ordered], wall_s=wall)
    summary.update(
        name=plan.name,
        outputs=str(out_dir),
        m4b=str(book.m4b) if book.m4b else None,
        chapters=[str(p) for p in book.chapters],
        phases_s={
            "plan": round(planned - started, 3),
            "generate": round(generated - planned, 3),
            "stitch": round(stitched - generated, 3),
            "deliver": round(time.perf_counter() - stitched, 3),
        },
        qc={d.profile: d.ok for d in deliveries},
        undelivered=undelivered,
    )
    await acreate_table_artifact(
        key=f"{key_prefix}-results",
        table=[
            {k: getattr(r, k) for k in ("id", "kind", "backend", "status", "attempts", "audio_s", "cost_usd", "error")}
            for r in ordered
        ],
        description=f"Rows of {plan.name}",
    )
    await acreate_markdown_artifact(key=f"{key_prefix}-summary", markdown=summary_markdown(plan.name, summary))
    if deliveries:
        qc_doc = json.loads((out_dir / "qc.json").read_text())
        await acreate_markdown_artifact(key=f"{key_prefix}-qc", markdown=qc_markdown(qc_doc, images=False))
    write_json_atomic(out_dir / "summary.json", summary)
    progress.emit("finished", summary=summary)
    if summary["failed"]:
        message = f"{summary['failed']} of {summary['rows']} rows failed"
        if book.incomplete:
            message += f"; chapters not stitched: {', '.join(book.incomplete)}"
        return Failed(message=message, data=summary)
    if undelivered:
        # Every file stays where it is; the report says what to fix.
        return Failed(message=f"delivery failed: {'; '.join(undelivered[:5])}", data=summary)
    mark_produced(root, plan, profiles)  # what a sweep compares with, next time
    return Completed(message=f"{summary['rows']} rows produced", data=summary)


def _brief(message: str, most: int = 3) -> str:
    """A flow run's message on one line: a manifest's problems rather than its heading."""
    lines = [line.strip().lstrip("- ") for line in message.splitlines() if line.strip()]
    if len(lines) > 1:  # "<path>: N problems" then one line each
        lines = lines[1 : 1 + most] + ([f"and {len(lines) - 1 - most} more"] if len(lines) - 1 > most else [])
    return "; ".join(lines).replace("|", "/")


@flow(name="sweep", log_prints=False)
async def sweep(
    inbox: str = "inbox", backend: str | None = None, outputs: str | None = None, profiles: list[str] | None = None
) -> Any:
    """Produce every manifest under ``inbox`` that is new or changed, each as its own subflow run.

    One manifest failing (bad input, failed rows, failed delivery) does not stop
    the others; the sweep fails afterwards, naming each failed manifest.
    """
    logger = get_run_logger()
    root = Path(outputs) if outputs else settings().outputs
    folder = Path(inbox)
    if not folder.is_dir():
        return Failed(message=f"inbox {folder} is not a folder")
    manifests = await anyio.to_thread.run_sync(find_manifests, folder)
    due = [m for m in manifests if await anyio.to_thread.run_sync(is_due, m, root, backend, profiles)]
    logger.info("%s: %d manifests, %d new or changed", folder, len(manifests), len(due))

    by_name: dict[str, list[Path]] = {}
    for path in manifests:  # all of them: an unchanged namesake's outputs are at stake too
        by_name.setdefault(path.stem, []).append(path)
    outcomes: list[tuple[Path, str, str]] = []  # manifest, state name, message
    for path in due:
        if len(by_name[path.stem]) > 1:  # they would write into the same output folder
            others = ", ".join(str(p) for p in by_name[path.stem] if p != path)
            outcomes.append((path, "FAILED", f"another manifest has the same name ({others}); rename one"))
            continue
        run = produce.with_options(flow_run_name=f"produce:{path.stem}")
        state = await run(manifest=str(path), backend=backend, outputs=str(root), profiles=profiles, return_state=True)
        outcomes.append((path, state.type.value, state.message or ""))

    failed = [(p, m) for p, kind, m in outcomes if kind != "COMPLETED"]
    lines = [f"# Sweep of {folder}", "", "| manifest | state | message |", "|---|---|---|"]
    lines += [f"| {p.relative_to(folder)} | {kind.lower()} | {_brief(m)} |" for p, kind, m in outcomes]
    if not outcomes:
        lines.append("| (nothing new or changed) | | |")
    await acreate_markdown_artifact(key="sweep-summary", markdown="\n".join(lines))
    if failed:
        names = "; ".join(f"{p.name}: {_brief(m) or 'failed'}" for p, m in failed)
        return Failed(message=f"{len(failed)} of {len(outcomes)} manifests failed: {names}")
    return Completed(message=f"{len(outcomes)} manifests produced, {len(manifests) - len(outcomes)} unchanged")
