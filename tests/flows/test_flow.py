"""The produce flow on a real Prefect API: end to end, resume, retries, failures, limits."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate

from mediamill.backends import get_backend
from mediamill.generate import limit_name
from mediamill.media.probe import probe
from mediamill.report import SCHEMA
from mediamill.store import Store
from tests.helpers.runs import results, run

pytestmark = pytest.mark.usefixtures("prefect_api")

FLAKY = "tests.helpers.fakes:FlakyBackend"
BROKEN = "tests.helpers.fakes:BrokenBackend"
REFUSING = "tests.helpers.fakes:RefusingBackend"
COUNTING = "tests.helpers.fakes:CountingBackend"
SLOW = "tests.helpers.fakes:SlowFleetBackend"
LOOP_BOUND = "tests.helpers.fakes:LoopBoundBackend"
HOLD = '{""hold_s"": 4}'  # a row's options (CSV-quoted JSON): it takes 4 s


def store_files(outputs: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in (outputs / ".store" / "objects").rglob("*") if p.is_file()}


def test_demo_audiobook_end_to_end_and_rerun_generates_nothing(demo_copy, tmp_path):
    out = tmp_path / "out"
    state = run(demo_copy, out)
    assert state.is_completed(), state.message

    rows = results(out, "audiobook")
    assert pq.read_table(out / "audiobook" / "results.parquet").schema.names == SCHEMA.names
    assert len(rows) == 16 and {r["status"] for r in rows} == {"done"}
    assert all(r["attempts"] == 1 and r["cost_usd"] == 0 and r["audio_s"] > 1 for r in rows)
    assert all((out / "audiobook" / r["output"]).is_file() for r in rows)

    book = probe(out / "audiobook" / "audiobook.m4b")
    assert book.audio_codec == "aac"
    assert book.tags["title"] == "The Lamplighter of Harrow Street"
    assert book.tags["artist"] == "Mara Ellison"
    assert [c.title for c in book.chapters] == ["Chapter One: The Last Lamp", "Chapter Two: The Electric Men"]

    # Each chapter lasts as long as its lines plus their pauses (0.6 s, 0.9 s where set, 2 s at the end).
    chapter_files = sorted((out / "audiobook" / "chapters").glob("*.flac"))
    assert [p.name for p in chapter_files] == [
        "01-chapter-one-the-last-lamp.flac",
        "02-chapter-two-the-electric-men.flac",
    ]
    for mark, flac in zip(book.chapters, chapter_files):
        ours = [r for r in rows if r["chapter"] == mark.title]
        pauses = [0.9 if r["id"] in ("ch1-005", "ch2-005") else 0.6 for r in ours[:-1]] + [2.0]
        expected = sum(r["audio_s"] for r in ours) + sum(pauses)
        assert probe(flac).duration_s == pytest.approx(expected, abs=0.01)
        assert mark.end_s - mark.start_s == pytest.approx(expected, abs=0.05)
    assert book.duration_s == pytest.approx(book.chapters[-1].end_s, abs=0.1)

    before = store_files(out)
    m4b_mtime = (out / "audiobook" / "audiobook.m4b").stat().st_mtime_ns
    state = run(demo_copy, out)
    assert state.is_completed()
    assert {r["status"] for r in results(out, "audiobook")} == {"cached"}
    assert store_files(out) == before  # nothing generated or rewritten
    assert (out / "audiobook" / "audiobook.m4b").stat().st_mtime_ns == m4b_mtime  # nor re-stitched
    summary = json.loads((out / "audiobook" / "summary.json").read_text())
    assert summary["cached"] == 16 and summary["done"] == 0


def test_a_row_that_fails_twice_then_succeeds_is_retried(write_manifest, tmp_path, fast_retries):
    path = write_manifest(f"id,text,backend\nr1,Flaky one.,{FLAKY}\nr2,Flaky two.,{FLAKY}\n", name="flaky")
    get_backend(FLAKY).calls.clear()  # the engine is process-wide: other tests' rows are in its count
    state = run(path, tmp_path / "out")
    assert state.is_completed(), state.message
    rows = results(tmp_path / "out", "flaky")
    assert [(r["status"], r["attempts"]) for r in rows] == [("done", 3), ("done", 3)]
    assert set(get_backend(FLAKY).calls.values()) == {3}


def test_a_row_that_always_fails_is_marked_failed_and_the_rest_finish(write_manifest, tmp_path, fast_retries):
    path = write_manifest(
        f"""
id,chapter,text,backend
a1,Good,Line one.,{BROKEN}
a2,,Line two.,{BROKEN}
b1,Bad,This line will FAIL.,{BROKEN}
b2,,Line four.,{BROKEN}
""",
        name="partial",
    )
    out = tmp_path / "out"
    state = run(path, out)
    assert state.is_failed()
    assert state.message.startswith("1 of 4 rows failed")
    assert "chapters not stitched: Bad" in state.message
    rows = {r["id"]: r for r in results(out, "partial")}
    assert rows["b1"]["status"] == "failed"
    assert rows["b1"]["attempts"] == 4  # the first try and three retries
    assert rows["b1"]["error"] == "engine exploded on this line"
    assert rows["b1"]["output"] is None
    assert all(rows[i]["status"] == "done" for i in ("a1", "a2", "b2"))
    assert (out / "partial" / "chapters" / "01-good.flac").is_file()
    assert not (out / "partial" / "chapters" / "02-bad.flac").exists()
    assert not (out / "partial" / "partial.m4b").exists()
    csv_text = (out / "partial" / "results.csv").read_text()
    assert "engine exploded on this line" in csv_text

    # A rerun tries only the failed row again.
    broken = get_backend(BROKEN)
    calls = dict(broken.calls)
    state = run(path, out)
    assert state.is_failed()
    changed = {k for k in broken.calls if broken.calls[k] != calls.get(k)}
    assert changed == {rows["b1"]["key"]}
    assert {r["id"]: r["status"] for r in results(out, "partial")} == {
        "a1": "cached",
        "a2": "cached",
        "b1": "failed",
        "b2": "cached",
    }


def test_a_permanent_error_is_not_retried(write_manifest, tmp_path, fast_retries):
    path = write_manifest(f"id,text,backend\nx,No credit left.,{REFUSING}\n", name="refused")
    state = run(path, tmp_path / "out")
    assert state.is_failed()
    (row,) = results(tmp_path / "out", "refused")
    assert (row["status"], row["attempts"], row["error"]) == ("failed", 1, "insufficient balance")
    assert list(get_backend(REFUSING).calls.values()) == [1]


def test_per_backend_concurrency_limit_holds(write_manifest, tmp_path, monkeypatch):
    body = "".join(f"r{i},Line number {i} for the limit test.,{COUNTING}\n" for i in range(10))
    path = write_manifest("id,text,backend\n" + body, name="limits")
    backend = get_backend(COUNTING)

    monkeypatch.setenv("MEDIAMILL_CONCURRENCY", json.dumps({COUNTING: 2}))
    backend.max_in_flight = 0
    assert run(path, tmp_path / "two").is_completed()
    assert backend.max_in_flight == 2

    monkeypatch.setenv("MEDIAMILL_CONCURRENCY", "{}")  # the backend's default, 4
    backend.max_in_flight = 0
    assert run(path, tmp_path / "four").is_completed()
    assert backend.max_in_flight == 4


def test_limits_live_on_the_prefect_server_when_one_is_configured(write_manifest, tmp_path, monkeypatch):
    # Enough rows, long enough, that the last slot is still worth having when the test server's
    # SQLite (slow while it records task runs) gets round to granting it.
    body = "".join(f"s{i},Sentence {i} under a server limit.,{COUNTING}\n" for i in range(9))
    path = write_manifest("id,text,backend\n" + body, name="server-limits")
    backend = get_backend(COUNTING)
    server_limit = limit_name(COUNTING, "machine")
    monkeypatch.setattr(backend, "hold_s", 3.0)
    monkeypatch.setenv("MEDIAMILL_LIMITS", "auto")

    # The first run creates the limit from the settings ...
    monkeypatch.setenv("MEDIAMILL_CONCURRENCY", json.dumps({COUNTING: 2}))
    backend.max_in_flight = 0
    assert run(path, tmp_path / "two").is_completed()
    assert backend.max_in_flight == 2
    assert read_limit(server_limit) == 2

    # ... and from then on the server's value counts, whatever a worker's settings say: an operator raises it.
    monkeypatch.setenv("MEDIAMILL_CONCURRENCY", json.dumps({COUNTING: 1}))
    set_limit(server_limit, 3)
    backend.max_in_flight = 0
    assert run(path, tmp_path / "three").is_completed()
    assert backend.max_in_flight == 3


def read_limit(name: str) -> int:
    async def read() -> int:
        async with get_client() as client:
            return (await client.read_global_concurrency_limit_by_name(name)).limit

    return asyncio.run(read())


def set_limit(name: str, limit: int) -> None:
    async def update() -> None:
        async with get_client() as client:
            await client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(limit=limit))

    asyncio.run(update())


def test_rows_with_the_same_content_are_generated_once(write_manifest, tmp_path):
    path = write_manifest(
        f"id,text,backend\none,The same words.,{COUNTING}\ntwo,The same words.,{COUNTING}\nthree,Other words.,{COUNTING}\n",
        name="dupes",
    )
    backend = get_backend(COUNTING)
    before = dict(backend.calls)
    assert run(path, tmp_path / "out").is_completed()
    rows = {r["id"]: r for r in results(tmp_path / "out", "dupes")}
    assert rows["one"]["key"] == rows["two"]["key"]
    assert sum(backend.calls.values()) - sum(before.values()) == 2
    assert {rows["one"]["status"], rows["two"]["status"]} == {"done", "cached"}
    assert (tmp_path / "out" / "dupes" / "segments" / "two.wav").is_file()


def test_an_invalid_manifest_fails_the_flow_before_writing_anything(write_manifest, tmp_path):
    path = write_manifest("id,text\nok,Fine.\n../bad,\n", name="invalid")
    state = run(path, tmp_path / "out")
    assert state.is_failed()
    assert "invalid.csv: 2 problems" in state.message
    assert "row 2 (line 3), column 'text': is required and empty" in state.message
    assert not (tmp_path / "out").exists()


def test_partial_store_entries_are_not_taken_as_done(write_manifest, tmp_path):
    path = write_manifest("id,text\nonly,A short line to plant a partial file for.\n", name="partial_store")
    out = tmp_path / "out"
    from mediamill.plan import validate

    job = validate(path, "silence").jobs[0]
    folder = out / ".store" / "objects" / job.key[:2]
    folder.mkdir(parents=True)
    (folder / f"{job.key}.wav").write_bytes(b"RIFF\x00\x00")  # a kill mid-write, no JSON record
    assert Store(out).get(job.key) is None
    assert run(path, out, backend="silence").is_completed()
    entry = Store(out).get(job.key)
    assert entry is not None and entry.duration_s > 1
    assert results(out, "partial_store")[0]["status"] == "done"


def test_sweep_produces_new_and_changed_manifests_each_in_its_own_subflow(tmp_path):
    from mediamill.flows import sweep

    inbox, out = tmp_path / "inbox", tmp_path / "out"
    (inbox / "later").mkdir(parents=True)
    (inbox / "good.csv").write_text(f"id,text,backend\na,First words.,{COUNTING}\nb,Second words.,{COUNTING}\n")
    (inbox / "later" / "bad.csv").write_text(f"id,text,backend\na,,{COUNTING}\n")  # empty text
    (inbox / ".hidden").mkdir()
    (inbox / ".hidden" / "ignored.csv").write_text("not a manifest")

    state = asyncio.run(sweep(inbox=str(inbox), outputs=str(out), return_state=True))
    assert state.is_failed()
    assert "1 of 2 manifests failed" in state.message and "bad.csv" in state.message and "text" in state.message
    assert [r["status"] for r in results(out, "good")] == ["done", "done"]
    assert not (out / "bad").exists()  # nothing written for a manifest that fails validation

    # Nothing changed in good.csv: the next sweep leaves it alone and reports bad.csv again.
    state = asyncio.run(sweep(inbox=str(inbox), outputs=str(out), return_state=True))
    assert state.is_failed() and "1 of 1 manifests failed" in state.message

    # Fixed and changed: both are produced; the unchanged row comes from the store.
    (inbox / "later" / "bad.csv").write_text(f"id,text,backend\na,Now it has words.,{COUNTING}\n")
    (inbox / "good.csv").write_text(f"id,text,backend\na,First words.,{COUNTING}\nb,New second words.,{COUNTING}\n")
    state = asyncio.run(sweep(inbox=str(inbox), outputs=str(out), return_state=True))
    assert state.is_completed(), state.message
    assert [r["status"] for r in results(out, "good")] == ["cached", "done"]
    assert [r["status"] for r in results(out, "bad")] == ["done"]
    assert asyncio.run(sweep(inbox=str(inbox), outputs=str(out), return_state=True)).message.startswith("0 manifests")

    # A new manifest named like a produced one would overwrite its outputs: refused, the other left alone.
    (inbox / "later" / "good.csv").write_text(f"id,text,backend\nz,Another book entirely.,{COUNTING}\n")
    state = asyncio.run(sweep(inbox=str(inbox), outputs=str(out), return_state=True))
    assert state.is_failed() and "same name" in state.message
    assert [r["id"] for r in results(out, "good")] == ["a", "b"]


def test_a_sweep_here_produces_its_manifests_at_once_within_one_limit(tmp_path, monkeypatch):
    """Without a fleet, a sweep runs its manifests concurrently in its own process (MEDIAMILL_SWEEP_IN_FLIGHT at
    a time), and an engine's limit holds across them: never more rows at once than the limit."""
    from mediamill.flows import sweep

    events = tmp_path / "events.log"
    monkeypatch.setenv("MEDIAMILL_TEST_EVENTS", str(events))
    monkeypatch.setenv("MEDIAMILL_CONCURRENCY", json.dumps({SLOW: 2}))
    monkeypatch.setenv("MEDIAMILL_SWEEP_IN_FLIGHT", "3")
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    names = ("one", "two", "three", "four")
    for name in names:
        # Rows long enough to outlast the next manifest's start (seconds on SQLite when runs collide).
        (inbox / f"{name}.csv").write_text(f'id,text,backend,options\n{name},The line of {name}.,{SLOW},"{HOLD}"\n')

    state = asyncio.run(sweep(inbox=str(inbox), outputs=str(out), return_state=True))
    assert state.is_completed(), state.message
    assert state.message.startswith("4 manifests produced")

    lines = sorted(line.split() for line in events.read_text().splitlines())
    assert sorted(row for _, what, _, row in lines if what == "start") == sorted(names)  # each made once
    in_flight, peak = 0, 0
    for _, what, _, _ in lines:
        in_flight += {"start": 1, "end": -1}.get(what, 0)
        peak = max(peak, in_flight)
    # One row per manifest: two at once is two manifests at once, and three in flight stay within the limit.
    assert peak == 2
    for name in names:
        assert [r["status"] for r in results(out, name)] == ["done"]


def test_manifests_swept_at_once_close_a_shared_engine_after_the_last(tmp_path):
    """An engine's HTTP client belongs to the event loop: the first manifest of a sweep to finish must not
    close it under the rows of the others."""
    from mediamill.flows import sweep

    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    (inbox / "quick.csv").write_text(f"id,text,backend\nq1,A quick line.,{LOOP_BOUND}\n")
    (inbox / "long.csv").write_text(f"id,text,backend\nl1,A longer line.,{LOOP_BOUND}\nl2,Another.,{LOOP_BOUND}\n")
    closed = []

    async def sweep_and_look():
        state = await sweep(inbox=str(inbox), outputs=str(out), return_state=True)
        closed.append(asyncio.get_running_loop() in get_backend(LOOP_BOUND).closed)
        return state

    state = asyncio.run(sweep_and_look())
    assert state.is_completed(), state.message
    assert [r["status"] for r in results(out, "long")] == ["done", "done"]
    assert closed == [True]  # closed in the end, once no row needed it


def test_a_server_too_busy_for_slots_is_retried_then_fails_rows_not_the_run(write_manifest, tmp_path, monkeypatch):
    import httpx

    from mediamill.flows import limits

    real = limits.PrefectLeases.lease
    refusals = {"left": 2}

    async def busy_server(self, slots, duration_s):
        if refusals["left"] > 0:
            refusals["left"] -= 1
            request = httpx.Request("POST", "http://prefect/api/v2/concurrency_limits/increment-with-lease")
            response = httpx.Response(503, request=request)
            raise httpx.HTTPStatusError("Server error '503 Service Unavailable'", request=request, response=response)
        return await real(self, slots, duration_s)

    monkeypatch.setattr(limits.PrefectLeases, "lease", busy_server)
    monkeypatch.setattr("mediamill.core.waits.jittered", lambda delay, jitter: 0.01)  # no need to wait here
    monkeypatch.setenv("MEDIAMILL_LIMITS", "auto")
    path = write_manifest(f"id,text,backend\nx1,One.,{COUNTING}\nx2,Two.,{COUNTING}\n", name="busy")
    assert run(path, tmp_path / "ok").is_completed()  # two refusals, then slots
    assert refusals["left"] == 0

    refusals["left"] = 10**6  # a server that never answers
    state = run(path.with_name("busy.csv"), tmp_path / "down")
    assert state.is_failed() and "2 of 2 rows failed" in state.message
    rows = results(tmp_path / "down", "busy")
    assert all(r["status"] == "failed" and "no slot of mediamill-" in r["error"] and "503" in r["error"] for r in rows)
