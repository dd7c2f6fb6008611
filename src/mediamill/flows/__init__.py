"""Prefect flows and tasks: the orchestration layer, and the only code that knows Prefect.

``produce`` reads as its stages, each a plain function of its package: open
the run, record what the store has, run the lanes (one Prefect task run per
batch of rows, usually one row, named after it), write the results, stitch,
deliver, summarise, publish the artifacts, and end in a state that says what
happened. ``sweep`` produces an inbox's new or changed manifests, each as its
own flow run: a child run of the ``produce`` deployment on the pool it needs
when the fleet's server has one (``fanout``), else a subflow in its own
process, a bounded number at a time. Server-side limits (``limits``) and the
UI's artifacts (``publish``) are Prefect's too, so they live beside the flows.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import functools
import os
import shutil
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
from prefect import flow, get_run_logger, task
from prefect.artifacts import acreate_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import Cancelled, Completed, Failed

from ..assemble import BookOutputs, stitch_book
from ..backends import Job
from ..config import RetryPolicy, settings
from ..core import progress
from ..core.files import write_json_atomic
from ..core.ids import slug
from ..core.processes import end_when_orphaned
from ..deliver import Delivery, deliver
from ..generate import (
    ProductionRun,
    RowOutcome,
    ShardLog,
    ShardReader,
    Turn,
    Verification,
    batch_label,
    make_batches,
    open_run,
    own_groups,
    run_batch,
    run_lanes,
    shard_folder,
    shard_gone,
    unchecked,
    verification_for,
)
from ..inbox import find_manifests, mark_produced, needed
from ..manifest import ManifestError
from ..plan import Plan
from ..report import RowResult, production_summary, write_results
from ..store import Entry, Store
from ..verify.takes import TakeCheck
from .fanout import Child, ParentCancelled, deployment_exists, hand_out, pool_workers
from .limits import open_slots, server_configured
from .publish import Progress, publish

__all__ = ["deliver_task", "generate_rows", "produce", "produce_rows", "stitch", "sweep"]


@task(name="rows", task_run_name="{label}", cache_policy=NO_CACHE, persist_result=False)
async def generate_rows(
    label: str,
    groups: list[list[Job]],
    outputs: str,
    policy: RetryPolicy,
    on_done: Callable[[RowOutcome], Awaitable[None]],
    verification: Verification | None = None,
    turn: Turn | None = None,
) -> Any:
    """One batch of rows (usually one row): failed rows fail the task run, with their ids in its message.

    In its lane's ``turn``: the lane's next batch starts once this one's rows have generated."""
    outcomes = await run_batch(groups, Store(Path(outputs)), policy, get_run_logger(), on_done, verification, turn)
    failed = [o for o in outcomes if not o.ok]
    if failed:
        detail = "; ".join(f"{o.jobs[0].id}: {o.error}" for o in failed[:3])
        return Failed(message=f"{len(failed)} of {len(outcomes)} rows failed: {detail}", data=outcomes)
    return outcomes


@task(name="verify", task_run_name="verify:{label}", cache_policy=NO_CACHE, persist_result=False)
async def verify_take(label: str, check: Callable[[], Awaitable[TakeCheck]]) -> TakeCheck:
    """One take checked by ear against its row's text (its own task run, so each retake shows as one)."""
    result = await check()
    if result.judged and not result.passed:
        get_run_logger().warning("%s does not say its text: %s", label, result.reason)
    return result


def _verification(cfg: Any) -> Verification | None:
    """The run's verification, each check run as a ``verify`` task run."""
    plain = verification_for(cfg)
    if plain is None:
        return None

    async def as_task(job: Job, audio: Path) -> TakeCheck:
        label = f"{job.kind}:{job.id}" + (f" take {job.take + 1}" if job.take else "")
        return await verify_take(label, lambda: plain.check(job, audio))

    return dataclasses.replace(plain, check=as_task)


@task(name="stitch", task_run_name="stitch:{name}", cache_policy=NO_CACHE, persist_result=False)
async def stitch(name: str, plan: Plan, entries: dict[str, Entry], out_dir: Path, scratch: Path) -> BookOutputs:
    return await anyio.to_thread.run_sync(stitch_book, plan, entries, out_dir, scratch)


@task(name="deliver", task_run_name="deliver:{name}", cache_policy=NO_CACHE, persist_result=False)
async def deliver_task(
    name: str,
    plan: Plan,
    book: BookOutputs,
    entries: dict[str, Entry],
    out_dir: Path,
    scratch: Path,
    profiles: list[str] | None,
) -> list[Delivery]:
    return await anyio.to_thread.run_sync(deliver, plan, book, entries, out_dir, scratch, profiles)


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


async def _run_rows(
    run: ProductionRun,
    waiting: list[list[Job]],
    bar: Progress,
    verification: Verification | None,
    on_results: Callable[[list[RowResult]], None] | None = None,
) -> tuple[bool, dict[str, Any]]:
    """Generate what the store lacks, under each backend's limit; ``on_results`` sees each outcome's rows.

    Returns whether the run was cancelled in Prefect, and what each backend's slots cost (for the summary).
    """
    logger = get_run_logger()
    cfg = settings()
    engines = run.plan.backends()
    slots = await open_slots(
        {name: engines[name] for name in {j[0].backend for j in waiting}}, cfg.concurrency, cfg.limits
    )
    for limit in slots.values():
        logger.info("limit %s", limit.describe())
    sizes = {name: cfg.batch_rows.get(name, engine.batch_rows) for name, engine in engines.items()}
    batches = make_batches(waiting, sizes, {name: s.limit for name, s in slots.items()})

    async def record(outcome: RowOutcome) -> None:
        results = run.record(outcome)
        if on_results is not None:
            on_results(results)
        for result in results:
            progress.emit("row", result=result)
            await bar.advance()

    async def fail_unreached(groups: list[list[Job]], message: str) -> None:
        for outcome in run.unreached(groups, message):
            await record(outcome)

    async def as_task(groups: list[list[Job]], turn: Turn) -> str | None:
        policy = cfg.retry_policy(groups[0][0].backend)
        state = await generate_rows(  # type: ignore[misc]  # prefect types it State; it is a coroutine
            batch_label(groups), groups, str(run.root), policy, record, verification, turn, return_state=True
        )
        return None if state.is_completed() else (state.message or "the task did not finish")

    rows = asyncio.ensure_future(run_lanes(batches, slots, as_task, fail_unreached, logger))
    cancel_requested = asyncio.Event()
    watcher = asyncio.create_task(_cancel_when_requested(rows, cfg.cancel_check_s, cancel_requested))
    _in_use.update((asyncio.get_running_loop(), name) for name in engines)
    try:
        await rows
    except asyncio.CancelledError:
        if not cancel_requested.is_set():
            raise  # cancelled from outside (Ctrl-C, SIGTERM): let it propagate
    finally:
        watcher.cancel()
        for limit in slots.values():
            await limit.close()  # server slots go back now, not when their leases end
        await _let_go(engines)
    return cancel_requested.is_set(), {name: limit.usage() for name, limit in sorted(slots.items())}


# Runs using each engine in each event loop: a sweep runs several manifests at once in one loop, and an engine's
# HTTP clients belong to the loop, so they are closed when the last run using them there ends.
_in_use: collections.Counter[tuple[asyncio.AbstractEventLoop, str]] = collections.Counter()


async def _let_go(engines: dict[str, Any]) -> None:
    loop = asyncio.get_running_loop()
    for name, engine in engines.items():
        _in_use[(loop, name)] -= 1
        if _in_use[(loop, name)] <= 0:
            del _in_use[(loop, name)]
            await engine.close()


def _final_state(
    run: ProductionRun, summary: dict[str, Any], book: BookOutputs, undelivered: list[str], profiles: list[str] | None
) -> Any:
    if summary["failed"]:
        message = f"{summary['failed']} of {summary['rows']} rows failed"
        if book.incomplete:
            message += f"; chapters not stitched: {', '.join(book.incomplete)}"
        return Failed(message=message, data=summary)
    if undelivered:
        # Every file stays where it is; the report says what to fix.
        return Failed(message=f"delivery failed: {'; '.join(undelivered[:5])}", data=summary)
    mark_produced(run.root, run.plan, profiles)  # what a sweep compares with, next time
    return Completed(message=f"{summary['rows']} rows produced", data=summary)


_watching_worker = False
# A sweep in this process waits for the produce run it is starting to begin (one starts at a time).
_begun: collections.deque[asyncio.Event] = collections.deque()


def _end_with_worker() -> None:
    """A flow run that a worker started ends when the worker dies (a preempted or OOM-killed machine).

    Losing the worker's pipes ends it only if it writes to them; a run waiting for fleet slots writes
    nothing. SIGTERM ends it as a stopped run ends; what Prefect does not record, ``_record_crashed`` does."""
    global _watching_worker
    run_id = os.environ.get("PREFECT__FLOW_RUN_ID")
    if run_id and not _watching_worker:
        _watching_worker = True
        end_when_orphaned(last_words=functools.partial(_record_crashed, run_id))


def _record_crashed(run_id: str) -> None:
    """Tell the server that this orphaned run is ending without its own report (else it stays Running)."""
    from prefect.client.orchestration import get_client
    from prefect.states import Crashed

    flow_run_id = uuid.UUID(run_id)
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(flow_run_id).state
        if state is not None and state.is_final():  # it did report its end (or someone ended it)
            return
        message = "its worker died, and it did not end on its own: stopped"
        client.set_flow_run_state(flow_run_id, Crashed(message=message), force=True)


@flow(name="produce", log_prints=False)
async def produce(
    manifest: str,
    backend: str | None = None,
    outputs: str | None = None,
    profiles: list[str] | None = None,
    shards: int | None = None,
) -> Any:
    """Produce everything a manifest describes; rows already in the store are not generated again.

    On a fleet, a big manifest's rows are first spread over the pool: ``shards`` child runs of the
    ``produce-rows`` deployment (by default, for a run of a deployment, as many as the pool has online
    workers when at least ``MEDIAMILL_FLEET_ROWS`` rows each are to generate; 1 keeps every row here). This run then makes what
    they left (a shard whose machine died), stitches, delivers and writes the one results table."""
    _end_with_worker()
    if _begun:
        _begun.popleft().set()  # a sweep in this process may start its next manifest's run
    logger = get_run_logger()
    started = time.perf_counter()
    try:
        run = open_run(manifest, backend, outputs)
    except ManifestError as exc:
        logger.error("%s", exc)  # the problems are the message; a traceback would bury them
        return Failed(message=str(exc))
    plan, key_prefix = run.plan, slug(run.name)

    verification = _verification(settings())
    waiting = run.record_stored(functools.partial(unchecked, verification))
    logger.info(
        "%s: %d rows, %d in the store, %d to generate", plan.name, len(plan.jobs), len(run.results), len(waiting)
    )
    progress.emit("planned", name=plan.name, total=len(plan.jobs), cached=len(run.results))
    bar = Progress(f"{key_prefix}-progress", len(plan.jobs), len(run.results))
    await bar.start()

    planned = time.perf_counter()
    cancelled, limits = False, dict[str, Any]()
    spread, deployment = await _shards_for(run, waiting, shards)
    if spread > 1:
        try:
            waiting = await _spread(run, manifest, backend, waiting, spread, deployment, bar)
        except ParentCancelled:
            cancelled = True
    if not cancelled:
        cancelled, limits = await _run_rows(run, waiting, bar, verification)
    generated = time.perf_counter()

    ordered = run.ordered()
    write_results(run.out_dir, ordered)
    if cancelled:
        logger.warning("%s: cancelled; in-flight hosted tasks were stopped", plan.name)
        return Cancelled(
            message=f"cancelled with {sum(r.status != 'failed' for r in ordered)} of {len(ordered)} rows done"
        )

    book = await stitch(plan.name, plan, run.entries, run.out_dir, run.store.tmp)
    stitched = time.perf_counter()
    deliveries: list[Delivery] = []
    dry_run = all(engine.dry_run for engine in plan.backends().values())
    # A delivery from a partial production would mislead; a dry run has nothing to master.
    if not dry_run and not any(r.status == "failed" for r in ordered):
        deliveries = await deliver_task(plan.name, plan, book, run.entries, run.out_dir, run.store.tmp, profiles)
    undelivered = [f"{d.profile}: {failure}" for d in deliveries for failure in d.failures()]

    phases = {
        "plan": planned - started,
        "generate": generated - planned,
        "stitch": stitched - generated,
        "deliver": time.perf_counter() - stitched,
    }
    summary = production_summary(
        plan.name,
        ordered,
        time.perf_counter() - started,
        run.out_dir,
        book.m4b,
        book.chapters,
        phases,
        {d.profile: d.ok for d in deliveries},
        undelivered,
        limits,
    )
    await publish(key_prefix, plan.name, ordered, summary, run.out_dir / "qc.json" if deliveries else None)
    write_json_atomic(run.out_dir / "summary.json", summary)
    progress.emit("finished", summary=summary)
    return _final_state(run, summary, book, undelivered, profiles)


# The deployments a big manifest's rows are spread over, by the hardware its engines want (prefect.yaml).
ROWS_DEPLOYMENTS = {"cpu": "produce-rows/produce-rows", "gpu": "produce-rows/produce-rows-gpu"}


async def _shards_for(run: ProductionRun, waiting: list[list[Job]], asked: int | None) -> tuple[int, str]:
    """How many shard runs to spread the rows to generate over, and their deployment (1: none, all here)."""
    keys = len(waiting)
    per = settings().fleet_rows
    if keys < 2 or (asked is not None and asked <= 1) or (asked is None and keys < 2 * per):
        return 1, ""
    here = _this_run()
    if asked is None and (here is None or here.deployment_id is None):
        # Unasked, only a run that a worker took spreads: its children run where it runs, configured alike.
        # A command line's environment (keys, emulators, settings) may not be the workers'.
        return 1, ""
    logger = get_run_logger()
    if not server_configured():
        if asked:
            logger.warning("shards=%d: no fleet server (PREFECT_API_URL) to spread rows over; producing here", asked)
        return 1, ""
    deployment = ROWS_DEPLOYMENTS[run.plan.hardware()]
    if not await deployment_exists(deployment):
        logger.warning("no deployment %s on the server (prefect deploy --all): producing here", deployment)
        return 1, ""
    if asked:
        return min(asked, keys), deployment
    pool, workers = await pool_workers(deployment)
    if here is not None and here.work_pool_name == pool:
        workers -= 1  # this run holds one of them while it waits
    return max(1, min(keys // per, workers)), deployment


async def _spread(
    run: ProductionRun,
    manifest: str,
    backend: str | None,
    waiting: list[list[Job]],
    shards: int,
    deployment: str,
    bar: Progress,
) -> list[list[Job]]:
    """Hand the rows to generate to ``shards`` child runs of ``deployment``; the rows none of them finished."""
    logger = get_run_logger()
    here = _this_run()
    parent = str(here.id if here is not None else uuid.uuid4())
    folder = shard_folder(run.out_dir, parent)
    already = len(run.results)
    # Absolute paths: the children run in the workers' folders, on the storage every machine mounts.
    parameters = {"manifest": str(Path(manifest).resolve()), "backend": backend, "outputs": str(run.root.resolve())}
    children = [
        Child(
            key=f"rows-{k}",
            deployment=deployment,
            name=f"produce:{run.name}:rows-{k + 1}-of-{shards}",
            parameters={**parameters, "shard": k, "shards": shards, "parent": parent},
        )
        for k in range(shards)
    ]

    finished = ShardReader(folder)

    async def show_progress() -> None:
        await bar.reach(already + len(finished.read()))

    logger.info("%s: %d rows spread over %d runs of %s", run.name, sum(map(len, waiting)), shards, deployment)

    def gone(child: Child) -> bool:
        return shard_gone(folder, child.parameters["shard"])

    try:
        ends = await hand_out(children, shards, CHILD_POLL_S, show_progress, gone)
    finally:
        left = run.adopt(waiting, finished.read())  # what they made counts even if this run stops now
    for end in ends:
        if end.state != "COMPLETED":
            logger.warning("%s ended %s: %s", end.child.name, end.state.lower(), _brief(end.message) or "-")
    shutil.rmtree(folder, ignore_errors=True)
    with contextlib.suppress(OSError):  # another production's shards may still be writing there
        folder.parent.rmdir()
    if left:
        logger.info("%s: %d rows the shards did not finish; generating them here", run.name, sum(map(len, left)))
    await bar.reach(len(run.results))
    return left


def _this_run() -> Any:
    """This flow run as Prefect has it (its deployment and pool, when a worker runs it), else None."""
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    return context.flow_run if context is not None else None


@flow(name="produce-rows", log_prints=False)
async def produce_rows(
    manifest: str,
    shard: int,
    shards: int,
    parent: str,
    backend: str | None = None,
    outputs: str | None = None,
) -> Any:
    """One share of a big manifest's rows (shard ``shard`` of ``shards``) for the ``produce`` run ``parent``.

    Generates its rows into the store, under the same limits as any run, and notes each row's result where the
    parent reads it; the parent stitches, delivers and writes the results table. Rows another run holds are
    left to it (claims), so a retried or duplicated shard generates nothing twice."""
    _end_with_worker()
    logger = get_run_logger()
    try:
        run = open_run(manifest, backend, outputs)
    except ManifestError as exc:
        logger.error("%s", exc)
        return Failed(message=str(exc))
    verification = _verification(settings())
    mine = own_groups(run.plan.jobs, run.record_stored(functools.partial(unchecked, verification)), shard, shards)
    rows = sum(map(len, mine))
    logger.info("%s: rows %d of %d, %d to generate", run.name, shard + 1, shards, rows)
    bar = Progress(f"{slug(run.name)}-rows-{shard + 1}-progress", rows, 0)
    await bar.start()
    with ShardLog(shard_folder(run.out_dir, parent), shard) as notes:

        def note(results: list[RowResult]) -> None:
            # Rows tried only: one never reached (this run stopped first) is left for the parent to make.
            notes.add([r for r in results if r.status != "failed" or r.attempts > 0])

        cancelled, _ = await _run_rows(run, mine, bar, verification, note)
    ended = [run.results.get(job.id) for group in mine for job in group]
    failed = sum(1 for r in ended if r is not None and r.status == "failed")
    if cancelled:
        done = sum(1 for r in ended if r is not None and r.status != "failed")
        return Cancelled(message=f"cancelled with {done} of {rows} rows done")
    if failed:
        return Failed(message=f"{failed} of {rows} rows failed")
    return Completed(message=f"{rows} rows generated")


async def _fleet_has(deployment: str) -> bool:
    """Whether this sweep talks to a fleet's Prefect server that has ``deployment`` (else it produces here)."""
    if not server_configured():
        return False
    if await deployment_exists(deployment):
        return True
    get_run_logger().warning("no deployment %s on the server (prefect deploy --all): producing here", deployment)
    return False


async def _produce_here(
    paths: list[Path], in_flight: int, backend: str | None, root: Path, profiles: list[str] | None
) -> dict[Path, tuple[str, str]]:
    """Each manifest as a subflow of this run, ``in_flight`` at once; engine limits hold across them.

    Subflows start one after another, each once the one before has begun: on SQLite (a temporary API), runs
    created at the same moment collide, and Prefect's client answers each collision with seconds of back-off."""
    room, starting = asyncio.Semaphore(in_flight), asyncio.Lock()

    async def one(path: Path) -> tuple[Path, tuple[str, str]]:
        async with room:
            async with starting:
                begun = asyncio.Event()
                _begun.append(begun)
                run = produce.with_options(flow_run_name=f"produce:{path.stem}")
                started = asyncio.ensure_future(
                    run(manifest=str(path), backend=backend, outputs=str(root), profiles=profiles, return_state=True)
                )
                waiting = asyncio.ensure_future(begun.wait())
                try:
                    await asyncio.wait([started, waiting], return_when=asyncio.FIRST_COMPLETED)
                except asyncio.CancelledError:
                    started.cancel()  # the sweep is stopping (Ctrl-C): so does the run it was starting
                    raise
                finally:
                    waiting.cancel()
                    if not begun.is_set():
                        _begun.remove(begun)
            state = await started  # cancelled with the sweep
        return path, (state.type.value, state.message or "")

    return dict(await asyncio.gather(*(one(path) for path in paths)))


def _brief(message: str, most: int = 3) -> str:
    """A flow run's message on one line: a manifest's problems rather than its heading."""
    lines = [line.strip().lstrip("- ") for line in message.splitlines() if line.strip()]
    if len(lines) > 1:  # "<path>: N problems" then one line each
        lines = lines[1 : 1 + most] + ([f"and {len(lines) - 1 - most} more"] if len(lines) - 1 > most else [])
    return "; ".join(lines).replace("|", "/")


# The deployments a sweep hands manifests to, by the hardware their engines want (prefect.yaml).
PRODUCE_DEPLOYMENTS = {"cpu": "produce/produce", "gpu": "produce/produce-gpu"}
CHILD_POLL_S = 2.0  # how often a sweep reads its children's states (one call for all of them)


@flow(name="sweep", log_prints=False)
async def sweep(
    inbox: str = "inbox",
    backend: str | None = None,
    outputs: str | None = None,
    profiles: list[str] | None = None,
    deployments: dict[str, str] | None = None,
) -> Any:
    """Produce every manifest under ``inbox`` that is new or changed, each as its own flow run.

    On a fleet (a Prefect server with the ``produce`` deployments), each is a child run of the deployment
    for the hardware its engines want (``deployments`` overrides :data:`PRODUCE_DEPLOYMENTS`), which any
    worker of that pool takes as it has room; elsewhere, a subflow in this process. Either way at most
    ``MEDIAMILL_SWEEP_IN_FLIGHT`` at once, the rest waiting their turn. One manifest failing (bad input,
    failed rows, failed delivery) does not stop the others; the sweep fails afterwards, naming each
    failed manifest. Cancelling the sweep cancels its children.
    """
    _end_with_worker()
    logger = get_run_logger()
    root = Path(outputs) if outputs else settings().outputs
    folder = Path(inbox)
    if not folder.is_dir():
        return Failed(message=f"inbox {folder} is not a folder")
    manifests = await anyio.to_thread.run_sync(find_manifests, folder)
    # Each manifest's hardware if it is due (new or changed), else None: one validation of each.
    needs = {m: await anyio.to_thread.run_sync(needed, m, root, backend, profiles) for m in manifests}
    due = [m for m in manifests if needs[m] is not None]
    logger.info("%s: %d manifests, %d new or changed", folder, len(manifests), len(due))

    by_name: dict[str, list[Path]] = {}
    for path in manifests:  # all of them: an unchanged namesake's outputs are at stake too
        by_name.setdefault(path.stem, []).append(path)
    ended: dict[Path, tuple[str, str]] = {}  # manifest: its run's final state's name, and message
    todo = []
    for path in due:
        if len(by_name[path.stem]) > 1:  # they would write into the same output folder
            others = ", ".join(str(p) for p in by_name[path.stem] if p != path)
            ended[path] = ("FAILED", f"another manifest has the same name ({others}); rename one")
        else:
            todo.append(path)
    in_flight = settings().sweep_in_flight
    targets = {**PRODUCE_DEPLOYMENTS, **(deployments or {})}
    if todo and await _fleet_has(targets["cpu"]):
        children = [
            Child(
                key=str(path),
                deployment=targets.get(needs[path] or "cpu", targets["cpu"]),
                name=f"produce:{path.stem}",
                parameters={"manifest": str(path), "backend": backend, "outputs": str(root), "profiles": profiles},
            )
            for path in todo
        ]
        logger.info("handing %d manifests to the pools' workers, %d at a time", len(children), in_flight)
        try:
            ends = await hand_out(children, in_flight, CHILD_POLL_S)
        except ParentCancelled as exc:  # asked in the UI or API; the unfinished children were cancelled
            logger.warning("sweep cancelled: %s were cancelled with it", exc)
            return Cancelled(message=f"cancelled; {exc} were cancelled with it")
        for end in ends:
            ended[Path(end.child.key)] = (end.state, end.message)
    elif todo:
        ended.update(await _produce_here(todo, in_flight, backend, root, profiles))
    outcomes = [(path, *ended[path]) for path in due]

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
