"""A local Wiro API (https://api.wiro.ai/v1) for tests.

It follows the protocol in /work/notes/wiro.md ([DOC] where Wiro documents it):

* every endpoint is ``POST`` under ``/v1``; the envelope is
  ``{"result": bool, "errors": [{"code": int, "message": str}], ...}`` with the
  payload fields at top level (``taskid``, ``tasklist``, ``list``);
* auth is either signature based (``x-api-key``, ``x-nonce``, ``x-signature``
  with ``x-signature = hex(HMAC-SHA256(key=API_KEY, msg=API_SECRET + NONCE))``)
  or API-key only; failures are HTTP 401, unknown paths HTTP 404, everything
  else (validation, concurrency, balance, task errors) HTTP 200 + ``result: false``;
* ``/Run/{owner}/{model}`` queues a task and answers ``taskid`` +
  ``socketaccesstoken``; the task then walks the documented status sequence
  on wall-clock time, and ``/Task/Detail`` reports it with every scalar as a string;
* outputs are public "CDN" URLs served by the same server (``GET /files/...``,
  outside ``/v1`` and without auth), like Wiro's S3/CloudFront links.

Faults are queued with :meth:`WiroEmulator.inject` and consumed by the next
matching requests (or, for ``task_*`` faults, by the next created tasks).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import math
import mimetypes
import re
import secrets
import string
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from .server import HOSTILE_DOWNLOADS, Emulator, add_elsewhere, sample_media

# --------------------------------------------------------------------------------------------
# Faults

REQUEST_FAULTS = {
    "run_http500",  # Run answers HTTP 500 with an HTML (non-JSON) body
    "run_code96",  # Run answers result false, code 96 (concurrency limit)
    "run_code97",  # Run answers result false, code 97 (insufficient balance)
    "run_timeout",  # Run creates the task, then waits slow_s before answering (the answer may be lost)
    "detail_http500",  # Task/Detail answers HTTP 500 with an HTML body
    "detail_malformed",  # Task/Detail answers HTTP 200 with truncated JSON
    "detail_timeout",  # Task/Detail waits slow_s before answering (other requests are not blocked)
    "download_broken",  # file GET sends half the bytes under the full Content-Length, then drops the socket
    "download_http500",  # file GET answers HTTP 500
    "run_redirect",  # Run answers 307 to /elsewhere on another host name (which records what arrives)
    "detail_redirect",  # the same for Task/Detail
    "run_html_200",  # Run creates the task, then answers HTTP 200 with an HTML page
    "detail_drip",  # Task/Detail sends HTTP 200 headers, then one space every drip_s, forever
} | HOSTILE_DOWNLOADS  # file GETs; see tests/helpers/emulators/server.py
# The request is handled as usual, then its answer comes back in the wrong shape.
RUN_SHAPES = {
    "run_list": lambda answer: [answer],  # a JSON list, not the envelope object
    "run_taskid_object": lambda answer: {**answer, "taskid": {"id": answer["taskid"]}},
}
DETAIL_SHAPES = {
    "detail_list": lambda answer: [answer],
    "detail_no_tasklist": lambda answer: {"result": True, "errors": []},
    "detail_status_numeric": lambda answer: _task_edit(answer, status=7),
}
# Only a finished task's Detail consumes these: they spoil its outputs.
OUTPUT_SHAPES = {
    "detail_outputs_string": lambda answer: _task_edit(answer, outputs=answer["tasklist"][0]["outputs"][0]["url"]),
    "detail_output_url_object": lambda answer: _task_edit(
        answer, outputs=[{**o, "url": {"href": o["url"]}} for o in answer["tasklist"][0]["outputs"]]
    ),
}
REQUEST_FAULTS |= set(RUN_SHAPES) | set(DETAIL_SHAPES) | set(OUTPUT_SHAPES)
TASK_FAULTS = {
    "task_pexit1": "pexit1",  # reaches task_postprocess_end with pexit "1", no outputs, unbilled
    "task_pexit1_billed": "pexit1_billed",  # the same, but its totalcost says it was charged
    "task_no_outputs": "no_outputs",  # succeeds (pexit "0", billed) with an empty outputs list
    "task_service_cancel": "service_cancel",  # Wiro cancels it mid-run: task_cancel, unbilled
    "task_interim_errors": "interim_errors",  # task_error shows up mid-run, then it succeeds normally
    "task_stuck": "stuck",  # reaches task_start and stays there forever
    "task_fatal_error": "fatal_error",  # becomes task_error (terminal in Task/Detail) with pexit "1"
}
FAULTS = REQUEST_FAULTS | set(TASK_FAULTS)

# --------------------------------------------------------------------------------------------
# Models


def _task_edit(answer: dict, **fields) -> dict:
    return {**answer, "tasklist": [{**answer["tasklist"][0], **fields}]}


def _err(code: int, message: str) -> dict:
    return {"result": False, "errors": [{"code": code, "message": message}]}


def _required(name: str) -> dict:
    return _err(0, f"Request parameter [{name}] required")  # [DOC] validation message


def _is_url(value: object) -> bool:
    return isinstance(value, str) and value.startswith(("http://", "https://"))


def _numeric(inputs: dict, names: tuple[str, ...]) -> dict | None:
    for name in names:
        value = inputs.get(name)
        if value is None or value == "":
            continue
        try:
            float(value)
        except (TypeError, ValueError):
            return _err(0, f"Request parameter [{name}] must be integer or float")  # [DOC]
    return None


def _validate_voxcpm(inputs: dict, files: dict) -> dict | None:
    prompt = inputs.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        return _required("prompt")
    return _numeric(inputs, ("cfgValue", "inferenceSteps"))


# YuE lyrics are sections introduced by lower-case structure tags ([DOC] default prompt).
_LYRIC_TAG = re.compile(r"\[(verse|chorus|bridge|outro|intro|pre-chorus|hook)\]", re.IGNORECASE)


def _validate_yue(inputs: dict, files: dict) -> dict | None:
    prompt = inputs.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        return _required("prompt")
    if not _LYRIC_TAG.search(prompt):
        # [INF] the real message is undocumented; the code (0) and HTTP 200 follow the validation family.
        return _err(0, "Request parameter [prompt] must contain lyrics sections such as [verse] or [chorus]")
    kind = inputs.get("audio_prompt_type")
    if kind not in (None, "", "vocal", "instrumental", "both"):
        return _err(0, "Request parameters are invalid.")
    return None


OVI_RESOLUTIONS = ("default", "512x992", "992x512", "960x512", "512x960", "720x720", "448x1120", "1120x448")


def _validate_ovi(inputs: dict, files: dict) -> dict | None:
    # inputImage is a "combinefileinput": an uploaded file part or a URL in the same field (no ...Url suffix).
    if not files.get("inputImage"):
        image = inputs.get("inputImage")
        if image is None or image == "":
            return _err(0, "Request files [inputImage] required")  # [DOC] message for file params
        if not _is_url(image):
            return _err(0, "Request parameters are invalid.")
    resolution = inputs.get("resolution")
    if resolution not in (None, "") and resolution not in OVI_RESOLUTIONS:
        return _err(0, "Request parameters are invalid.")
    return None


@dataclass(frozen=True)
class ModelSpec:
    validate: Callable[[dict, dict], dict | None]
    output_name: str
    content_type: str
    media: str  # sample_media kind
    description: str


MODELS: dict[str, ModelSpec] = {
    "openbmb/voxcpm": ModelSpec(_validate_voxcpm, "0.wav", "audio/wav", "wav", "VoxCPM: tokenizer-free TTS."),
    "wiro/text-to-song-with-reference-yue": ModelSpec(
        _validate_yue, "0.mp3", "audio/mpeg", "mp3", "YuE: lyrics to song with a reference track."
    ),
    "chetwinlow1/ovi": ModelSpec(_validate_ovi, "0.mp4", "video/mp4", "mp4", "Ovi: video+audio generation."),
}

# --------------------------------------------------------------------------------------------
# Tasks

# A task is task_queue for queue_s, then spends run_s in the documented [DOC] order:
#   task_accept, task_assign, task_start (hand-off steps of STEP_S each),
#   task_output (the bulk of run_s),
#   task_end, task_postprocess_start (STEP_S each), and then task_postprocess_end.
# Runs shorter than 10 * STEP_S scale the steps down to a tenth of run_s. The optional
# task_preprocess_* and the websocket-only statuses are not shown: Detail reports the DB status.
STEP_S = 0.05
SERVICE_CANCEL_AT = 0.55  # task_service_cancel: Wiro cancels it this far into run_s
INTERIM_ERRORS = (0.40, 0.60)  # task_interim_errors: task_error for this part of run_s
QUEUED = ("task_queue", "task_accept")  # Cancel works here; after task_assign only Kill does

PROGRESS_LOG = "Loading model\nGenerating\n"
SUCCESS_LOG = PROGRESS_LOG + "Saving outputs\n"
PEXIT1_ERROR = "Traceback (most recent call last):\n  ...\ntorch.OutOfMemoryError: CUDA out of memory.\n"
INTERIM_ERROR = "UserWarning: flash attention is not available, falling back to sdpa\n"
FATAL_ERROR = "Output folder creation failed"  # the text Wiro's own SDK tests use for debugerror


def _token() -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(30))


class Task:
    """One Wiro task. Its status is a function of the time since Run (and of Cancel/Kill)."""

    def __init__(
        self,
        *,
        taskid: str,
        owner: str,
        slug: str,
        spec: ModelSpec,
        inputs: dict,
        files: dict,
        file_names: dict,
        queue_s: float,
        run_s: float,
        shape: str | None,
        cost: float,
        base_url: str,
        lock: threading.RLock,
    ):
        self.taskid = taskid
        self.token = _token()  # socketaccesstoken; also the "tasktoken" of Detail/Cancel/Kill
        self.owner, self.slug = owner, slug
        self.model = f"{owner}/{slug}"
        self.spec = spec
        self.inputs = inputs
        self.files = files
        self.file_names = file_names
        self.queue_s, self.run_s = queue_s, run_s
        self.shape = shape  # None or one of TASK_FAULTS' values
        self.cost = cost
        self.base_url = base_url  # the server root that serves /files
        self.cancelled = False  # by /Task/Cancel
        self.killed = False  # by /Task/Kill
        self._lock = lock
        self._created = time.monotonic()
        self._created_wall = time.time()
        self._stopped: float | None = None  # monotonic time of Cancel/Kill

    # -- timeline ---------------------------------------------------------------------------
    # Times below are seconds since the queue phase ended (negative while queued).

    def _since_queue(self, t: float) -> float:
        """Seconds of the running phase done at t seconds after Run."""
        return t - self.queue_s

    @property
    def _step(self) -> float:
        return min(STEP_S, self.run_s / 10)

    @property
    def _start_at(self) -> float:  # task_start: the process runs from here; starttime is set
        return 2 * self._step

    @property
    def _fatal_at(self) -> float:  # task_fatal_error fails where it would be assigned (pre-execution)
        return self._step

    def _natural_status(self, t: float) -> str:
        """The status at t seconds after Run, without user Cancel/Kill."""
        r, run_s, step = self._since_queue(t), self.run_s, self._step
        if r < 0:
            return "task_queue"
        if self.shape == "fatal_error" and r >= self._fatal_at:
            return "task_error"
        if self.shape == "stuck" and r >= self._start_at:
            return "task_start"
        if self.shape == "service_cancel" and r >= SERVICE_CANCEL_AT * run_s:
            return "task_cancel"
        if self.shape == "interim_errors" and INTERIM_ERRORS[0] * run_s <= r < INTERIM_ERRORS[1] * run_s:
            return "task_error"  # an interim stderr event: the task carries on
        if r >= run_s:
            return "task_postprocess_end"
        phases = (
            (0.0, "task_accept"),
            (step, "task_assign"),
            (2 * step, "task_start"),
            (3 * step, "task_output"),
            (run_s - 2 * step, "task_end"),
            (run_s - step, "task_postprocess_start"),
        )
        status = "task_accept"
        for at, name in phases:
            if r >= at:
                status = name
        return status

    def _wall(self, r: float) -> float:
        """Unix time at r seconds into the running phase."""
        return self._created_wall + self.queue_s + r

    def _view(self, now: float) -> dict:
        """Status-dependent Detail fields at monotonic time now. Call with the lock held."""
        stopped = self._stopped is not None
        t = (self._stopped if stopped else now) - self._created  # the clock stops at Cancel/Kill
        r = self._since_queue(t)
        status = "task_cancel" if stopped else self._natural_status(t)
        started = r >= self._start_at and self.shape != "fatal_error"
        noisy = self.shape == "interim_errors" and r >= INTERIM_ERRORS[0] * self.run_s
        # While not finished: pexit "", endtime "", elapsedseconds "0", totalcost "0", outputs [] [SDK fixture]
        view = {
            "status": status,
            "pexit": "",
            "debugoutput": PROGRESS_LOG if started else "",
            "debugerror": INTERIM_ERROR if noisy else "",
            "starttime": str(int(self._wall(self._start_at))) if started else "",
            "endtime": "",
            "elapsedseconds": "0",
            "totalcost": "0",
            "outputs": [],
        }
        if status == "task_cancel":
            # user Cancel/Kill, or a service-side cancel: no outputs, never billed [DOC]
            end = r if stopped else SERVICE_CANCEL_AT * self.run_s
            view["endtime"] = str(int(self._created_wall + t if stopped else self._wall(end)))
            if started:
                view["elapsedseconds"] = "%.4f" % (end - self._start_at)
        elif status == "task_error" and self.shape == "fatal_error":
            view.update(pexit="1", debugerror=FATAL_ERROR, endtime=str(int(self._wall(self._fatal_at))))
        elif status == "task_postprocess_end":
            view.update(
                debugoutput=SUCCESS_LOG, endtime=str(int(self._wall(self.run_s))), elapsedseconds=f"{self.run_s:.4f}"
            )
            if self.shape == "pexit1":
                view.update(pexit="1", debugerror=PEXIT1_ERROR)
            elif self.shape == "pexit1_billed":
                view.update(pexit="1", debugerror=PEXIT1_ERROR, totalcost=f"{self.cost:.12f}")
            elif self.shape == "no_outputs":
                view.update(pexit="0", totalcost=f"{self.cost:.12f}")
            else:
                view.update(pexit="0", totalcost=f"{self.cost:.12f}", outputs=[self._output()])
        return view

    def _output(self) -> dict:
        data = sample_media(self.spec.media)
        return {
            "name": self.spec.output_name,
            "contenttype": self.spec.content_type,
            "size": str(len(data)),
            "url": f"{self.base_url}/files/{self.taskid}/{self.spec.output_name}",
        }

    def _ends_at(self) -> float:
        """Monotonic time at which the task is finished (as ``_finished`` sees it); inf while stuck."""
        natural = {
            "fatal_error": self._fatal_at,
            "service_cancel": SERVICE_CANCEL_AT * self.run_s,
            "stuck": math.inf,
        }.get(self.shape or "", self.run_s)
        end = self._created + self.queue_s + natural
        return end if self._stopped is None else min(end, self._stopped)

    def _finished(self, view: dict) -> bool:
        # task_error is terminal only for the fatal shape (Wiro's SDK: a DB status from Detail)
        return view["status"] in ("task_postprocess_end", "task_cancel") or (
            view["status"] == "task_error" and self.shape == "fatal_error"
        )

    def _charge(self, view: dict) -> float:
        """What the task holds of the balance: its cost unless it ended unbilled."""
        if self._finished(view) and view["totalcost"] == "0":
            return 0.0
        return self.cost

    # -- public, thread-safe ----------------------------------------------------------------

    def snapshot(self) -> dict:
        with self._lock:
            return self._view(time.monotonic())

    @property
    def status(self) -> str:
        return self.snapshot()["status"]

    @property
    def pexit(self) -> str:
        return self.snapshot()["pexit"]

    @property
    def finished(self) -> bool:
        with self._lock:
            return self._finished(self._view(time.monotonic()))

    def detail(self, style: str = "documented") -> dict:
        """The task as /Task/Detail lists it ([DOC] field set; debugerror from Wiro's SDK).

        ``style="model_page"`` answers as the model pages' "Get Task Detail - Response"
        example does (openbmb/voxcpm's among them): a finished task with its outputs but
        no ``pexit`` and no ``totalcost``; only a failure still says its exit code.
        """
        with self._lock:
            view = self._view(time.monotonic())
        answer = {
            "id": self.taskid,
            "socketaccesstoken": self.token,
            "parameters": {**self.inputs, **self.file_names},
            "status": view["status"],
            "pexit": view["pexit"],
            "debugoutput": view["debugoutput"],
            "debugerror": view["debugerror"],
            "starttime": view["starttime"],
            "endtime": view["endtime"],
            "elapsedseconds": view["elapsedseconds"],
            "totalcost": view["totalcost"],
            "modeldescription": self.spec.description,
            "modelslugowner": self.owner,
            "modelslugproject": self.slug,
            "outputs": view["outputs"],
        }
        if style == "model_page":
            answer.pop("totalcost")
            if view["pexit"] in ("", "0"):
                answer.pop("pexit")
        return answer


# --------------------------------------------------------------------------------------------
# Request bodies


async def read_body(request: Request) -> tuple[dict, dict, dict] | None:
    """(inputs, files, file names) from a JSON, urlencoded or multipart body; None if unreadable.

    A repeated form field becomes a list of its values."""
    ctype = request.headers.get("content-type", "").lower()
    if ctype.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        try:
            form = await request.form()
        except Exception:  # noqa: BLE001 - any malformed body is the client's error
            return None
        fields: dict = {}
        files: dict = {}
        names: dict = {}

        def put(target: dict, key: str, value) -> None:
            if key in target:
                old = target[key]
                target[key] = (old if isinstance(old, list) else [old]) + [value]
            else:
                target[key] = value

        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                put(files, key, await value.read())
                put(names, key, value.filename)
            else:
                put(fields, key, value)
        return fields, files, names
    raw = await request.body()
    try:
        if not raw.strip():
            return {}, {}, {}
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return (data, {}, {}) if isinstance(data, dict) else None


class TruncatedResponse(Response):
    """Declares the full Content-Length, sends the first half of the body, then drops the connection.

    Returning from the ASGI call with the body unfinished makes uvicorn log "ASGI callable
    returned without completing response." and close the socket: the client sees a short read."""

    async def __call__(self, scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": self.body[: len(self.body) // 2], "more_body": True})


HTML_500 = (
    "<html><head><title>500 Internal Server Error</title></head><body><h1>Internal Server Error</h1></body></html>"
)


def _html_500() -> Response:
    return Response(HTML_500, status_code=500, media_type="text/html")


# --------------------------------------------------------------------------------------------
# The emulator

# How Task/Detail answers: "documented" (the API reference's field set, with pexit and totalcost)
# or "model_page" (the shape of the model pages' example: finished tasks without either).
DETAIL_STYLES = ("documented", "model_page")


class WiroEmulator(Emulator):
    name = "Wiro"
    FAULTS = frozenset(FAULTS)

    def __init__(
        self,
        *,
        api_key: str = "wiro-test-key-0123456789",
        api_secret: str | None = "wiro-test-secret-abcdefghij",
        queue_s: float = 0.2,
        run_s: float = 0.5,
        max_concurrent: int | None = None,
        balance_usd: float = 100.0,
        cost_per_task: float = 0.0123,
        slow_s: float = 5.0,
        durations: Callable[[str, dict], tuple[float, float]] | None = None,
        detail_style: str = "documented",
    ):
        super().__init__(slow_s)
        if detail_style not in DETAIL_STYLES:
            raise ValueError(f"detail_style must be one of {DETAIL_STYLES}")
        self.detail_style = detail_style
        self.api_key = api_key
        self.api_secret = api_secret
        self.queue_s, self.run_s = queue_s, run_s
        self.max_concurrent = max_concurrent
        self.initial_balance_usd = balance_usd
        self.cost_per_task = cost_per_task
        self.durations = durations
        self.root: str | None = None  # "http://127.0.0.1:PORT": serves /files; url adds /v1

        self._ids = itertools.count(534574)
        self._runs: list[dict] = []
        self._requests: list[tuple[str, str | None]] = []
        self._tasks: dict[str, Task] = {}
        self._uploads: dict[str, bytes] = {}  # url -> bytes
        self._upload_types: dict[str, str] = {}  # url path -> content type
        self.app = self._build_app()

    # -- lifecycle --------------------------------------------------------------------------

    def _started(self, url: str) -> None:
        self.root = url
        self.url = url + "/v1"

    # -- observation (snapshots, safe to read from the test thread) --------------------------

    @property
    def runs(self) -> list[dict]:
        with self._lock:
            return [dict(run) for run in self._runs]

    @property
    def requests(self) -> list[tuple[str, str | None]]:
        with self._lock:
            return list(self._requests)

    @property
    def active(self) -> int:
        """Tasks queued or running now (what Wiro's concurrent task limit counts)."""
        with self._lock:
            return self._active()

    def peak_active(self) -> int:
        """The most tasks queued or running at once so far: a client's concurrency, seen from the service.

        Exact rather than sampled: a task counts from its Run until it finishes, so the count
        only rises at a Run, and a sweep over the tasks' intervals finds its highest point.
        """
        with self._lock:
            edges = [(t._created, 1) for t in self._tasks.values()] + [(t._ends_at(), -1) for t in self._tasks.values()]
        peak = now = 0
        for _, step in sorted(edges):  # at one instant an end (-1) sorts before a start (+1)
            now += step
            peak = max(peak, now)
        return peak

    def detail_count(self, taskid: str) -> int:
        with self._lock:
            return sum(1 for op, tid in self._requests if op == "Detail" and tid == taskid)

    @property
    def tasks(self) -> dict[str, Task]:
        with self._lock:
            return dict(self._tasks)

    @property
    def uploads(self) -> dict[str, bytes]:
        with self._lock:
            return dict(self._uploads)

    @property
    def balance_usd(self) -> float:
        """Balance after every task's cost, except tasks that ended unbilled (cancelled or failed)."""
        with self._lock:
            now = time.monotonic()
            held = sum(task._charge(task._view(now)) for task in self._tasks.values())
            return self.initial_balance_usd - held

    def auth_headers(self, nonce: str | None = None) -> dict[str, str]:
        """Valid auth headers for this project (a convenience for tests)."""
        if self.api_secret is None:
            return {"x-api-key": self.api_key}
        nonce = nonce or str(int(time.time()))
        signature = hmac.new(self.api_key.encode(), (self.api_secret + nonce).encode(), hashlib.sha256).hexdigest()
        return {"x-api-key": self.api_key, "x-nonce": nonce, "x-signature": signature}

    # -- internals --------------------------------------------------------------------------

    def _log(self, op: str, taskid: str | None) -> int:
        with self._lock:
            self._requests.append((op, taskid))
            return len(self._requests) - 1

    def _auth(self, request: Request) -> JSONResponse | None:
        """None when the request is authorised, else the documented HTTP 401 answer."""
        key = request.headers.get("x-api-key")
        if not key or not hmac.compare_digest(key.encode(), self.api_key.encode()):
            return JSONResponse(_err(0, "Project authorization is not founded."), status_code=401)
        if self.api_secret is None:
            return None  # an "API key only" project
        nonce = request.headers.get("x-nonce")
        signature = request.headers.get("x-signature")
        if not nonce or not signature:
            message = "Project requires signature authentication. x-signature and x-nonce headers are required."
            return JSONResponse(_err(0, message), status_code=401)
        # HMAC key = API key, message = API secret + nonce (no separator), lower-case hex [DOC]
        expected = hmac.new(self.api_key.encode(), (self.api_secret + nonce).encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(signature.encode(), expected.encode()):
            return JSONResponse(_err(0, "Project authorization is not valid."), status_code=401)
        return None

    def _find(self, body: dict) -> tuple[Task | None, str | None]:
        """The task named by taskid, tasktoken or socketaccesstoken; and the id to log."""
        taskid = body.get("taskid")
        token = body.get("tasktoken") or body.get("socketaccesstoken")
        with self._lock:
            if taskid not in (None, ""):
                taskid = str(taskid)
                return self._tasks.get(taskid), taskid
            if token:
                for task in self._tasks.values():
                    if task.token == token:
                        return task, task.taskid
        return None, None

    def _active(self) -> int:
        now = time.monotonic()
        return sum(1 for task in self._tasks.values() if not task._finished(task._view(now)))

    def _limit_message(self) -> str:
        # [DOC] code 96 text; the limit is max_concurrent (Wiro derives it from the balance)
        balance = self.balance_usd
        limit = self.max_concurrent if self.max_concurrent is not None else max(1, int(balance * 0.10))
        return (
            f"You have reached your concurrent task limit. With your current balance of ${balance:.2f}, "
            f"you can run up to {limit} tasks at the same time. Add funds to increase your limit."
        )

    # -- endpoints --------------------------------------------------------------------------

    def _build_app(self) -> FastAPI:
        app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

        @app.exception_handler(StarletteHTTPException)
        async def not_found(request: Request, exc: StarletteHTTPException):
            if exc.status_code in (404, 405):  # unknown endpoint (or a GET on a POST endpoint) [DOC]
                return JSONResponse(_err(0, "Error parsing url."), status_code=404)
            return JSONResponse(_err(0, str(exc.detail)), status_code=exc.status_code)

        @app.post("/v1/Run/{owner}/{model}")
        async def run(owner: str, model: str, request: Request):
            index = self._log("Run", None)
            body = await read_body(request)
            if denied := self._auth(request):
                return denied  # logged in requests, not in runs: nothing reached the project
            inputs, files, file_names = body if body is not None else ({}, {}, {})
            slug = f"{owner}/{model}".lower()  # slugs are matched case-insensitively
            record = {"model": slug, "inputs": inputs, "files": files, "taskid": None}
            with self._lock:
                self._runs.append(record)
            if body is None:
                return _err(0, "Request parameters are invalid.")

            fault = self._take(
                "run_http500", "run_code96", "run_code97", "run_timeout", "run_redirect", "run_html_200", *RUN_SHAPES
            )
            if fault == "run_redirect":
                return self.redirect_elsewhere(request)
            if fault == "run_http500":
                return _html_500()
            if fault == "run_code96":
                return _err(96, self._limit_message())
            if fault == "run_code97":
                return _err(97, "Insufficient balance")

            spec = MODELS.get(slug)
            if spec is None:
                return _err(1, "slug-owner-project-not-exist")  # [DOC]
            if invalid := spec.validate(inputs, files):
                return invalid

            sample_media(spec.media)  # made (and cached) now, not later while the lock is held
            with self._lock:
                if self.balance_usd < self.cost_per_task:
                    return _err(97, "Insufficient balance")
                if self.max_concurrent is not None and self._active() >= self.max_concurrent:
                    return _err(96, self._limit_message())
                queue_s, run_s = self.durations(slug, inputs) if self.durations else (self.queue_s, self.run_s)
                shape_fault = self._take(*TASK_FAULTS)
                owner_slug, project_slug = slug.split("/")
                task = Task(
                    taskid=str(next(self._ids)),
                    owner=owner_slug,
                    slug=project_slug,
                    spec=spec,
                    inputs=inputs,
                    files=files,
                    file_names=file_names,
                    queue_s=queue_s,
                    run_s=run_s,
                    shape=TASK_FAULTS[shape_fault] if shape_fault else None,
                    cost=self.cost_per_task,
                    base_url=self.root or "",
                    lock=self._lock,
                )
                self._tasks[task.taskid] = task
                record["taskid"] = task.taskid
                self._requests[index] = ("Run", task.taskid)
            # the cost is held from here; it is released if the task ends unbilled (see balance_usd)
            if fault == "run_timeout":
                await self._sleep(self.slow_s)
            if fault == "run_html_200":
                return Response(HTML_500.replace("500 ", ""), media_type="text/html")
            answer = {"result": True, "errors": [], "taskid": task.taskid, "socketaccesstoken": task.token}
            return JSONResponse(RUN_SHAPES[fault](answer)) if fault in RUN_SHAPES else answer

        async def lookup(op: str, request: Request) -> tuple[Task | None, dict | None]:
            """Shared start of Detail/Cancel/Kill: log the call, then (task, None) or (None, error body).

            Auth is checked by each endpoint after this, so that refused calls are logged too."""
            body = await read_body(request)
            task, taskid = self._find(body[0] if body else {})
            self._log(op, taskid)
            if body is None:
                return None, _err(0, "Request parameters are invalid.")
            if taskid is None and not (body[0].get("tasktoken") or body[0].get("socketaccesstoken")):
                return None, _err(0, "taskid or socketaccesstoken is required")  # [DOC]
            if task is None:
                return None, _err(1, "There is no task yet.")  # [DOC]
            return task, None

        @app.post("/v1/Task/Detail")
        async def detail(request: Request):
            task, error = await lookup("Detail", request)
            if denied := self._auth(request):
                return denied
            fault = self._take(
                "detail_http500", "detail_malformed", "detail_timeout", "detail_redirect", "detail_drip", *DETAIL_SHAPES
            )
            if fault is None and task is not None and task.finished and task.snapshot()["outputs"]:
                fault = self._take(*OUTPUT_SHAPES)
            if fault == "detail_redirect":
                return self.redirect_elsewhere(request)
            if fault == "detail_drip":
                return self.drip("application/json")
            if fault == "detail_http500":
                return _html_500()
            if fault == "detail_timeout":
                await self._sleep(self.slow_s)
            if error is not None:
                return error
            answer = {"result": True, "errors": [], "total": "1", "tasklist": [task.detail(self.detail_style)]}
            if fault == "detail_malformed":
                text = json.dumps(answer)
                return Response(text[: len(text) // 2], media_type="application/json")
            shapes = {**DETAIL_SHAPES, **OUTPUT_SHAPES}
            return JSONResponse(shapes[fault](answer)) if fault in shapes else answer

        @app.post("/v1/Task/Cancel")
        async def cancel(request: Request):
            task, error = await lookup("Cancel", request)
            if denied := self._auth(request):
                return denied
            if error is not None:
                return error
            with self._lock:
                # [DOC] only a task still in the queue stage can be cancelled; assigned ones need Kill
                if task._view(time.monotonic())["status"] not in QUEUED:
                    return _err(1, "Task is not in a cancellable state.")
                task._stopped = time.monotonic()
                task.cancelled = True
            return {"result": True, "errors": [], "tasklist": []}

        @app.post("/v1/Task/Kill")
        async def kill(request: Request):
            task, error = await lookup("Kill", request)
            if denied := self._auth(request):
                return denied
            if error is not None:
                return error
            with self._lock:
                view = task._view(time.monotonic())
                if view["status"] in QUEUED:
                    return _err(1, "Task could not be killed: task is not running yet, use Cancel.")
                if task._finished(view):
                    return _err(1, "Task could not be killed: task has already finished.")
                task._stopped = time.monotonic()  # [DOC] the worker stops; the task moves to task_cancel
                task.killed = True
            return {"result": True, "errors": [], "tasklist": []}

        @app.post("/v1/File/Upload")
        async def upload(request: Request):
            self._log("Upload", None)
            if denied := self._auth(request):
                return denied
            body = await read_body(request)
            if body is None or not isinstance(body[1].get("file"), bytes):
                return _err(0, "Request files [file] required")
            fields, files, names = body
            data, name = files["file"], str(names.get("file") or "file")
            file_id = str(next(self._ids))
            path = f"/files/uploads/{file_id}/{name}"
            url = (self.root or "") + path
            ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
            with self._lock:
                self._uploads[url] = data
                self._upload_types[path] = ctype
            item = {
                "id": file_id,
                "name": name,
                "contenttype": ctype,
                "size": str(len(data)),
                "parentid": str(fields.get("folderid") or fields.get("folderId") or ""),
                "url": url,
                "addedtime": str(int(time.time())),
                "accesskey": _token(),
            }
            return {"result": True, "errors": [], "list": [item]}

        add_elsewhere(app, self)

        @app.get("/files/{path:path}")
        async def download(path: str, request: Request):
            """The public "CDN": finished outputs and uploaded files, no auth."""
            self._visit(request)
            parts = path.split("/")
            taskid = parts[0] if len(parts) == 2 else None
            self._log("Download", taskid)
            data = ctype = None
            with self._lock:
                if parts[0] == "uploads":
                    url = f"{self.root}/files/{path}"
                    if url in self._uploads:
                        data, ctype = self._uploads[url], self._upload_types["/files/" + path]
                elif taskid in self._tasks:
                    task = self._tasks[taskid]
                    view = task._view(time.monotonic())
                    if view["outputs"] and parts[1] == task.spec.output_name:
                        data, ctype = sample_media(task.spec.media), task.spec.content_type
            if data is None:
                return Response("Not Found", status_code=404, media_type="text/plain")
            fault = self._take("download_broken", "download_http500", *HOSTILE_DOWNLOADS)
            if fault == "download_http500":
                return _html_500()
            if fault == "download_broken":
                return TruncatedResponse(data, media_type=ctype)
            if fault in HOSTILE_DOWNLOADS:
                return self.hostile_download(fault, request, data, ctype)
            return Response(data, media_type=ctype)

        return app
