"""A lane keeps its engine busy: the next row generates while the row before it is checked by ear and stored.

The lanes, batches and jobs as the flow runs them (``run_lanes`` over ``run_batch``, one row a batch, in a
lane's turn), without Prefect; the engine is a stand-in that notes when it generates, the check one that
notes when it listens.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path
from types import SimpleNamespace

from mediamill.backends import get_backend
from mediamill.config import RetryPolicy, Settings
from mediamill.generate import Slots, Verification, run_batch, run_lanes, verification_for
from mediamill.plan import validate
from mediamill.store import Store
from mediamill.verify.takes import TakeCheck, TakeVerifier

TIMED = "tests.helpers.fakes:TimedBackend"
LOG = logging.getLogger("test")


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    return min(a[1], b[1]) - max(a[0], b[0])


def _run(plan, store: Store, verification: Verification) -> tuple[list, dict[str, float]]:
    """Every row through the lanes; the outcomes, and when each row ended."""
    outcomes: list = []
    ended: dict[str, float] = {}

    async def done(outcome) -> None:
        ended[outcome.jobs[0].id] = time.monotonic()

    async def runner(groups, turn):
        outcomes.extend(await run_batch(groups, store, RetryPolicy(retries=0), LOG, done, verification, turn))
        return None

    async def unreached(groups, message):
        raise AssertionError(message)

    batches = [[[job]] for job in plan.jobs]
    asyncio.run(run_lanes(batches, {TIMED: Slots(TIMED, 1)}, runner, unreached, LOG))
    return outcomes, ended


def _checking(hold_s: float, fail_first_take_of: str | None = None):
    """A check that listens for ``hold_s`` and notes when; the first take of one row fails."""
    heard: list[tuple[str, int, float, float]] = []
    in_flight = {"now": 0, "most": 0}

    async def check(job, audio: Path) -> TakeCheck:
        in_flight["now"] += 1
        in_flight["most"] = max(in_flight["most"], in_flight["now"])
        started = time.monotonic()
        await asyncio.sleep(hold_s)
        in_flight["now"] -= 1
        heard.append((job.id, job.take, started, time.monotonic()))
        if job.id == fail_first_take_of and job.take == 0:
            return TakeCheck("fail", "test", "misread")
        return TakeCheck("pass", "test")

    return check, heard, in_flight


def test_the_next_row_generates_while_the_one_before_is_checked(write_manifest, tmp_path, monkeypatch):
    plan = validate(write_manifest("id,text\n" + "".join(f"r{i},Line {i}.\n" for i in range(5))), TIMED)
    engine = get_backend(TIMED)
    monkeypatch.setattr(engine, "hold_s", 0.6)  # generating takes longer than checking, as with Piper
    engine.spans.clear()
    check, heard, _ = _checking(0.4)
    outcomes, _ = _run(plan, Store(tmp_path / "out"), Verification(check))

    assert sorted(o.jobs[0].id for o in outcomes if o.ok) == [j.id for j in plan.jobs]
    made = {job_id: start for job_id, _, start, _ in engine.spans}
    checked = {job_id: end for job_id, _, _, end in heard}
    # Row i+1 started generating before row i's check was over: for every row but the last.
    assert all(made[f"r{i + 1}"] < checked[f"r{i}"] for i in range(4))
    # One generation at a time, always.
    spans = sorted((start, end) for _, _, start, end in engine.spans)
    assert all(b[0] >= a[1] for a, b in zip(spans, spans[1:]))


def test_a_retake_waits_for_the_engine_and_a_lane_holds_two_rows_at_most(write_manifest, tmp_path, monkeypatch):
    plan = validate(write_manifest("id,text\n" + "".join(f"r{i},Line {i}.\n" for i in range(5))), TIMED)
    engine = get_backend(TIMED)
    monkeypatch.setattr(engine, "hold_s", 0.1)
    engine.spans.clear()
    check, heard, _ = _checking(0.2, fail_first_take_of="r1")
    outcomes, ended = _run(plan, Store(tmp_path / "out"), Verification(check))

    assert all(o.ok for o in outcomes)
    assert {o.jobs[0].id: o.retakes for o in outcomes} == {"r0": 0, "r1": 1, "r2": 0, "r3": 0, "r4": 0}
    assert [(j, t) for j, t, _, _ in engine.spans].count(("r1", 1)) == 1
    spans = sorted((start, end) for _, _, start, end in engine.spans)
    assert all(b[0] >= a[1] for a, b in zip(spans, spans[1:]))  # the retake did not generate beside r2
    started = {job_id: start for job_id, take, start, _ in engine.spans if take == 0}
    for row, at in started.items():  # when a row started, at most one other was still in flight
        assert sum(started[o] < at < ended[o] for o in started if o != row) <= 1


def test_without_a_turn_a_batch_runs_its_rows_one_after_another(write_manifest, tmp_path, monkeypatch):
    plan = validate(write_manifest("id,text\n" + "".join(f"r{i},Line {i}.\n" for i in range(3))), TIMED)
    engine = get_backend(TIMED)
    monkeypatch.setattr(engine, "hold_s", 0.05)
    engine.spans.clear()
    check, heard, _ = _checking(0.1)
    groups = [[job] for job in plan.jobs]
    outcomes = asyncio.run(
        run_batch(groups, Store(tmp_path / "out"), RetryPolicy(retries=0), LOG, None, Verification(check))
    )
    assert [o.jobs[0].id for o in outcomes] == ["r0", "r1", "r2"]
    made = {job_id: start for job_id, _, start, _ in engine.spans}
    checked = {job_id: end for job_id, _, _, end in heard}
    assert made["r1"] >= checked["r0"] and made["r2"] >= checked["r1"]


def test_checks_run_on_the_verifiers_own_threads_whoever_asks(monkeypatch):
    """Recognisers keep a decoder per thread (pocketsphinx: about 30 MB each): checks asked for at once,
    beside other work in worker threads, still run on the one thread MEDIAMILL_VERIFY_CONCURRENCY=1 allows."""
    threads: set[int] = set()

    def check(self, audio, text, language):
        threads.add(threading.get_ident())
        time.sleep(0.02)
        return TakeCheck("pass", "test")

    monkeypatch.setattr(TakeVerifier, "check", check)
    verification = verification_for(Settings(verify="pocketsphinx", verify_concurrency=1))
    assert verification is not None
    job = SimpleNamespace(spoken="words", language="en", row=None, id="r", take=0)

    async def main():
        import anyio

        busy = [anyio.to_thread.run_sync(time.sleep, 0.05) for _ in range(4)]
        checks = [verification.check(job, Path("take.wav")) for _ in range(8)]  # type: ignore[arg-type]
        return await asyncio.gather(*busy, *checks)

    results = asyncio.run(main())
    assert all(r.passed for r in results[4:])
    assert len(threads) == 1
