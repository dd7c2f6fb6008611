"""A big manifest's rows split over shard runs: which rows a shard makes, what it notes, what the parent takes."""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
from pathlib import Path

import pytest

from mediamill.flows import produce, produce_rows
from mediamill.generate import ShardLog, ShardReader, open_run, own_groups, shard_folder
from mediamill.report import RowResult
from tests.helpers.runs import result_row, results

pytestmark = pytest.mark.usefixtures("prefect_api")

COUNTING = "tests.helpers.fakes:CountingBackend"
REFUSING = "tests.helpers.fakes:RefusingBackend"


def _book(path: Path) -> Path:
    rows = [f"r{i},Line {i} of the book.,{COUNTING}" for i in range(6)]
    rows.insert(1, f"dup,Line 0 of the book.,{COUNTING}")  # the same content as r0: one key, made once
    rows.append(f"bad,This one is refused.,{REFUSING}")
    path.write_text("id,text,backend\n" + "\n".join(rows) + "\n")
    return path


def test_shards_split_the_keys_evenly_and_keep_rows_of_one_key_together(tmp_path):
    plan = open_run(_book(tmp_path / "book.csv"), None, tmp_path / "out").plan
    groups: dict[str, list] = {}
    for job in plan.jobs:
        groups.setdefault(job.key, []).append(job)
    everything = list(groups.values())
    for shards in (1, 2, 3, 7, 10):
        parts = [own_groups(plan.jobs, everything, k, shards) for k in range(shards)]
        ids = sorted(job.id for part in parts for group in part for job in group)
        assert ids == sorted(job.id for job in plan.jobs)  # every row in exactly one shard
        sizes = [len(part) for part in parts]
        assert max(sizes) - min(sizes) <= 1, (shards, sizes)
    first = own_groups(plan.jobs, everything, 0, 2)
    assert [[j.id for j in g] for g in first] == [["r0", "dup"], ["r2"], ["r4"], ["bad"]]
    with pytest.raises(ValueError):
        own_groups(plan.jobs, everything, 2, 2)


def test_a_shard_makes_only_its_rows_and_the_parent_takes_them_with_what_they_cost(tmp_path):
    manifest, out = _book(tmp_path / "book.csv"), tmp_path / "out"
    parent_run = open_run(manifest, None, out)  # the parent, before it hands out the rows
    waiting = parent_run.record_stored()

    state = asyncio.run(
        produce_rows(manifest=str(manifest), shard=0, shards=2, parent="p1", outputs=str(out), return_state=True)
    )
    assert state.is_failed() and state.message == "1 of 5 rows failed", state.message
    assert not (out / "book" / "results.parquet").exists()  # the parent writes the one table
    folder = shard_folder(out / "book", "p1")
    noted = [json.loads(line)["id"] for line in (folder / "0.jsonl").read_text().splitlines()]
    assert sorted(noted) == ["bad", "dup", "r0", "r2", "r4"]
    with (folder / "0.jsonl").open("a") as fh:
        fh.write('{"id": "r1", "status": "do')  # a shard killed while writing: the torn line is skipped

    left = parent_run.adopt(waiting, ShardReader(folder).read())
    assert [[j.id for j in g] for g in left] == [["r1"], ["r3"], ["r5"]]  # the other shard's, still to make
    got = parent_run.results
    assert got["r0"].status == "done" and got["r0"].attempts == 1 and got["r0"].cost_usd == 0.01
    assert got["dup"].status == "cached" and got["dup"].cost_usd == 0.0
    assert got["bad"].status == "failed" and "insufficient balance" in (got["bad"].error or "")
    assert "r1" not in got


def test_shards_asked_for_without_a_fleet_deployment_are_made_here(tmp_path):
    manifest, out = _book(tmp_path / "book.csv"), tmp_path / "out"
    manifest.write_text("\n".join(manifest.read_text().splitlines()[:-1]) + "\n")  # without the refused row
    state = asyncio.run(produce(manifest=str(manifest), outputs=str(out), shards=2, return_state=True))
    assert state.is_completed(), state.message
    assert [r["status"] for r in results(out, "book")] == ["done", "cached", "done", "done", "done", "done", "done"]
    assert not (out / "book" / ".shards").exists()


def test_a_shard_whose_process_died_is_known_gone_and_one_that_ended_is_not(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from mediamill.generate import ShardLog, shard_gone

    folder = tmp_path / "shards"
    assert not shard_gone(folder, 0)  # not begun
    with ShardLog(folder, 0):
        assert not shard_gone(folder, 0)  # running (this process holds it)
    assert not shard_gone(folder, 0)  # ended

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from mediamill.generate import ShardLog\n"
            "with ShardLog(Path(sys.argv[1]), 1):\n    print('in', flush=True); time.sleep(60)",
            str(folder),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "in\n"
        assert not shard_gone(folder, 1)  # alive in another process
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
    finally:
        holder.kill()
    deadline = time.monotonic() + 5
    while not shard_gone(folder, 1):  # the kernel let go of its claim with the process
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert shard_gone(folder, 1)  # looking does not change the answer


def test_how_many_shards_a_run_spreads_over(monkeypatch, tmp_path):
    """Asked, or for a run a worker took: by MEDIAMILL_FLEET_ROWS and the rows pool's online workers, less the
    parent's own worker when it is of that pool; never from a command line unasked, never without a fleet."""
    import logging
    import types

    import mediamill.flows as flows

    run = open_run(_book(tmp_path / "book.csv"), None, tmp_path / "out")
    groups = [[job] for job in run.plan.jobs] * 250  # 2,000 groups, as many as keys would be
    monkeypatch.setenv("MEDIAMILL_FLEET_ROWS", "100")
    monkeypatch.setattr(flows, "get_run_logger", lambda: logging.getLogger("test"))
    monkeypatch.setattr(flows, "server_configured", lambda: True)

    async def exists(name: str) -> bool:
        return True

    async def workers(name: str) -> tuple[str, int]:
        return "mediamill-cpu", 8

    monkeypatch.setattr(flows, "deployment_exists", exists)
    monkeypatch.setattr(flows, "pool_workers", workers)

    def shards(asked: int | None, on: types.SimpleNamespace | None, rows: int = 400) -> int:
        monkeypatch.setattr(flows, "_this_run", lambda: on)
        return asyncio.run(flows._shards_for(run, groups[:rows], asked))[0]

    worker_run = types.SimpleNamespace(deployment_id="d", work_pool_name="mediamill-cpu")
    assert shards(None, worker_run) == 4  # 400 rows, 100 each, 7 workers free
    assert shards(None, worker_run, rows=199) == 1  # under twice MEDIAMILL_FLEET_ROWS
    assert shards(None, types.SimpleNamespace(deployment_id="d", work_pool_name="mediamill-gpu"), 2000) == 8
    assert shards(None, worker_run, rows=2000) == 7  # the parent's worker is busy with the parent
    assert shards(None, types.SimpleNamespace(deployment_id=None, work_pool_name=None)) == 1  # mediamill run
    assert shards(3, types.SimpleNamespace(deployment_id=None, work_pool_name=None)) == 3  # ... unless asked
    assert shards(1, worker_run) == 1
    assert shards(500, worker_run, rows=5) == 5  # never more shards than rows
    monkeypatch.setattr(flows, "server_configured", lambda: False)
    assert shards(3, worker_run) == 1  # no fleet: every row here


def _result(row: str, status: str) -> RowResult:
    return result_row(id=row, status=status, key=f"k-{row}")


def test_the_parent_reads_what_the_shards_append_and_a_line_only_once_it_is_whole(tmp_path):
    folder = shard_folder(tmp_path, "parent")
    reader = ShardReader(folder)
    assert reader.read() == {}  # no shard has begun
    with ShardLog(folder, 0) as first, ShardLog(folder, 1) as second:
        first.add([_result("a", "done"), _result("b", "failed")])
        assert set(reader.read()) == {"a", "b"}
        line = json.dumps(asdict(_result("b", "done")), sort_keys=True) + "\n"
        with (folder / "1.jsonl").open("a") as fh:  # a line half written: not a result yet
            fh.write(line[:40])
        assert reader.read()["b"].status == "failed"
        with (folder / "1.jsonl").open("a") as fh:
            fh.write(line[40:])
        assert reader.read()["b"].status == "done"  # made in one shard beats failed in another
        second.add([_result("c", "cached")])
        first.add([_result("b", "failed")])  # and keeps beating it, whatever the order
    made = reader.read()
    assert {row: r.status for row, r in made.items()} == {"a": "done", "b": "done", "c": "cached"}
    assert made == ShardReader(folder).read()  # read in steps or at once, the same
