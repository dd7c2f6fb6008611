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
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest

from mediamill.core.processes import child_options
from tests.helpers.paths import MANIFESTS, ROOT

pytestmark = pytest.mark.slow

PREFECT = str(Path(sys.executable).with_name("prefect"))
SLOW = "tests.helpers.fakes:SlowFleetBackend"
LIMIT = 2
HOLD = '{""hold_s"": 4}'  # a row's options (CSV-quoted JSON): it takes 4 s


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    """Stop a process and everything it started (workers start flow-run processes)."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(10)


class Fleet:
    def __init__(self, base: Path):
        self.base = base
        self.outputs = base / "outputs"
        self.events = base / "events.log"
        self.url = f"http://127.0.0.1:{_free_port()}/api"
        self.env = {
            **os.environ,
            "PREFECT_HOME": str(base / "prefect-home"),
            "PREFECT_API_URL": self.url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_UI_ENABLED": "false",
            "PREFECT_WORKER_QUERY_SECONDS": "1",
            "PREFECT_WORKER_PREFETCH_SECONDS": "5",
            "MEDIAMILL_PROJECT_DIR": str(ROOT),
            "MEDIAMILL_OUTPUTS": str(self.outputs),
            "MEDIAMILL_LIMITS": "auto",
            "MEDIAMILL_CONCURRENCY": json.dumps({SLOW: LIMIT}),
            "MEDIAMILL_TEST_EVENTS": str(self.events),
        }
        self.env.pop("PREFECT_PROFILE", None)
        self.procs: list[subprocess.Popen] = []

    def spawn(self, name: str, *args: str) -> subprocess.Popen:
        with (self.base / f"{name}.log").open("w") as log:  # the child has its own copy of the file
            proc = subprocess.Popen(
                [PREFECT, *args],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **child_options(),  # a killed test run takes its server and workers with it
            )
        self.procs.append(proc)
        return proc

    def prefect(self, *args: str) -> str:
        done = subprocess.run([PREFECT, *args], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"prefect {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def log(self, name: str) -> str:
        return (self.base / f"{name}.log").read_text(errors="replace")

    def ran(self, worker: str, run_id: str) -> bool:
        """Whether ``worker`` ran flow run ``run_id``: it submitted the run, and the server did not turn it
        away because another worker had taken it first."""
        log = self.log(worker)
        return f"submitting flow run '{run_id}'" in log and f"Aborted submission of flow run '{run_id}'" not in log

    def stop(self) -> None:
        for proc in reversed(self.procs):
            _stop(proc)

    # -- the API, as an operator's script would use it -----------------------------
    def api(self, method: str, path: str, **kwargs) -> dict | list:
        # SQLite answers 503 now and then while it records task runs: try again, as Prefect's client does.
        for attempt in range(8):
            answer = httpx.request(method, self.url + path, timeout=30, **kwargs)
            if answer.status_code != 503:
                break
            time.sleep(0.5 * 2**attempt)
        answer.raise_for_status()
        return answer.json() if answer.content else {}

    def trigger(self, deployment: str, **parameters) -> str:
        flow, name = deployment.split("/")
        dep = self.api("GET", f"/deployments/name/{flow}/{name}")
        run = self.api("POST", f"/deployments/{dep['id']}/create_flow_run", json={"parameters": parameters})
        return run["id"]

    def wait(self, run_ids: list[str], timeout: float = 420) -> dict[str, dict]:
        deadline = time.monotonic() + timeout
        runs: dict[str, dict] = {}
        while time.monotonic() < deadline:
            runs = {rid: self.api("GET", f"/flow_runs/{rid}") for rid in run_ids}
            if all(r["state"]["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") for r in runs.values()):
                return runs
            time.sleep(1)
        states = {rid: r["state"]["type"] for rid, r in runs.items()}
        raise AssertionError(f"runs not finished after {timeout}s: {states}\n{self.log('worker-1')[-3000:]}")

    def artifact(self, run_id: str, key: str) -> list[dict]:
        found = self.api(
            "POST", "/artifacts/filter", json={"artifacts": {"key": {"any_": [key]}, "flow_run_id": {"any_": [run_id]}}}
        )
        assert found, f"no artifact {key} for run {run_id}"
        data = found[0]["data"]
        return json.loads(data) if isinstance(data, str) else data


@pytest.fixture(scope="module")
def fleet(tmp_path_factory) -> Iterator[Fleet]:
    fleet = Fleet(tmp_path_factory.mktemp("fleet"))
    try:
        fleet.spawn(
            "server", "server", "start", "--host", "127.0.0.1", "--port", fleet.url.split(":")[-1].split("/")[0]
        )
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(fleet.url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert fleet.procs[0].poll() is None, fleet.log("server")
            assert time.monotonic() < deadline, "prefect server did not start:\n" + fleet.log("server")
            time.sleep(0.5)
        fleet.prefect("work-pool", "create", "mediamill-cpu", "--type", "process")
        fleet.prefect("work-pool", "create", "mediamill-gpu", "--type", "process")
        fleet.prefect("--no-prompt", "deploy", "--all")
        for n in (1, 2):  # one flow run at a time each, so two runs land on two workers
            fleet.spawn(
                f"worker-{n}", "worker", "start", "--pool", "mediamill-cpu", "--name", f"worker-{n}", "--limit", "1"
            )
        yield fleet
    finally:
        fleet.stop()


def test_deployments_from_prefect_yaml(fleet):
    deployments = {d["name"]: d for d in fleet.api("POST", "/deployments/filter", json={})}
    assert set(deployments) == {"produce", "produce-gpu", "sweep"}
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
        in_flight += 1 if what == "start" else -1
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
        "WIRO_BASE_URL": wiro.url,
        "WIRO_API_KEY": wiro.api_key,
        "WIRO_API_SECRET": wiro.api_secret,
        "WIRO_POLL_INITIAL_S": "0.5",
        "WIRO_POLL_MAX_S": "1",
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
    from tests.helpers.emulators.wiro import WiroEmulator

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
                _stop(proc)
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
    from tests.helpers.emulators.wiro import WiroEmulator

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
            _stop(proc)
    back_after = time.monotonic() - killed
    print(f"slots of the killed run back {back_after:.0f} s after the kill")
    # The lease was renewed at most RENEW_S before the kill; the server looks for ended leases every 15 s.
    assert 60 - 60 * 0.25 <= back_after <= 60 + 20 + 5, f"{back_after:.0f} s"


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
    worker = next(p for p in fleet.procs if "worker-2" in " ".join(p.args))
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
