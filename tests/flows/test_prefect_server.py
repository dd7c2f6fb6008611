"""mediamill on Prefect's own machinery: a real `prefect server`, work pools, `prefect deploy`
from prefect.yaml, and two process workers picking up the runs.

One server and two workers serve every test here; all of them are stopped at the end, even
when a test fails.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pyarrow.parquet as pq
import pytest

from tests.helpers import hosted
from tests.helpers.emulators.wiro import WiroEmulator
from tests.helpers.fleet import Fleet, stop_process
from tests.helpers.paths import MANIFESTS, ROOT

pytestmark = pytest.mark.slow

SLOW = "tests.helpers.fakes:SlowFleetBackend"
LIMIT = 2
HOLD = '{""hold_s"": 4}'  # a row's options (CSV-quoted JSON): it takes 4 s


@pytest.fixture(scope="module")
def wiro() -> Iterator[WiroEmulator]:
    """The Wiro the workers know (each test that runs hosted rows itself brings its own)."""
    with WiroEmulator(queue_s=0.5, run_s=2.0) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, wiro) -> Iterator[Fleet]:
    # Leases of the shortest allowed length: a flow run killed without giving its slots back (a killed worker's)
    # holds them until its lease ends, and the tests that kill wait for that.
    fleet = Fleet(
        tmp_path_factory.mktemp("fleet"),
        MEDIAMILL_CONCURRENCY=json.dumps({SLOW: LIMIT}),
        MEDIAMILL_LEASE_S="60",
        **hosted.wiro_env(wiro.url, WIRO_POLL_INITIAL_S="0.5", WIRO_POLL_MAX_S="1"),
    )
    try:
        fleet.start(workers=2)  # one flow run at a time each, so two runs land on two workers
        yield fleet
    finally:
        fleet.stop()


def test_deployments_from_prefect_yaml(fleet):
    deployments = {d["name"]: d for d in fleet.api("POST", "/deployments/filter", json={})}
    assert set(deployments) == {"produce", "produce-gpu", "produce-rows", "produce-rows-gpu", "sweep"}
    assert deployments["produce-gpu"]["job_variables"]["env"]["VOXCPM_DEVICE"] == "auto"
    (schedule,) = deployments["sweep"]["schedules"]
    assert schedule["schedule"]["cron"] == "0 2 * * *" and schedule["active"] is False


def test_two_workers_on_one_manifest_generate_no_row_twice(fleet, tmp_path):
    book = tmp_path / "manifests"
    shutil.copytree(MANIFESTS, book)
    runs = [fleet.trigger("produce/produce", manifest=str(book / "audiobook.csv")) for _ in range(2)]
    states = fleet.wait(runs)
    assert all(r["state"]["type"] == "COMPLETED" for r in states.values()), [
        (r["state"]["type"], r["state"].get("message")) for r in states.values()
    ]
    picked = {n for n in (1, 2) for rid in runs if fleet.ran(f"worker-{n}", rid)}
    assert picked == {1, 2}  # one run on each worker, at the same time

    tables = [fleet.artifact(rid, "audiobook-results") for rid in runs]
    ids = [row["id"] for row in tables[0]]
    assert len(ids) == 16 and [row["id"] for row in tables[1]] == ids
    for i, row_id in enumerate(ids):
        statuses = sorted(t[i]["status"] for t in tables)
        assert statuses == ["cached", "done"], (row_id, statuses)  # made once, by one of the two runs
    final = pq.read_table(fleet.outputs / "audiobook" / "results.parquet").to_pylist()
    assert {r["status"] for r in final} <= {"done", "cached"} and len(final) == 16
    assert (fleet.outputs / "audiobook" / "audiobook.m4b").stat().st_size > 0


def test_a_limit_of_n_holds_across_two_workers(fleet, tmp_path):
    runs = []
    for name in ("left", "right"):
        path = tmp_path / f"{name}.csv"
        path.write_text("id,text,backend\n" + "".join(f"{name}{i},Row {i} of {name}.,{SLOW}\n" for i in range(4)))
        runs.append(fleet.trigger("produce/produce", manifest=str(path)))
    states = fleet.wait(runs)
    assert all(r["state"]["type"] == "COMPLETED" for r in states.values()), [
        (r["state"]["type"], r["state"].get("message")) for r in states.values()
    ]

    events = sorted(line.split() for line in fleet.events.read_text().splitlines())
    in_flight, peak, pids = 0, 0, set()
    for _, what, pid, _row in events:
        in_flight += {"start": 1, "end": -1}.get(what, 0)
        peak = max(peak, in_flight)
        pids.add(pid)
    assert len(pids) == 2  # two flow-run processes, one per worker, ran rows ...
    assert peak == LIMIT  # ... and together never more than the limit (each alone would allow 2)
    gcl = fleet.api("GET", f"/v2/concurrency_limits/mediamill-{SLOW.replace(':', '-')}")
    assert gcl["limit"] == LIMIT and gcl["active_slots"] == 0


def test_a_sweep_hands_its_manifests_to_both_workers_and_a_bad_one_fails_alone(fleet, tmp_path):
    """`mediamill sweep` on a fleet's server: each manifest a child run of produce/produce, taken by whichever
    worker has room, two at once; a bad manifest fails alone; every row made once."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    good = ("north", "south", "east")
    for name in good:
        # Rows long enough that a manifest is still running when the other worker's flow-run process has started.
        (inbox / f"{name}.csv").write_text(
            f'id,text,backend,options\n{name}1,Words of {name}.,{SLOW},"{HOLD}"\n{name}2,More of {name}.,{SLOW},"{HOLD}"\n'
        )
    (inbox / "west.csv").write_text(f"id,text,backend\nw1,Fine.,{SLOW}\nw1,Same id twice.,{SLOW}\n")
    swept = subprocess.run(
        [sys.executable, "-m", "mediamill.cli", "sweep", str(inbox)],
        cwd=ROOT,
        env=fleet.env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    said = " ".join((swept.stdout + swept.stderr).split())
    assert swept.returncode == 1, said[-3000:]
    assert "1 of 4 manifests failed: west.csv" in said

    names = [f"produce:{name}" for name in (*good, "west")]
    children = {
        c["name"]: c for c in fleet.api("POST", "/flow_runs/filter", json={"flow_runs": {"name": {"any_": names}}})
    }
    assert set(children) == set(names)  # one run each, none started twice
    assert children["produce:west"]["state"]["type"] == "FAILED"
    assert "duplicate" in children["produce:west"]["state"]["message"].lower()
    ran = [children[f"produce:{name}"] for name in good]
    assert all(c["state"]["type"] == "COMPLETED" for c in ran), [c["state"] for c in ran]

    # Children of one sweep run, as the UI shows them.
    parents = {fleet.api("GET", f"/task_runs/{c['parent_task_run_id']}")["flow_run_id"] for c in children.values()}
    (parent,) = parents
    assert fleet.api("GET", f"/flow_runs/{parent}")["state"]["type"] == "FAILED"
    # Both workers took manifests, and two ran at once.
    took = {n: {c["name"] for c in children.values() if fleet.ran(f"worker-{n}", c["id"])} for n in (1, 2)}
    assert took[1] and took[2] and not took[1] & took[2], took
    spans = sorted((c["start_time"], c["end_time"]) for c in children.values())
    assert any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:])), spans

    started = [line.split()[3] for line in fleet.events.read_text().splitlines() if line.split()[1] == "start"]
    mine = [row for row in started if row.rstrip("12") in good]
    assert sorted(mine) == sorted(f"{name}{i}" for name in good for i in (1, 2))  # each row made once
    for name in good:
        rows = pq.read_table(fleet.outputs / name / "results.parquet").to_pylist()
        assert [r["status"] for r in rows] == ["done", "done"]
    assert not (fleet.outputs / "west").exists()


def _worker(fleet: Fleet, name: str) -> subprocess.Popen:
    return next(p for p in fleet.procs if f"--name {name}" in " ".join(map(str, p.args)) and p.poll() is None)


def test_a_big_manifest_spreads_its_rows_over_both_workers_and_survives_a_killed_one(fleet, tmp_path):
    """`mediamill run --shards 2` on a fleet's server: two child runs of produce-rows, one on each worker, make
    the rows at once; worker-2 is killed mid-shard, and its unfinished rows are made by the parent, which then
    stitches, delivers and writes one results table. No row is made twice."""
    book = tmp_path / "big.csv"
    book.write_text(
        "id,text,backend,options\n" + "".join(f'big{i},Line {i} of the big book.,{SLOW},"{HOLD}"\n' for i in range(12))
    )
    log = tmp_path / "big.log"
    with log.open("w") as fh:
        parent = subprocess.Popen(
            [sys.executable, "-m", "mediamill.cli", "run", str(book), "--shards", "2"],
            cwd=ROOT,
            env=fleet.env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        worker = _worker(fleet, "worker-2")
        deadline = time.monotonic() + 240

        def events() -> list[list[str]]:
            said = fleet.events.read_text() if fleet.events.exists() else ""
            lines = [line.split() for line in said.splitlines()]
            return [e for e in lines if e[3].startswith("big")]

        # worker-2's shard has made some of its rows and has more to make (the fleet-wide limit may hand
        # every slot to one shard for a while, so the shards' rows need not interleave).
        while True:
            own = {str(p.pid) for p in psutil.Process(worker.pid).children(recursive=True)}
            made_there = [e for e in events() if e[1] == "made" and e[2] in own]
            if 0 < len(made_there) < 6:
                break
            assert parent.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, (made_there, log.read_text()[-2000:])
            time.sleep(0.2)
        mine = {
            c["id"]
            for c in fleet.api(
                "POST", "/flow_runs/filter", json={"flow_runs": {"name": {"like_": "produce:big:rows-"}}}
            )
            if fleet.ran("worker-2", c["id"])
        }
        os.kill(worker.pid, signal.SIGKILL)  # mid-shard, as a preempted machine
        worker.wait()
        parent.wait(timeout=300)
    finally:
        stop_process(parent)
        fleet.worker(2)
    said = log.read_text(errors="replace")
    assert parent.returncode == 0, said[-3000:]

    children = fleet.api("POST", "/flow_runs/filter", json={"flow_runs": {"name": {"like_": "produce:big:rows-"}}})
    assert sorted(c["name"] for c in children) == ["produce:big:rows-1-of-2", "produce:big:rows-2-of-2"]
    killed = [c for c in children if c["id"] in mine]
    assert len(killed) == 1 and killed[0]["state"]["type"] in ("CRASHED", "FAILED"), [c["state"] for c in children]
    # Children of the one parent run, as the UI shows them.
    parents = {fleet.api("GET", f"/task_runs/{c['parent_task_run_id']}")["flow_run_id"] for c in children}
    (parent_run,) = parents
    assert fleet.api("GET", f"/flow_runs/{parent_run}")["state"]["type"] == "COMPLETED"
    spans = sorted((c["start_time"], c["end_time"]) for c in children)
    assert spans[1][0] < spans[0][1], spans  # the two shards ran at once

    made = sorted(e[3] for e in events() if e[1] == "made")
    assert made == sorted(f"big{i}" for i in range(12)), made  # every row made exactly once
    assert len({e[2] for e in events() if e[1] == "start"}) == 3  # two shards' processes, then the parent
    rows = pq.read_table(fleet.outputs / "big" / "results.parquet").to_pylist()
    assert [r["id"] for r in rows] == [f"big{i}" for i in range(12)]
    assert {r["status"] for r in rows} == {"done"}  # made in this production, by whichever run
    assert all(r["cost_usd"] == 0.01 for r in rows)
    assert (fleet.outputs / "big" / "big.m4b").stat().st_size > 0
    assert not (fleet.outputs / "big" / ".shards").exists()


def test_cancelling_a_sweep_cancels_its_children(fleet, tmp_path):
    """The sweep deployment's run (on one worker) cancelled through the API, as the UI's Cancel does: its worker
    stops it, its child runs are cancelled too (the one running is stopped by its worker, the one still waiting
    for a worker never starts), and no row of theirs starts afterwards."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    long = '{""hold_s"": 60}'
    for name in ("alpha", "beta"):
        rows = "".join(f'{name}{i},Row {i} of {name}.,{SLOW},"{long}"\n' for i in range(3))
        (inbox / f"{name}.csv").write_text("id,text,backend,options\n" + rows)
    swept = fleet.trigger("sweep/sweep", inbox=str(inbox))
    deadline = time.monotonic() + 240

    def children() -> list[dict]:
        names = {"any_": ["produce:alpha", "produce:beta"]}
        return fleet.api("POST", "/flow_runs/filter", json={"flow_runs": {"name": names}})  # type: ignore[return-value]

    def started() -> list[str]:
        said = fleet.events.read_text() if fleet.events.exists() else ""
        return [
            e.split()[3] for e in said.splitlines() if e.split()[1] == "start" and e.split()[3][:4] in ("alph", "beta")
        ]

    while not started():  # a child is making its first row
        assert time.monotonic() < deadline, [c["state"]["type"] for c in children()]
        time.sleep(0.5)
    fleet.api("POST", f"/flow_runs/{swept}/set_state", json={"state": {"type": "CANCELLING"}, "force": True})
    while True:
        states = {c["name"]: c["state"]["type"] for c in children()}
        sweep_state = fleet.api("GET", f"/flow_runs/{swept}")["state"]["type"]
        if sweep_state == "CANCELLED" and len(states) == 2 and set(states.values()) == {"CANCELLED"}:
            break
        assert time.monotonic() < deadline, (sweep_state, states)
        time.sleep(1)
    before = started()
    time.sleep(5)
    assert started() == before  # nothing of theirs starts after the cancel
    assert len(before) <= LIMIT  # only the first rows had begun ...
    made = [
        e
        for e in fleet.events.read_text().splitlines()
        if e.split()[1] == "made" and e.split()[3][:4] in ("alph", "beta")
    ]
    assert made == []  # ... and none ran its 60 s to the end


# -- hosted rows under a fleet-wide limit ----------------------------------------------------

WIRO_LIMIT = 200
WIRO_ROWS = 200  # per run: two runs want 400 slots of the 200


def _set_wiro_limit(fleet: Fleet, limit: int) -> None:
    try:
        fleet.api("PATCH", "/v2/concurrency_limits/mediamill-wiro", json={"limit": limit, "active": True})
    except httpx.HTTPStatusError as exc:
        if exc.response.status_code != 404:
            raise
        fleet.api("POST", "/v2/concurrency_limits/", json={"name": "mediamill-wiro", "limit": limit})


def _wiro_limit(fleet: Fleet) -> dict:
    return fleet.api("GET", "/v2/concurrency_limits/mediamill-wiro")


def _hosted_run(fleet: Fleet, wiro, manifest: Path, out: Path, log: Path, **env: str) -> subprocess.Popen:
    run_env = {
        **fleet.env,
        **hosted.wiro_env(wiro.url, WIRO_POLL_INITIAL_S="0.5", WIRO_POLL_MAX_S="1"),
        "MEDIAMILL_CONCURRENCY": json.dumps({"wiro": WIRO_LIMIT}),
        **env,
    }
    with log.open("w") as fh:  # the child has its own copy of the file
        return subprocess.Popen(
            [sys.executable, "-m", "mediamill.cli", "run", str(manifest), "--backend", "wiro", "--outputs", str(out)],
            cwd=ROOT,
            env=run_env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _hosted_manifest(path: Path, rows: int) -> Path:
    path.write_text("id,text\n" + "".join(f"{path.stem}{i},Hosted line {i} of {path.stem}.\n" for i in range(rows)))
    return path


def test_hundreds_of_hosted_rows_in_flight_never_exceed_the_fleet_limit(fleet, tmp_path):
    """Two runs (processes) share mediamill-wiro = 200: 200 tasks in flight at once, never more, in bounded time."""
    _set_wiro_limit(fleet, WIRO_LIMIT)
    out = tmp_path / "out"
    # Tasks long enough that both runs' first 200 are all in flight together, however slowly a busy
    # machine starts them.
    with WiroEmulator(queue_s=0.5, run_s=20.0) as wiro:
        started = time.monotonic()
        runs = {
            name: _hosted_run(
                fleet, wiro, _hosted_manifest(tmp_path / f"{name}.csv", WIRO_ROWS), out, tmp_path / f"{name}.log"
            )
            for name in ("left", "right")
        }
        try:
            for proc in runs.values():
                proc.wait(timeout=max(1.0, 600 - (time.monotonic() - started)))
        except subprocess.TimeoutExpired:
            for proc in runs.values():
                stop_process(proc)
            raise AssertionError(
                f"hosted runs not finished in 600 s:\n{(tmp_path / 'left.log').read_text()[-3000:]}"
            ) from None
        elapsed = time.monotonic() - started
        peak, tasks = wiro.peak_active(), len(wiro.tasks)

    logs = {name: (tmp_path / f"{name}.log").read_text(errors="replace") for name in runs}
    assert all(proc.returncode == 0 for proc in runs.values()), {n: logs[n][-2000:] for n in runs}
    for name in runs:
        rows = pq.read_table(out / name / "results.parquet").to_pylist()
        assert len(rows) == WIRO_ROWS and {r["status"] for r in rows} == {"done"}
    assert tasks == 2 * WIRO_ROWS  # one task per row: nothing retried, nothing paid twice
    assert peak == WIRO_LIMIT, f"{peak} tasks at once for a limit of {WIRO_LIMIT}"
    gcl = _wiro_limit(fleet)
    assert gcl["limit"] == WIRO_LIMIT and gcl["active_slots"] == 0  # every slot given back
    for name in runs:
        calls = json.loads((out / name / "summary.json").read_text())["limits"]["wiro"]["server_calls"]
        # Slots cost a bounded number of calls (the old design made at least three per row: 600 here).
        assert sum(calls.values()) <= 80, (name, calls)
        print(f"{name}: slot calls {calls}")
    print(f"{2 * WIRO_ROWS} rows in {elapsed:.1f} s, {peak} tasks at once (limit {WIRO_LIMIT})")


def test_a_killed_run_gives_its_slots_back_when_its_leases_end(fleet, tmp_path):
    _set_wiro_limit(fleet, WIRO_LIMIT)
    with WiroEmulator(queue_s=0.5, run_s=600.0) as wiro:  # rows that stay in flight
        manifest = _hosted_manifest(tmp_path / "doomed.csv", 30)
        proc = _hosted_run(fleet, wiro, manifest, tmp_path / "out", tmp_path / "doomed.log", MEDIAMILL_LEASE_S="60")
        try:
            deadline = time.monotonic() + 120
            while _wiro_limit(fleet)["active_slots"] < 30:
                assert proc.poll() is None, (tmp_path / "doomed.log").read_text()[-2000:]
                assert time.monotonic() < deadline, "the run never leased its slots"
                time.sleep(0.5)
            os.killpg(proc.pid, signal.SIGKILL)  # a worker dies: nothing gives the slots back ...
            proc.wait(10)
            killed = time.monotonic()
            time.sleep(5)
            assert _wiro_limit(fleet)["active_slots"] == 30
            while _wiro_limit(fleet)["active_slots"] > 0:  # ... until the server ends the leases
                assert time.monotonic() - killed < 150, "slots of a dead run never came back"
                time.sleep(1)
        finally:
            stop_process(proc)
    back_after = time.monotonic() - killed
    print(f"slots of the killed run back {back_after:.0f} s after the kill")
    # The lease was renewed at most RENEW_S before the kill; the server looks for ended leases every 15 s.
    assert 60 - 60 * 0.25 <= back_after <= 60 + 20 + 5, f"{back_after:.0f} s"


def test_a_shard_killed_with_hosted_tasks_in_flight_leaves_no_row_paid_twice(fleet, wiro, tmp_path):
    """`--shards 2` over Wiro rows on the workers: worker-2 dies while every row's task is in flight at Wiro.
    The manifest still completes, and each row is billed exactly once: the parent resumes the killed shard's
    tasks from the store's journal rather than submitting them again."""
    _set_wiro_limit(fleet, 8)
    # Tasks that outlast the killed shard's process (it ends a few seconds after its worker, SIGKILLed at worst
    # 30 s after its SIGTERM) and the parent's noticing that.
    wiro.run_s = 30.0
    rows = 8
    book = tmp_path / "paid.csv"
    book.write_text("id,text\n" + "".join(f"paid{i},Paid line {i} of the hosted book.\n" for i in range(rows)))
    log = tmp_path / "paid.log"
    with log.open("w") as fh:
        parent = subprocess.Popen(
            [sys.executable, "-m", "mediamill.cli", "run", str(book), "--backend", "wiro", "--shards", "2"],
            cwd=ROOT,
            env=fleet.env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    before = set(wiro.tasks)
    journals = fleet.outputs / ".store" / "journal"
    try:
        worker = _worker(fleet, "worker-2")
        deadline = time.monotonic() + 180
        # Every row submitted and noted, none finished: both shards have paid tasks in flight.
        while len(set(wiro.tasks) - before) < rows or len(list(journals.glob("*.json"))) < rows:
            assert parent.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, (len(wiro.tasks), log.read_text()[-2000:])
            time.sleep(0.2)
        children = fleet.api("POST", "/flow_runs/filter", json={"flow_runs": {"name": {"like_": "produce:paid:rows-"}}})
        assert any(fleet.ran("worker-2", c["id"]) for c in children), [c["name"] for c in children]
        assert not any(t.finished for tid, t in wiro.tasks.items() if tid not in before)
        os.kill(worker.pid, signal.SIGKILL)  # mid-shard, its tasks running at Wiro
        worker.wait()
        (killed,) = [c for c in children if fleet.ran("worker-2", c["id"])]
        while fleet.api("GET", f"/flow_runs/{killed['id']}")["state"]["type"] not in ("CRASHED", "FAILED"):
            assert parent.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.5)
        # The shard's process is gone with its tasks unfinished; from here on only the parent asks about them.
        # Shard K of 2 holds every other row from row K (distinct rows, in manifest order).
        k = int(killed["name"].split("rows-")[1].split("-of-")[0]) - 1
        theirs = [f"Paid line {i} of" for i in range(k, rows, 2)]
        unfinished = {
            tid
            for tid, t in wiro.tasks.items()
            if tid not in before and not t.finished and any(text in json.dumps(t.inputs) for text in theirs)
        }
        gone_at = len(wiro.requests)
        parent.wait(timeout=300)
    finally:
        wiro.run_s = 2.0
        stop_process(parent)
        fleet.worker(2)
    said = log.read_text(errors="replace")
    assert parent.returncode == 0, said[-3000:]

    results = pq.read_table(fleet.outputs / "paid" / "results.parquet").to_pylist()
    assert [r["id"] for r in results] == [f"paid{i}" for i in range(rows)]
    assert {r["status"] for r in results} == {"done"}
    assert (fleet.outputs / "paid" / "paid.m4b").stat().st_size > 0
    mine = {tid: t for tid, t in wiro.tasks.items() if tid not in before}
    for i in range(rows):
        tasks = [t for t in mine.values() if f"Paid line {i} of" in json.dumps(t.inputs)]
        billed = [t for t in tasks if t.finished and t._charge(t.snapshot()) > 0]
        assert len(billed) == 1, (i, [(t.taskid, t.status) for t in tasks])
        (row,) = [r for r in results if r["id"] == f"paid{i}"]
        assert row["task_id"] == billed[0].taskid and row["cost_usd"] == pytest.approx(wiro.cost_per_task)
    # The killed shard's rows were made by the parent, from the tasks the shard had submitted: none anew.
    resumed = {tid for op, tid in wiro.requests[gone_at:] if op == "Detail"} & unfinished
    assert len(unfinished) == rows // 2 and resumed == unfinished and len(mine) == rows, (unfinished, resumed)
    print(f"{rows} rows, {len(mine)} tasks at Wiro, {rows} billed, {len(resumed)} resumed by the parent")


def test_a_worker_killed_mid_run_leaves_nothing_running_once_its_flow_run_ends(fleet, tmp_path):
    """SIGKILL of a worker (a preempted machine): its flow run ends, nothing it started (the flow-run
    process, ffmpeg) is left running, and a rerun finishes its rows. Last in this module: it kills worker-2."""
    from tests.helpers.crash import survivors

    paths = []
    for name in ("keep", "orphan"):
        path = tmp_path / f"{name}.csv"
        path.write_text("id,text,backend\n" + "".join(f"{name}{i},Row {i} of {name}.,{SLOW}\n" for i in range(6)))
        paths.append(path)
    runs = [fleet.trigger("produce/produce", manifest=str(p)) for p in paths]
    worker = _worker(fleet, "worker-2")
    deadline = time.monotonic() + 180
    while not any(rid in fleet.log("worker-2") for rid in runs):  # worker-2 took one of them
        assert time.monotonic() < deadline, fleet.log("worker-2")[-2000:]
        time.sleep(0.2)
    taken = next(rid for rid in runs if rid in fleet.log("worker-2"))
    while fleet.api("GET", f"/flow_runs/{taken}")["state"]["type"] != "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    os.kill(worker.pid, signal.SIGKILL)  # the worker alone, as the OOM killer would
    worker.wait()
    states = fleet.wait(runs)
    # The flow-run process loses its worker's pipes with it and ends (Prefect records it crashed) ...
    assert states[taken]["state"]["type"] in ("COMPLETED", "CRASHED", "FAILED"), states[taken]["state"]
    assert survivors(worker.pid, 30.0) == []  # ... and nothing it started is left running
    # Its rows resume on the other worker: nothing made twice.
    orphan = paths[runs.index(taken)]
    rerun = fleet.trigger("produce/produce", manifest=str(orphan))
    assert fleet.wait([rerun])[rerun]["state"]["type"] == "COMPLETED"
    rows = pq.read_table(fleet.outputs / orphan.stem / "results.parquet").to_pylist()
    assert {r["status"] for r in rows} <= {"done", "cached"} and len(rows) == 6
