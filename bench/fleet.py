"""The fleet: a sweep and a big manifest spread over N workers of a real `prefect server`, for N = 1, 2 and 4.

One `prefect server` (SQLite) on loopback, the pools and deployments from prefect.yaml, and N process workers
(`--limit 1`: Prefect gives a run to any worker with room, so a worker taking two would put two shards on one
machine, where they share its limit), each standing for a machine of its own: its own
``MEDIAMILL_MACHINE``, so its per-machine limit is its own. The engine is bound by latency, not by this
machine's two cores: every row takes ROW_S seconds, one row at a time per machine
(``tests.helpers.fakes:LatencyBackend``), and notes each row it made, so nothing made twice goes unseen.

- **sweep**: 16 manifests of 8 rows each, `mediamill sweep` against the server: its wall time against the
  longest manifest's own flow run.
- **big**: one manifest of ROWS rows, `mediamill run` against the server (N = 1: the run makes every row
  itself, on one machine; N > 1: `--shards N`, the rows spread over the pool's N workers): rows per second
  of the rows phase against N times the one-machine figure, the flow runs the spread adds, and the seconds
  from the run's start to each machine's first row.

Usage: python bench/fleet.py [ROWS] [ROW_S]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save  # noqa: E402

from tests.helpers.fleet import Fleet  # noqa: E402

LATENCY = "tests.helpers.fakes:LatencyBackend"
SWEEP_MANIFESTS, SWEEP_ROWS = 16, 8


def _cli(fleet: Fleet, *args: str) -> tuple[float, str]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "mediamill.cli", *args],
        cwd=ROOT,
        env={**fleet.env, "MEDIAMILL_MACHINE": "here"},
        capture_output=True,
        text=True,
        timeout=1800,
    )
    said = done.stdout + done.stderr
    if done.returncode != 0:
        raise SystemExit(f"mediamill {' '.join(args)} failed ({done.returncode}):\n{said[-3000:]}")
    return time.monotonic() - started, said


def _runs(fleet: Fleet, like: str) -> list[dict]:
    return fleet.api("POST", "/flow_runs/filter", json={"flow_runs": {"name": {"like_": like}}})  # type: ignore[return-value]


def _seconds(run: dict) -> float:
    start, end = (datetime.fromisoformat(run[k].replace("Z", "+00:00")) for k in ("start_time", "end_time"))
    return (end - start).total_seconds()


def _events(fleet: Fleet, prefix: str) -> list[tuple[float, str, str, str]]:
    lines = fleet.events.read_text().splitlines() if fleet.events.exists() else []
    return [
        (float(t), what, pid, row) for t, what, pid, row in (line.split() for line in lines) if row.startswith(prefix)
    ]


def sweep(fleet: Fleet, n: int, work: Path) -> dict:
    inbox = work / f"inbox{n}"
    inbox.mkdir()
    for m in range(SWEEP_MANIFESTS):
        rows = "".join(f"s{n}m{m}r{i},Line {i} of manifest {m} for {n}.,{LATENCY}\n" for i in range(SWEEP_ROWS))
        (inbox / f"s{n}m{m}.csv").write_text("id,text,backend\n" + rows)
    wall, _ = _cli(fleet, "sweep", str(inbox))
    children = [c for c in _runs(fleet, f"produce:s{n}m%") if c["state"]["type"] == "COMPLETED"]
    assert len(children) == SWEEP_MANIFESTS, len(children)
    made = Counter(row for _, what, _, row in _events(fleet, f"s{n}m") if what == "made")
    longest = max(_seconds(c) for c in children)
    return {
        "wall_s": round(wall, 1),
        "longest_manifest_s": round(longest, 1),
        "wall_over_longest": round(wall / longest, 2),
        "rows_made_twice": sum(1 for c in made.values() if c > 1),
        "rows_made": len(made),
    }


def big(fleet: Fleet, n: int, rows: int, work: Path) -> dict:
    name = f"big{n}"
    manifest = work / f"{name}.csv"
    lines = "".join(f"{name}r{i},Line {i} of the big book for {n}.,{LATENCY}\n" for i in range(rows))
    manifest.write_text("id,text,backend\n" + lines)
    started = time.time()
    wall, _ = _cli(fleet, "run", str(manifest), *(["--shards", str(n)] if n > 1 else ["--shards", "1"]))
    summary = json.loads((fleet.outputs / name / "summary.json").read_text())
    generate_s = summary["phases_s"]["generate"]
    events = _events(fleet, f"{name}r")
    made = Counter(row for _, what, _, row in events if what == "made")
    first = {}
    for t, what, pid, _ in sorted(events):
        if what == "start":
            first.setdefault(pid, t - started)
    children = _runs(fleet, f"produce:{name}:rows-%")
    return {
        "wall_s": round(wall, 1),
        "generate_s": round(generate_s, 1),
        "rows_per_s": round(rows / generate_s, 3),
        "extra_flow_runs": len(children),
        "machines_making_rows": len(first),
        "first_row_s": sorted(round(s, 1) for s in first.values()),
        "rows_made": len(made),
        "rows_made_twice": sum(1 for c in made.values() if c > 1),
    }


def main(rows: int = 480, row_s: float = 0.5) -> None:
    work = Path(tempfile.mkdtemp(prefix="mediamill-fleet-"))
    fleet = Fleet(work, MEDIAMILL_TEST_ROW_S=str(row_s), MEDIAMILL_FLEET_ROWS=str(rows))
    figures: dict = {"rows": rows, "row_s": row_s, "by_workers": {}}
    try:
        fleet.start(workers=0)
        for n in (1, 2, 4):
            while sum(1 for p in fleet.procs if "worker" in " ".join(map(str, p.args))) < n:
                k = 1 + sum(1 for p in fleet.procs if "worker" in " ".join(map(str, p.args)))
                fleet.worker(k, limit=1, MEDIAMILL_MACHINE=f"machine-{k}")
            time.sleep(3)  # the new workers poll the pool before the runs start
            figures["by_workers"][n] = {"sweep": sweep(fleet, n, work), "big": big(fleet, n, rows, work)}
            print(json.dumps({n: figures["by_workers"][n]}), flush=True)
    finally:
        fleet.stop()
    one = figures["by_workers"][1]["big"]["rows_per_s"]
    for n, got in figures["by_workers"].items():
        got["big"]["speedup"] = round(got["big"]["rows_per_s"] / one, 2)
        got["big"]["of_ideal"] = round(got["big"]["rows_per_s"] / (n * one), 2)
    save("fleet", figures)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 480, float(sys.argv[2]) if len(sys.argv) > 2 else 0.5)
