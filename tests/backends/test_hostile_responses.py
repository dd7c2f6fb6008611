"""Hosted-API clients against hostile answers: oversized, endless and dripping downloads, wrong
content types, redirects, and API answers of the wrong shape, served by the Wiro and Pixazo
emulators over real HTTP.

Each row runs through ``attempt_row`` (what a Prefect task runs: the store, its scratch folders,
the journal, probing and the row's retries) without a Prefect server, so these tests stay quick.
Every case must end in bounded retries and a readable error, leaving nothing half-written.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from mediamill.backends import get_backend
from mediamill.config import RetryPolicy
from mediamill.generate import RowOutcome, attempt_row
from mediamill.plan import validate
from mediamill.store import Store
from tests.helpers.emulators.pixazo import PixazoEmulator
from tests.helpers.emulators.wiro import WiroEmulator
from tests.helpers.hosted import PIXAZO_KEY, WIRO_KEY, WIRO_SECRET, pixazo_env, point, wiro_env

CREDENTIAL_HEADERS = {"x-api-key", "x-nonce", "x-signature", "authorization", "ocp-apim-subscription-key", "cookie"}
DEADLINE_S = 1.0  # downloads and API answers, start to end
DRIP_S = 0.1  # far below every per-read timeout: only a total deadline can end a drip
LIMIT = 1024 * 1024  # MEDIAMILL_MAX_DOWNLOAD_MB=1; the emulators' sample files are far smaller
RAW_ERROR = re.compile(r"^(KeyError|TypeError|AttributeError|ValueError|IndexError|RuntimeError)\b")


@dataclass
class Hosted:
    name: str
    emulator: WiroEmulator | PixazoEmulator

    @property
    def downloads(self) -> list[dict]:
        return [v for v in self.emulator.visits if v["path"].startswith("/files/")]

    @property
    def paid(self) -> int:
        """Generations the service was asked for (and could bill)."""
        if isinstance(self.emulator, WiroEmulator):
            return len([r for r in self.emulator.runs if r["taskid"]])
        return len(self.emulator.requests)


@pytest.fixture
def limits(monkeypatch):
    monkeypatch.setenv("MEDIAMILL_MAX_DOWNLOAD_MB", "1")
    monkeypatch.setenv("MEDIAMILL_DOWNLOAD_TIMEOUT_S", str(DEADLINE_S))


@pytest.fixture
def wiro(monkeypatch, limits):
    with WiroEmulator(api_key=WIRO_KEY, api_secret=WIRO_SECRET, queue_s=0.05, run_s=0.15) as emulator:
        emulator.drip_s = DRIP_S
        point(
            monkeypatch,
            "wiro",
            wiro_env(
                emulator.url, WIRO_POLL_MAX_S="0.1", WIRO_POLL_FAILURES="2", WIRO_REQUEST_TIMEOUT_S=str(DEADLINE_S)
            ),
        )
        yield Hosted("wiro", emulator)


@pytest.fixture
def pixazo(monkeypatch, limits):
    with PixazoEmulator(api_key=PIXAZO_KEY, latency_s=0.01) as emulator:
        emulator.drip_s = DRIP_S
        point(monkeypatch, "pixazo", pixazo_env(emulator.url, PIXAZO_TIMEOUT_S=str(DEADLINE_S)))
        yield Hosted("pixazo", emulator)


@pytest.fixture(params=["wiro", "pixazo"])
def hosted(request) -> Hosted:
    return request.getfixturevalue(request.param)


def attempt(hosted: Hosted, tmp_path: Path, retries: int = 1) -> RowOutcome:
    """One speech row through the row runner, with ``retries`` quick retries."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    manifest = tmp_path / "hostile.csv"
    manifest.write_text("id,text\ns0,A line for a hostile service.\n")
    (job,) = validate(manifest, hosted.name).jobs
    policy = RetryPolicy(retries=retries, delay_s=0.01, jitter=0)

    async def go() -> RowOutcome:
        try:
            return await attempt_row([job], Store(tmp_path / "out"), policy, logging.getLogger("test"))
        finally:
            await get_backend(hosted.name).close()

    return asyncio.run(go())


def assert_failed_cleanly(outcome: RowOutcome, message: str, attempts: int, out: Path) -> None:
    assert not outcome.ok
    assert message in outcome.error, outcome.error
    assert outcome.attempts == attempts, outcome.errors
    assert not any(RAW_ERROR.match(e) for e in outcome.errors), outcome.errors
    assert_nothing_half_written(out)


def assert_nothing_half_written(out: Path) -> None:
    """No media, part or scratch file anywhere: only the journal (a note of paid work) may stay."""
    store = out / ".store"
    tmp = store / "tmp"
    assert not tmp.exists() or list(tmp.iterdir()) == []
    files = [p for p in out.rglob("*") if p.is_file() and not p.is_relative_to(store / "journal")]
    assert [p for p in files if not p.is_relative_to(store / "claims")] == []


# -- downloads ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        # refused on its Content-Length: the body would break off early, a retriable error, if it were read
        ("download_huge", f"download of {8 * 1024**3} bytes exceeds the {LIMIT}-byte limit"),
        ("download_endless", f"download exceeds the {LIMIT}-byte limit"),  # chunked, no length: cut at the cap
        ("download_html", "download is 'text/html', not audio or video"),
        ("download_json", "download is 'application/json', not audio or video"),
        ("download_garbage", "returned unusable media"),  # octet-stream is accepted, then probed
        ("download_untyped", "returned unusable media"),  # so is a missing type
        ("download_bad_scheme", "download refused: a 'file' URL (redirected from 127.0.0.1"),
        ("download_loop", "redirected more than 5 times"),
    ],
)
def test_a_hostile_download_is_refused_at_once(hosted, tmp_path, fault, message):
    hosted.emulator.inject(fault)
    outcome = attempt(hosted, tmp_path)
    # Refusals are permanent: retrying would fetch (and for a fresh Pixazo row, pay for) the same thing.
    assert_failed_cleanly(outcome, message, attempts=1, out=tmp_path / "out")
    assert hosted.paid == 1
    assert len(hosted.downloads) == (6 if fault == "download_loop" else 1)  # the first hop and 5 redirects


def test_a_dripping_download_ends_at_its_deadline_and_is_retried_a_bounded_number_of_times(hosted, tmp_path):
    hosted.emulator.inject("download_drip", 10)
    started = time.monotonic()
    outcome = attempt(hosted, tmp_path, retries=1)
    assert_failed_cleanly(outcome, f"did not finish within {DEADLINE_S:g} s", attempts=2, out=tmp_path / "out")
    assert time.monotonic() - started < 2 * DEADLINE_S + 3
    assert len(hosted.downloads) == 2  # once per row attempt
    assert hosted.paid == 1  # the retry fetched the noted result again; it did not generate anew


def test_a_download_redirected_to_another_host_arrives_without_credentials(hosted, tmp_path):
    hosted.emulator.inject("download_offsite")
    outcome = attempt(hosted, tmp_path)
    assert outcome.ok, outcome.errors
    first, second = hosted.downloads
    assert first["host"].startswith("127.0.0.1:") and second["host"].startswith("localhost:")
    assert all(CREDENTIAL_HEADERS.isdisjoint(visit["headers"]) for visit in hosted.emulator.visits)


# -- API calls --------------------------------------------------------------------------------------


def test_api_redirects_are_not_followed_so_the_key_stays_home(wiro, pixazo, tmp_path):
    # The trap is real: a client that follows a redirect sends a custom key header to the other host.
    emulator = wiro.emulator
    emulator.inject("run_redirect")
    httpx.post(
        f"{emulator.url}/Run/openbmb/voxcpm",
        json={"prompt": "hi"},
        headers=emulator.auth_headers(),
        follow_redirects=True,
    )
    (visit,) = emulator.visits
    assert visit["host"].startswith("localhost:") and visit["headers"]["x-api-key"] == WIRO_KEY

    emulator.inject("run_redirect")
    outcome = attempt(wiro, tmp_path / "run")
    assert_failed_cleanly(
        outcome,
        "wiro Run/openbmb/voxcpm: answered with a redirect (HTTP 307) to localhost:",
        1,
        tmp_path / "run" / "out",
    )
    assert "check WIRO_BASE_URL" in outcome.error and wiro.paid == 0

    emulator.inject("detail_redirect", 100)
    outcome = attempt(wiro, tmp_path / "detail")
    assert_failed_cleanly(outcome, "wiro Task/Detail: answered with a redirect", 1, tmp_path / "detail" / "out")

    pixazo.emulator.inject("redirect")
    outcome = attempt(pixazo, tmp_path / "px")
    assert_failed_cleanly(
        outcome, "pixazo text-to-speech: answered with a redirect (HTTP 307)", 1, tmp_path / "px" / "out"
    )
    assert "check PIXAZO_BASE_URL" in outcome.error

    assert len(emulator.visits) == 1 and pixazo.emulator.visits == []  # only the trap's own visit


def test_a_dripping_status_check_ends_at_its_deadline(wiro, tmp_path):
    wiro.emulator.inject("detail_drip", 100)
    started = time.monotonic()
    outcome = attempt(wiro, tmp_path, retries=1)
    assert_failed_cleanly(outcome, f"wiro Task/Detail: no complete answer within {DEADLINE_S:g} s", 2, tmp_path / "out")
    (task,) = wiro.emulator.tasks.values()
    assert wiro.emulator.detail_count(task.taskid) == 4  # WIRO_POLL_FAILURES per attempt, 2 attempts
    assert wiro.paid == 1  # the retry resumed the task, it never submitted another
    assert time.monotonic() - started < 4 * DEADLINE_S + 4


def test_a_dripping_pixazo_call_ends_at_its_deadline(pixazo, tmp_path):
    pixazo.emulator.inject("drip", 100)
    outcome = attempt(pixazo, tmp_path, retries=1)
    assert_failed_cleanly(
        outcome, f"pixazo text-to-speech: no complete answer within {DEADLINE_S:g} s", 2, tmp_path / "out"
    )
    assert pixazo.paid == 2


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        # A Run that was accepted but answered unreadably may have made a task: never resubmitted.
        ("run_list", "wiro Run/openbmb/voxcpm: answered a JSON list, not an object; a task may have started"),
        ("run_taskid_object", "wiro Run/openbmb/voxcpm: answered without a usable taskid (dict"),
        ("run_html_200", "wiro Run/openbmb/voxcpm: malformed JSON (HTTP 200); a task may have started"),
    ],
)
def test_an_unreadable_run_answer_fails_without_paying_twice(wiro, tmp_path, fault, message):
    wiro.emulator.inject(fault, 100)
    started = time.monotonic()
    outcome = attempt(wiro, tmp_path, retries=2)
    assert_failed_cleanly(outcome, message, attempts=1, out=tmp_path / "out")
    assert "check Wiro before rerunning" in outcome.error
    assert wiro.paid == 1
    assert time.monotonic() - started < 5  # a taskid of the wrong type was once polled for 30 s


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("detail_list", "wiro Task/Detail: answered a JSON list, not an object"),
        ("detail_no_tasklist", "wiro Task/Detail answered without the task (tasklist: missing)"),
        ("detail_malformed", "wiro Task/Detail: malformed JSON (HTTP 200)"),  # truncated
        # an unknown status was polled until the task timeout (an hour), then killed
        ("detail_status_numeric", "wiro Task/Detail answered a status that is no text (int '7')"),
        ("detail_outputs_string", "finished without a usable output URL (outputs: str 'http://"),
        ("detail_output_url_object", "finished without a usable output URL"),  # was a TypeError
    ],
)
def test_a_misshapen_status_answer_is_retried_then_fails_clearly(wiro, tmp_path, fault, message):
    wiro.emulator.inject(fault, 100)
    outcome = attempt(wiro, tmp_path, retries=1)
    assert_failed_cleanly(outcome, message, attempts=2, out=tmp_path / "out")
    assert wiro.paid == 1  # retries look at the same task again
    assert wiro.downloads == []


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("list", "pixazo text-to-speech: answered a JSON list, not an object"),
        ("no_output", "pixazo text-to-speech: answered without an http(s) output URL ({'status': 'success'})"),
        ("output_object", "pixazo text-to-speech: answered without an http(s) output URL"),
        ("html_200", "pixazo text-to-speech: malformed JSON (HTTP 200)"),
        ("malformed", "pixazo text-to-speech: malformed JSON (HTTP 200)"),  # truncated
    ],
)
def test_a_misshapen_pixazo_answer_is_retried_then_fails_clearly(pixazo, tmp_path, fault, message):
    pixazo.emulator.inject(fault, 100)
    outcome = attempt(pixazo, tmp_path, retries=1)
    assert_failed_cleanly(outcome, message, attempts=2, out=tmp_path / "out")
    assert pixazo.paid == 2 and pixazo.downloads == []


def test_a_transient_misshapen_answer_is_survived(wiro, pixazo, tmp_path):
    wiro.emulator.inject("detail_status_numeric")  # one bad status check among many
    assert attempt(wiro, tmp_path / "w").ok
    pixazo.emulator.inject("list")  # one bad answer: the row's retry generates again
    outcome = attempt(pixazo, tmp_path / "p")
    assert outcome.ok and outcome.attempts == 2


def test_idle_connections_are_let_go_before_the_server_closes_them():
    """uvicorn (like httpx's default) drops an idle connection after 5 s: a client that kept it as long could send
    a submission just as it closes, and have to fail that row as possibly paid. Ours lets go first."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from mediamill.backends.hosted import KEEPALIVE_S, LoopClients
    from tests.helpers.emulators.server import ServerThread

    async def port(request) -> JSONResponse:  # which connection the request came on
        return JSONResponse({"port": request.client.port})

    app = Starlette(routes=[Route("/port", port)])

    async def ports(url: str) -> list[int]:
        client = LoopClients().get()
        first = (await client.get(f"{url}/port")).json()["port"]
        again = (await client.get(f"{url}/port")).json()["port"]
        await asyncio.sleep(KEEPALIVE_S + 0.5)  # idle past our expiry, well within the server's 5 s
        later = (await client.get(f"{url}/port")).json()["port"]
        await client.aclose()
        return [first, again, later]

    with ServerThread(app) as server:
        first, again, later = asyncio.run(ports(server.url))
    assert again == first  # a busy connection is reused
    assert later != first  # an idle one was let go before the server's timeout
    assert KEEPALIVE_S < 5.0
