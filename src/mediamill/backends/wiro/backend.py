"""The ``wiro`` backend: rows become Wiro tasks, submitted once, waited for, collected (see the package doc)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from pathlib import Path
from typing import Any

import anyio

from ...config import from_environment
from ...core.hashing import file_digest
from ...core.waits import backoff
from ...manifest import Row, SongRow, SpeechRow, VideoRow, is_url
from ...store import Journal
from ..base import Backend, CostEstimate, Generated, Job, JobSpec, PermanentError
from ..hosted import CreditBreaker, LoopClients, Uncertain, download, guess_suffix, lookup_price, priced, stopping
from . import tasks
from .client import ApiError, WiroClient, WiroError, WiroSettings
from .models import (
    ADAPTERS,
    MODEL_FOR_KIND,
    OVI_RESOLUTIONS,
    VOXCPM,
    ovi_inputs,
    unbalanced_tags,
    voxcpm_inputs,
    yue_inputs,
)
from .protocol import CANCELLED, CODE_BALANCE, CODE_CONCURRENCY, number, succeeded, text

__all__ = ["WiroBackend"]

log = logging.getLogger("mediamill.wiro")

STOP_WAIT_S = 25.0  # how long closing waits for cancelled rows' stops (each is bounded at 20 s)


class WiroBackend(Backend):
    name = "wiro"
    kinds = frozenset({"tts", "clone", "song", "video"})
    default_concurrency = 4
    limit_scope = "fleet"
    unused_columns = frozenset({"seed", "style", "voice"})  # for speech rows; songs and clips take seed
    speed_as_tempo = True  # Wiro's VoxCPM has no rate control; only speech rows have a speed

    def __init__(self) -> None:
        self.clients = LoopClients()
        self.breaker = CreditBreaker()
        self._uploaded: dict[str, str] = {}  # file digest -> Wiro URL, so a reference is uploaded once
        self._stops: set[asyncio.Future[None]] = set()  # stops of cancelled rows' tasks, still under way
        # Uploads under way, per event loop: rows sharing a reference wait for one upload.
        self._uploading: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Future[str]]] = (
            weakref.WeakKeyDictionary()
        )

    async def _upload(self, client: WiroClient, path: Path) -> str:
        digest = file_digest(path)
        if digest in self._uploaded:
            return self._uploaded[digest]
        pending = self._uploading.setdefault(asyncio.get_running_loop(), {})
        future = pending.get(digest)
        if future is None:
            future = pending[digest] = asyncio.ensure_future(client.upload(path))
            future.add_done_callback(lambda _: pending.pop(digest, None))
        url = await asyncio.shield(future)
        self._uploaded[digest] = url
        return url

    # -- checks and keys -----------------------------------------------------------------
    def check(self, row: Row, base_dir: Path) -> list[tuple[str | None, str]]:
        problems: list[tuple[str | None, str]] = []
        model = row.model or MODEL_FOR_KIND[row.kind]
        if model.lower() != MODEL_FOR_KIND[row.kind]:
            problems.append(("model", f"wiro makes {row.kind} rows with {MODEL_FOR_KIND[row.kind]}"))
        if isinstance(row, SpeechRow):
            problems += self.check_unused(row)
        if isinstance(row, VideoRow):
            if row.resolution and row.resolution not in OVI_RESOLUTIONS:
                problems.append(("resolution", f"must be one of {', '.join(OVI_RESOLUTIONS)}"))
            unbalanced = unbalanced_tags(row.prompt)
            if unbalanced:
                problems.append(("prompt", unbalanced + " (speech is <S>…<E>, sound captions <AUDCAP>…<ENDAUDCAP>)"))
        if row.options:
            problems.append(("options", "wiro takes no extra options"))
        return problems

    def estimate(self, texts: list[str], speech_s: float) -> CostEstimate:
        unknown = CostEstimate(
            self.name,
            None,
            "Wiro reports each task's cost after it runs; set MEDIAMILL_PRICES (key 'wiro') to estimate it",
        )
        return priced(self.name, lookup_price(self.name, VOXCPM, {}), len(texts), sum(map(len, texts)), unknown)

    def spec(self, row: Row, base_dir: Path) -> JobSpec:
        model = MODEL_FOR_KIND[row.kind]
        if isinstance(row, SpeechRow):
            inputs = voxcpm_inputs(row)
        elif isinstance(row, SongRow):
            inputs = yue_inputs(row)
        else:
            assert isinstance(row, VideoRow)
            inputs = ovi_inputs(row)
        adapter = ADAPTERS[model]
        files = {}
        for field_name in adapter.url_inputs + adapter.file_inputs:
            value = inputs.get(field_name)
            if isinstance(value, str) and not is_url(value):
                path = Path(value) if Path(value).is_absolute() else base_dir / value
                files[field_name] = path.resolve()
                inputs[field_name] = f"file:{path.name}"  # the bytes are in the key through ``inputs``
        return JobSpec(model=model, params=inputs, inputs=files)

    # -- generation ------------------------------------------------------------------------
    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        pending = [stop for stop in self._stops if stop.get_loop() is loop and not stop.done()]
        if pending:  # cancelled rows still stopping their tasks: they need this loop's client
            await asyncio.wait(pending, timeout=STOP_WAIT_S)
        await self.clients.close()

    def client(self) -> WiroClient:
        return WiroClient(from_environment(WiroSettings, "WIRO_"), self.clients)

    async def _submit(self, client: WiroClient, job: Job) -> tuple[str, str]:
        """Upload what must be uploaded, then Run, waiting out Wiro's concurrency limit."""
        adapter = ADAPTERS[job.spec.model]
        inputs = dict(job.spec.params)
        files: dict[str, Path] = {}
        for field_name, path in job.spec.inputs.items():
            if field_name in adapter.file_inputs:
                files[field_name] = path
                inputs.pop(field_name, None)
            else:
                inputs[field_name] = await self._upload(client, path)
        deadline = time.monotonic() + client.settings.concurrency_wait_s
        waits = backoff(client.settings.concurrency_retry_s, 60.0)
        while True:
            self.breaker.check()
            try:
                return await client.run(job.spec.model, inputs, files)
            except ApiError as exc:
                if exc.code == CODE_CONCURRENCY and time.monotonic() < deadline:
                    await asyncio.sleep(next(waits))  # a slot frees when another task ends
                    continue
                if exc.code == CODE_BALANCE:
                    message = f"wiro: insufficient balance ({exc.message}); top up, then rerun"
                    self.breaker.trip(message)
                    raise PermanentError(message) from None
                if exc.code == CODE_CONCURRENCY:
                    raise WiroError(f"wiro concurrency limit did not clear: {exc.message}") from None
                raise PermanentError(f"wiro refused the task: {exc.message}") from None

    async def _submit_and_note(self, client: WiroClient, job: Job, journal: Journal) -> dict[str, Any]:
        try:
            taskid, token = await self._submit(client, job)
        except Uncertain as exc:
            # The task may exist at Wiro; submitting again could pay twice. Let the user decide.
            raise PermanentError(f"{exc}; a task may have started: check Wiro before rerunning this row") from None
        record = {
            "backend": self.name,
            "model": job.spec.model,
            "task_id": taskid,
            "token": token,
            "submitted_at": time.time(),
        }
        # Durably noted before waiting: a killed run resumes this task, never pays twice.
        await anyio.to_thread.run_sync(journal.write, record)
        return record

    async def generate(self, job: Job, workdir: Path, journal: Journal) -> Generated:
        client = self.client()
        record = journal.read()
        if record and record.get("task_id"):
            log.info("row %s: resuming wiro task %s", job.id, record["task_id"])
        else:
            # Shielded: a cancel arriving mid-submit still gets the task id noted, then stopped.
            submit = asyncio.ensure_future(self._submit_and_note(client, job, journal))
            try:
                record = await asyncio.shield(submit)
            except asyncio.CancelledError:
                with contextlib.suppress(BaseException):
                    await self._cancel(client, await asyncio.wait_for(submit, 10), journal)
                raise
        try:
            task = await tasks.wait(client, record, journal)
        except asyncio.CancelledError:
            await self._cancel(client, record, journal)  # the run was cancelled: stop paying for this task
            raise
        taskid, status = record["task_id"], task.get("status")
        if status == CANCELLED:
            journal.clear()
            raise WiroError(f"wiro cancelled task {taskid}")
        if not succeeded(task):
            pexit = text(task.get("pexit"))
            reason = str(task.get("debugerror") or "").strip().splitlines()[-1:] or [f"status {status}"]
            message = f"wiro task {taskid} failed (pexit {pexit or '?'}): {reason[0][:200]}"
            billed = number(task.get("totalcost"))
            if billed:  # Wiro bills only successes; a failure that cost money is not paid for twice on a guess
                raise PermanentError(
                    f"{message}; it was billed ${billed:g}, so it is not submitted again: check Wiro, "
                    "then remove its note under .store/journal/ to submit the row anew"
                )
            journal.clear()  # unbilled (Wiro bills only successes): the retry submits a new task
            raise WiroError(message)
        try:
            output = tasks.pick_output(task, ADAPTERS[job.spec.model].output)
            path = workdir / f"output{guess_suffix(output['url'], output.get('contenttype'))}"
            await download(client.clients.get(), output["url"], path, slot=client.clients.slot())
        except PermanentError:
            journal.clear()  # paid, but unusable for good: rerunning (and paying) is the user's call
            raise
        # A download that broke keeps the journal: the next attempt fetches again, it does not re-run.
        started, ended = number(task.get("starttime")), number(task.get("endtime"))
        cost, source = self._cost(job, task)
        return Generated(
            path=path,
            compute_s=number(task.get("elapsedseconds")) or (ended - started if started and ended else None),
            cost_usd=cost,
            cost_source=source,
            task_id=taskid,
            queue_s=round(max(0.0, started - record["submitted_at"]), 3) if started else None,
        )

    def _cost(self, job: Job, task: dict[str, Any]) -> tuple[float | None, str]:
        """Wiro's reported cost; else the price table's (MEDIAMILL_PRICES); else none, said so."""
        reported = number(task.get("totalcost"))
        if reported is not None:
            return reported, "reported"
        price = lookup_price(self.name, job.spec.model, {})
        if price is not None:
            return price.cost(len(str(job.spec.params.get("prompt", "")))), "price table"
        return None, "not reported"

    async def _cancel(self, client: WiroClient, record: dict[str, Any], journal: Journal) -> None:
        """Stop a task because the run was cancelled; the stop runs to its end even if this wait is cut short.

        ``close()`` waits for stops still under way, so the run's HTTP client outlives them.
        """

        async def stop_and_settle() -> None:
            async with stopping():
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(
                        client.stop(record["task_id"], record.get("token", ""), record.get("status", "")), 10
                    )
                    await asyncio.wait_for(tasks.settle_after_stop(client, record, journal), 10)

        stop = asyncio.ensure_future(stop_and_settle())
        self._stops.add(stop)
        stop.add_done_callback(self._stops.discard)
        with contextlib.suppress(Exception):
            await asyncio.shield(stop)
