"""Wiro: hosted VoxCPM speech and cloning, YuE songs and Ovi video clips.

Protocol: ``POST {base}/Run/{owner}/{model}`` starts a task (JSON, or
multipart when a file goes along) and returns its ``taskid``; ``POST
{base}/Task/Detail`` reports its status; ``Task/Cancel`` stops a queued task,
``Task/Kill`` a running one. ``task_postprocess_end`` ends a task: it succeeded
unless ``pexit`` says otherwise (Wiro's model pages show finished tasks without
``pexit`` or ``totalcost``, so an absent exit code is a success); ``task_cancel``
is the other terminal status; ``task_error`` is a log line while the task goes on.
A task that reached ``task_postprocess_end`` and succeeded is never submitted
again: output that cannot be used fails the row with the task id. A failed task
(``pexit`` other than "0") is retried as a new task only when Wiro reports it
unbilled (``totalcost`` "0" or absent, as Wiro documents for failures). Errors may come as
HTTP 200 with ``result: false`` and a code: 96 (concurrency limit: wait) and
97 (insufficient balance: stop).

Settings: ``WIRO_API_KEY``, ``WIRO_API_SECRET`` (signature auth when set,
key-only otherwise), ``WIRO_BASE_URL`` and the timing knobs in WiroSettings.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from ..core.hashing import file_digest
from ..core.waits import backoff
from ..manifest import CloneRow, Row, SongRow, SpeechRow, VideoRow, is_url
from ..store import Journal
from .base import Backend, BackendError, CostEstimate, Generated, Job, JobSpec, PermanentError
from .hosted import (
    CreditBreaker,
    LoopClients,
    download,
    guess_suffix,
    is_http_url,
    lookup_price,
    priced,
    stopping,
    url_host,
)

log = logging.getLogger("mediamill.wiro")

VOXCPM, YUE, OVI = "openbmb/voxcpm", "wiro/text-to-song-with-reference-yue", "chetwinlow1/ovi"
MODEL_FOR_KIND = {"tts": VOXCPM, "clone": VOXCPM, "song": YUE, "video": OVI}
OVI_RESOLUTIONS = ("default", "512x992", "992x512", "960x512", "512x960", "720x720", "448x1120", "1120x448")
QUEUED = {"task_queue", "task_accept", "task_preprocess_start", "task_preprocess_end"}
DONE, CANCELLED, ERROR_LINE = "task_postprocess_end", "task_cancel", "task_error"
CODE_CONCURRENCY, CODE_BALANCE, CODE_NOT_FOUND = 96, 97, 1
NOT_FOUND_GRACE_S = 30.0  # how long "There is no task yet." must persist before a task counts as gone


STOP_WAIT_S = 25.0  # how long closing waits for cancelled rows' stops (each is bounded at 20 s)
SETTLE_CHECKS = 6
SETTLE_INTERVAL_S = 0.5


class WiroSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WIRO_", extra="ignore")

    api_key: SecretStr | None = None
    api_secret: SecretStr | None = None
    base_url: str = "https://api.wiro.ai/v1"
    request_timeout_s: float = Field(60.0, gt=0, description="Longest wait for one API answer, body included.")
    poll_initial_s: float = Field(2.0, gt=0, description="First wait between status checks.")
    poll_max_s: float = Field(10.0, gt=0, description="Longest wait between status checks.")
    task_timeout_s: float = Field(3600.0, gt=0, description="A task not finished by then is killed.")
    concurrency_wait_s: float = Field(1800.0, ge=0, description="How long to wait out Wiro's concurrency limit.")
    concurrency_retry_s: float = Field(5.0, gt=0, description="First wait after a concurrency refusal.")
    error_grace_s: float = Field(300.0, gt=0, description="A task that shows only task_error this long has failed.")
    poll_failures: int = Field(8, ge=1, description="Consecutive failed status checks before giving up.")


class WiroError(BackendError):
    pass


class UncertainError(WiroError):
    """The request may have reached Wiro, but its answer was lost or unreadable."""


@dataclass
class ApiError(Exception):
    code: int | None
    message: str


def signature(api_key: str, api_secret: str, nonce: str) -> str:
    """Wiro's request signature: hex HMAC-SHA256 keyed by the API key over secret + nonce."""
    return hmac.new(api_key.encode(), (api_secret + nonce).encode(), hashlib.sha256).hexdigest()


class WiroClient:
    """Wiro's REST calls, one shared HTTP client, errors mapped to exceptions."""

    _last_nonce = 0  # class-wide: nonces stay unique across clients made in quick succession

    def __init__(self, settings: WiroSettings, http: httpx.AsyncClient, slot: asyncio.Semaphore):
        self.settings = settings
        self.http = http
        self.slot = slot
        self.base = settings.base_url.rstrip("/")

    @classmethod
    def _nonce(cls) -> str:
        # A microsecond timestamp, as documented, made strictly increasing for back-to-back calls.
        cls._last_nonce = max(time.time_ns() // 1000, cls._last_nonce + 1)
        return str(cls._last_nonce)

    def _headers(self) -> dict[str, str]:
        if self.settings.api_key is None:
            raise PermanentError("WIRO_API_KEY is not set")
        key = self.settings.api_key.get_secret_value()
        headers = {"x-api-key": key}
        if self.settings.api_secret is not None:
            nonce = self._nonce()
            headers["x-nonce"] = nonce
            headers["x-signature"] = signature(key, self.settings.api_secret.get_secret_value(), nonce)
        return headers

    async def post(self, path: str, json: dict | None = None, data: dict | None = None, files: Any = None) -> dict:
        """POST and return the JSON body of a successful call; raise ApiError or WiroError otherwise."""
        timeout = self.settings.request_timeout_s
        try:
            async with self.slot, asyncio.timeout(timeout):  # httpx times each read; this, the whole answer
                response = await self.http.post(
                    f"{self.base}/{path}", json=json, data=data, files=files,
                    headers=self._headers(), timeout=timeout,
                    follow_redirects=False,  # x-api-key is a custom header: httpx would send it to any host
                )  # fmt: skip
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise WiroError(f"wiro {path}: {type(exc).__name__} (request not sent)") from None
        except (httpx.TimeoutException, TimeoutError):
            raise UncertainError(f"wiro {path}: no complete answer within {timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise UncertainError(f"wiro {path}: {type(exc).__name__}") from None
        if response.is_redirect:
            raise PermanentError(
                f"wiro {path}: answered with a redirect (HTTP {response.status_code}) to "
                f"{url_host(response.headers['location'])}; not followed, so the key stays here: check WIRO_BASE_URL"
            )
        if response.status_code in (401, 403):
            raise PermanentError(
                f"wiro refused the credentials (HTTP {response.status_code}): check WIRO_API_KEY/WIRO_API_SECRET"
            )
        if response.status_code == 429 or response.status_code >= 500:
            raise WiroError(f"wiro {path}: HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            raise UncertainError(f"wiro {path}: malformed JSON (HTTP {response.status_code})") from None
        if not isinstance(body, dict):
            raise UncertainError(f"wiro {path}: answered a JSON {type(body).__name__}, not an object")
        if body.get("result") is not True:
            errors = body.get("errors") or [{}]
            first = errors[0] if isinstance(errors, list) and isinstance(errors[0], dict) else {}
            code = first.get("code")
            raise ApiError(int(code) if str(code).isdigit() else None, str(first.get("message") or "request failed"))
        return body

    async def run(self, model: str, inputs: dict[str, Any], files: dict[str, Path]) -> tuple[str, str]:
        if files:  # multipart: files as parts, everything else as text fields
            data = {k: _form_value(v) for k, v in inputs.items()}
            parts = [
                (name, (path.name, await anyio.to_thread.run_sync(path.read_bytes))) for name, path in files.items()
            ]
            body = await self.post(f"Run/{model}", data=data, files=parts)
        else:
            body = await self.post(f"Run/{model}", json=inputs)
        taskid, token = body.get("taskid"), body.get("socketaccesstoken")
        if not _scalar(taskid):
            # The call was accepted, so a task may exist: uncertain, never simply resubmitted.
            raise UncertainError(f"wiro Run/{model}: answered without a usable taskid ({_shown(taskid)})")
        return str(taskid), str(token) if _scalar(token) else ""

    async def detail(self, taskid: str, token: str = "") -> dict[str, Any]:
        body = await self.post("Task/Detail", json={"taskid": taskid, **({"tasktoken": token} if token else {})})
        tasks = body.get("tasklist")
        if not isinstance(tasks, list) or not tasks or not isinstance(tasks[0], dict):
            raise WiroError(f"wiro Task/Detail answered without the task (tasklist: {_shown(tasks)})")
        if not isinstance(tasks[0].get("status"), str):  # an unknown status would be polled until the task timeout
            raise WiroError(f"wiro Task/Detail answered a status that is no text ({_shown(tasks[0].get('status'))})")
        return tasks[0]

    async def stop(self, taskid: str, token: str, status: str) -> bool:
        """Cancel a queued task or kill a running one (whichever its status allows).

        Returns False when Wiro refused both: the task had already ended.
        """
        ident = {"taskid": taskid, **({"tasktoken": token, "socketaccesstoken": token} if token else {})}
        order = ["Task/Cancel", "Task/Kill"] if status in QUEUED else ["Task/Kill", "Task/Cancel"]
        for path in order:
            try:
                await self.post(path, json=ident)
                return True
            except ApiError:
                continue  # the task moved on between our look and our call: try the other
        return False

    async def upload(self, path: Path) -> str:
        content = await anyio.to_thread.run_sync(path.read_bytes)
        body = await self.post("File/Upload", files=[("file", (path.name, content))])
        listing = body.get("list")
        url = listing[0].get("url") if isinstance(listing, list) and listing and isinstance(listing[0], dict) else None
        if not is_http_url(url):
            raise WiroError(f"wiro File/Upload answered without a usable URL ({_shown(url)})")
        return url


def _form_value(value: Any) -> Any:
    if isinstance(value, list):
        return [str(v) for v in value]
    return str(value)


def _scalar(value: Any) -> bool:
    """A usable id: a non-empty string or an integer (JSON ids come either way)."""
    return (isinstance(value, str) and value.strip() != "") or (isinstance(value, int) and not isinstance(value, bool))


def _shown(value: Any) -> str:
    """A value from an answer, short enough for an error message."""
    return f"{type(value).__name__} {str(value)[:60]!r}" if value is not None else "missing"


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def succeeded(task: dict[str, Any]) -> bool:
    """A Detail that shows a finished, successful task: ``task_postprocess_end`` and an exit code of "0" or none."""
    return task.get("status") == DONE and _text(task.get("pexit")) in ("", "0")


def _num(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


# -- model adapters: a row becomes the model's inputs -----------------------------------
# Values that are local files stay paths here (hashed into the content key); at run
# time ``url_inputs`` are uploaded and replaced by their URL, ``file_inputs`` travel
# in the multipart Run request.


@dataclass(frozen=True)
class Adapter:
    model: str
    url_inputs: tuple[str, ...] = ()  # text fields that take a URL: local files are uploaded first
    file_inputs: tuple[str, ...] = ()  # file fields: local files go in the Run request itself
    output: str = "audio/"


ADAPTERS = {
    VOXCPM: Adapter(VOXCPM, url_inputs=("inputAudioUrl", "inputAudioReferenceUrl")),
    YUE: Adapter(YUE, url_inputs=("inputAudioUrl",)),
    OVI: Adapter(OVI, file_inputs=("inputImage",), output="video/"),
}


def voxcpm_inputs(row: SpeechRow) -> dict[str, Any]:
    inputs: dict[str, Any] = {
        "prompt": row.text,
        "cfgValue": row.cfg_value if row.cfg_value is not None else 2.0,
        "inferenceSteps": row.inference_timesteps or 10,
    }
    if isinstance(row, CloneRow) and row.reference:
        if row.reference_text:  # prompt continuation: the reference and what it says
            inputs["inputAudioReferenceUrl"] = row.reference
            inputs["referencePrompt"] = row.reference_text
        else:
            inputs["inputAudioUrl"] = row.reference
    return inputs


def yue_inputs(row: SongRow) -> dict[str, Any]:
    inputs: dict[str, Any] = {"prompt": row.lyrics}
    for column in ("genre", "instrument", "mood", "gender", "timbre"):
        if getattr(row, column):
            inputs[column] = list(getattr(row, column))
    if row.reference:
        inputs["inputAudioUrl"] = row.reference
        inputs["audio_prompt_type"] = row.clone_type or "both"
    if row.seed is not None:
        inputs["seed"] = str(row.seed)
    return inputs


def ovi_inputs(row: VideoRow) -> dict[str, Any]:
    inputs: dict[str, Any] = {"inputImage": row.image, "prompt": row.prompt, "resolution": row.resolution or "default"}
    optional = {
        "negativePrompt": row.negative_prompt,
        "audioNegativePrompt": row.audio_negative_prompt,
        "steps": row.steps,
        "seed": row.seed,
    }
    inputs.update({k: v for k, v in optional.items() if v is not None})
    return inputs


def _unbalanced_tags(prompt: str) -> str | None:
    for opening, closing in (("<S>", "<E>"), ("<AUDCAP>", "<ENDAUDCAP>")):
        if prompt.count(opening) != prompt.count(closing):
            return f"prompt has {prompt.count(opening)} {opening} but {prompt.count(closing)} {closing}"
    return None


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
            unbalanced = _unbalanced_tags(row.prompt)
            if unbalanced:
                problems.append(("prompt", unbalanced + " (speech is <S>…<E>, sound captions <AUDCAP>…<ENDAUDCAP>)"))
        if row.options:
            problems.append(("options", "wiro takes no extra options"))
        return problems

    def estimate(self, texts: list[str], speech_s: float) -> CostEstimate:
        unknown = CostEstimate(self.name, None, "Wiro reports each task's cost after it runs; set MEDIAMILL_PRICES "
                                                "(key 'wiro') to estimate it")  # fmt: skip
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
        return WiroClient(WiroSettings(), self.clients.get(), self.clients.slot())

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
        except UncertainError as exc:
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

    async def _settle_after_stop(
        self, client: WiroClient, record: dict[str, Any], journal: Journal
    ) -> dict[str, Any] | None:
        """After asking Wiro to stop a task: forget it only if Wiro says it ended unpaid.

        Returns the task's Detail if it finished successfully after all (collect it).
        """
        # A stop takes a moment to show in Detail: look a few times before leaving it to the next run.
        for attempt in range(SETTLE_CHECKS):
            try:
                task = await client.detail(record["task_id"], record.get("token", ""))
            except (ApiError, WiroError):
                return None  # unknown: keep the journal, the next run will look again
            if task.get("status") in (CANCELLED, DONE) or attempt == SETTLE_CHECKS - 1:
                break
            await asyncio.sleep(SETTLE_INTERVAL_S)
        if task.get("status") == CANCELLED:
            journal.clear()
        elif succeeded(task):
            return task
        return None

    async def _wait(self, client: WiroClient, record: dict[str, Any], journal: Journal) -> dict[str, Any]:
        """Poll until the task ends; return its last Detail.

        Transient failures are retried here. The journal is cleared only on an end
        Wiro reports; any other way out keeps it, so the task is never paid twice.
        """
        settings = client.settings
        waits = backoff(settings.poll_initial_s, settings.poll_max_s)
        failures = 0
        missing_since: float | None = None
        error_since: float | None = None
        while True:
            try:
                task = await client.detail(record["task_id"], record.get("token", ""))
                failures, missing_since = 0, None
            except ApiError as exc:
                if exc.code == CODE_NOT_FOUND:
                    # "There is no task yet" can be a moment's lag; only a lasting answer means it is gone.
                    missing_since = missing_since or time.monotonic()
                    if time.monotonic() - missing_since > NOT_FOUND_GRACE_S:
                        journal.clear()
                        raise PermanentError(
                            f"wiro does not know task {record['task_id']}: rerun to submit the row again"
                        ) from None
                else:
                    failures += 1  # code 0 covers server errors too
                    if failures >= settings.poll_failures:
                        raise WiroError(f"wiro Task/Detail: {exc.message}") from None
                await asyncio.sleep(next(waits))
                continue
            except WiroError:
                failures += 1
                if failures >= settings.poll_failures:
                    raise
                await asyncio.sleep(next(waits))
                continue
            status = str(task.get("status", ""))
            record["status"] = status
            if status in (DONE, CANCELLED):
                return task
            if status == ERROR_LINE:
                # A log line while the task goes on, unless the task has visibly ended.
                if task.get("pexit") not in (None, "") or task.get("endtime") not in (None, ""):
                    return task
                error_since = error_since or time.monotonic()
                if time.monotonic() - error_since > settings.error_grace_s:
                    await self._stop(client, record, journal, why="showed only task_error")
            else:
                error_since = None
            if time.time() - record["submitted_at"] > settings.task_timeout_s:
                await self._stop(client, record, journal, why=f"did not finish within {settings.task_timeout_s:.0f} s")
            await asyncio.sleep(next(waits))

    async def _stop(self, client: WiroClient, record: dict[str, Any], journal: Journal, why: str) -> None:
        """Stop a task that will not end well; fail the row unless it finished meanwhile."""
        async with stopping():
            await client.stop(record["task_id"], record.get("token", ""), record.get("status", ""))
            finished = await self._settle_after_stop(client, record, journal)
        if finished is None:
            raise PermanentError(f"wiro task {record['task_id']} {why}; stopped it")

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
            task = await self._wait(client, record, journal)
        except asyncio.CancelledError:
            await self._cancel(client, record, journal)  # the run was cancelled: stop paying for this task
            raise
        taskid, status = record["task_id"], task.get("status")
        if status == CANCELLED:
            journal.clear()
            raise WiroError(f"wiro cancelled task {taskid}")
        if not succeeded(task):
            pexit = _text(task.get("pexit"))
            reason = str(task.get("debugerror") or "").strip().splitlines()[-1:] or [f"status {status}"]
            message = f"wiro task {taskid} failed (pexit {pexit or '?'}): {reason[0][:200]}"
            billed = _num(task.get("totalcost"))
            if billed:  # Wiro bills only successes; a failure that cost money is not paid for twice on a guess
                raise PermanentError(f"{message}; it was billed ${billed:g}, so it is not submitted again: check Wiro, "
                                     "then remove its note under .store/journal/ to submit the row anew")  # fmt: skip
            journal.clear()  # unbilled (Wiro bills only successes): the retry submits a new task
            raise WiroError(message)
        try:
            output = self._pick_output(task, ADAPTERS[job.spec.model].output)
            path = workdir / f"output{guess_suffix(output['url'], output.get('contenttype'))}"
            await download(client.http, output["url"], path, slot=client.slot)
        except PermanentError:
            journal.clear()  # paid, but unusable for good: rerunning (and paying) is the user's call
            raise
        # A download that broke keeps the journal: the next attempt fetches again, it does not re-run.
        started, ended = _num(task.get("starttime")), _num(task.get("endtime"))
        cost, source = self._cost(job, task)
        return Generated(
            path=path,
            compute_s=_num(task.get("elapsedseconds")) or (ended - started if started and ended else None),
            cost_usd=cost,
            cost_source=source,
            task_id=taskid,
            queue_s=round(max(0.0, started - record["submitted_at"]), 3) if started else None,
        )

    def _cost(self, job: Job, task: dict[str, Any]) -> tuple[float | None, str]:
        """Wiro's reported cost; else the price table's (MEDIAMILL_PRICES); else none, said so."""
        reported = _num(task.get("totalcost"))
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
                    await asyncio.wait_for(self._settle_after_stop(client, record, journal), 10)

        stop = asyncio.ensure_future(stop_and_settle())
        self._stops.add(stop)
        stop.add_done_callback(self._stops.discard)
        with contextlib.suppress(Exception):
            await asyncio.shield(stop)

    @staticmethod
    def _pick_output(task: dict[str, Any], wanted: str) -> dict[str, Any]:
        listed = task.get("outputs")
        outputs = (
            [o for o in listed if isinstance(o, dict) and is_http_url(o.get("url"))] if isinstance(listed, list) else []
        )
        if not outputs:
            # Finished, so possibly paid for: the row's retries look at the same task again (the answer may
            # have been garbled); it is never submitted again on a guess, and its note stays for the next run.
            raise WiroError(
                f"wiro task {task.get('id')} finished without a usable output URL (outputs: {_shown(listed)}); "
                "it may have been paid for, so it is not submitted again: check Wiro, then remove its note "
                "under .store/journal/ to submit the row anew"
            )
        for output in outputs:
            if str(output.get("contenttype", "")).startswith(wanted):
                return output
        return outputs[0]


__all__ = ["WiroBackend", "WiroClient", "WiroSettings", "signature"]
