"""Hosted rows against the Wiro emulator, all in flight, with server-side limits and with local ones.

The emulator runs in its own process (so its work does not share our GIL). Each
task waits 0.5-3 s in the service's queue and runs 4-15 s (seeded), as hosted
TTS does. For each size (default 200 and 1,000 rows) the same manifest runs
twice against one Prefect API (after an unreported warm-up run, and in
alternating order), limit = rows so every row is in flight at once:

- ``server``: the limit is the server's global concurrency limit
  ``mediamill-wiro`` (set to the size first), leased by the run in blocks;
- ``local``: ``MEDIAMILL_LIMITS=local``, the same limit kept in the process.

Each measurement gets a fresh emulator and outputs folder, and waits for the
server to finish recording the previous one's task runs. Reported per
measurement: the rows phase vs the ideal (longest task + one poll interval),
the run's server calls for its slots, Detail requests per task, and the most
tasks the emulator saw at once (never above the limit).

A dead emulator or Prefect API ends the benchmark with an error naming it
(health checks every 2 s), as does a measurement that runs past its deadline;
nothing waits forever.

Usage: python bench/hosted.py [ROWS ...]      (PREFECT_API_URL: use that server, else a temporary one)
"""

from __future__ import annotations

import asyncio
import csv
import faulthandler
import json
import multiprocessing as mp
import os
import random
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Timer, peak_rss_mb, prefect_api, save, stop_temporary_server  # noqa: E402

KEY, SECRET = "bench-key-0123456789", "bench-secret-0123456789"
POLL_MAX_S = 10.0
LIMIT_NAME = "mediamill-wiro"
HEALTH_EVERY_S = 2.0
HEALTH_FAILURES = 3  # consecutive failed checks before a service counts as dead
DEADLINE_FACTOR = 8.0  # a measurement may take this many times its ideal (plus stitching) before it is abandoned
ABORT_GRACE_S = 30.0  # after abandoning, how long the run may take to stop before the process exits anyway
WARM_UP_ROWS = 10


class BenchError(RuntimeError):
    """The benchmark could not measure: a service died or a run overran its deadline."""


def task_durations(n: int) -> dict[str, tuple[float, float]]:
    rng = random.Random(7)
    return {f"Line {i} for the hosted benchmark.": (rng.uniform(0.5, 3.0), rng.uniform(4.0, 15.0)) for i in range(n)}


def emulator_process(n: int, urls: mp.Queue, stop: mp.Event, stats: mp.Queue) -> None:
    from tests.helpers.emulators.wiro import WiroEmulator

    table = task_durations(n)
    with WiroEmulator(api_key=KEY, api_secret=SECRET, durations=lambda model, inputs: table[inputs["prompt"]]) as wiro:
        urls.put(wiro.url)
        stop.wait()
        details = [wiro.detail_count(t) for t in wiro.tasks] or [0]
        stats.put(
            {
                "runs": len(wiro.runs),
                "tasks": len(wiro.tasks),
                "detail_requests": sum(details),
                "max_details": max(details),
                "peak_active": wiro.peak_active(),
            }
        )


class Emulator:
    """The Wiro emulator in its own process, for one measurement."""

    def __init__(self, n: int):
        ctx = mp.get_context("spawn")
        self.urls, self.stats, self.stop = ctx.Queue(), ctx.Queue(), ctx.Event()
        self.process = ctx.Process(target=emulator_process, args=(n, self.urls, self.stop, self.stats), daemon=True)

    def __enter__(self) -> Emulator:
        self.process.start()
        try:
            self.url: str = self.urls.get(timeout=60)
        except Exception:
            self.process.kill()
            raise BenchError(
                f"the Wiro emulator did not start within 60 s (exit code {self.process.exitcode})"
            ) from None
        return self

    def counts(self) -> dict:
        if (dead := self.problem()) is not None:
            raise BenchError(dead)
        self.stop.set()
        try:
            return self.stats.get(timeout=60)
        except Exception:
            raise BenchError(f"the Wiro emulator did not report (exit code {self.process.exitcode})") from None

    def __exit__(self, *exc) -> None:
        # Setting the event waits on every process that waits on it: never for one that died waiting.
        if self.process.is_alive():
            self.stop.set()
            self.process.join(timeout=30)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=10)

    def problem(self) -> str | None:
        if not self.process.is_alive():
            return f"the Wiro emulator died (exit code {self.process.exitcode})"
        return None


class Health:
    """Watches the emulator and the Prefect API while a measurement runs."""

    def __init__(self, emulator: Emulator, api_url: str):
        self.emulator, self.api_url = emulator, api_url.rstrip("/")
        self.failures = {"the Wiro emulator": 0, "the Prefect API": 0}

    async def watch(self) -> str:
        """Return (as the reason) once something is dead; never returns otherwise."""
        probes = {
            "the Wiro emulator": self.emulator.url.rsplit("/v1", 1)[0] + "/files/health",
            "the Prefect API": self.api_url + "/health",
        }
        async with httpx.AsyncClient(timeout=5.0) as client:
            while True:
                await asyncio.sleep(HEALTH_EVERY_S)
                if (dead := self.emulator.problem()) is not None:
                    return dead
                for name, url in probes.items():
                    try:
                        answer = await client.get(url)
                        ok = answer.status_code < 500  # the emulator answers 404 for an unknown file: alive
                    except httpx.HTTPError:
                        ok = False
                    self.failures[name] = 0 if ok else self.failures[name] + 1
                    if self.failures[name] >= HEALTH_FAILURES:
                        return f"{name} stopped answering at {url} ({HEALTH_FAILURES} checks in a row)"


def _hard_exit_later(reason: str, emulator: Emulator) -> threading.Timer:
    """If the abandoned run does not stop in time (Prefect retrying a dead server), exit anyway."""

    def stop() -> None:
        print(f"hosted benchmark: {reason}; it did not stop within {ABORT_GRACE_S:.0f} s of that", file=sys.stderr)
        if emulator.process.is_alive():
            emulator.process.kill()  # os._exit leaves child processes behind
        if not os.environ.get("PREFECT_API_URL"):
            stop_temporary_server()
        os._exit(3)

    timer = threading.Timer(ABORT_GRACE_S, stop)
    timer.daemon = True
    timer.start()
    return timer


async def run_guarded(manifest: Path, outputs: Path, health: Health, deadline_s: float):
    from mediamill.flows import produce

    run = asyncio.ensure_future(produce(str(manifest), backend="wiro", outputs=str(outputs), return_state=True))
    watch = asyncio.ensure_future(health.watch())
    done, _ = await asyncio.wait({run, watch}, timeout=deadline_s, return_when=asyncio.FIRST_COMPLETED)
    if run in done:
        watch.cancel()
        return run.result()
    reason = watch.result() if watch in done else f"the run did not finish within {deadline_s:.0f} s"
    watch.cancel()
    _hard_exit_later(
        reason, health.emulator
    )  # covers the run's cancellation and everything after it (loop, emulator, server)
    run.cancel()
    await asyncio.gather(run, return_exceptions=True)
    raise BenchError(reason)


async def set_server_limit(limit: int) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, GlobalConcurrencyLimitUpdate
    from prefect.exceptions import ObjectNotFound

    async with get_client() as client:
        try:
            await client.read_global_concurrency_limit_by_name(LIMIT_NAME)
        except ObjectNotFound:
            await client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=LIMIT_NAME, limit=limit))
        else:
            await client.update_global_concurrency_limit(
                LIMIT_NAME, GlobalConcurrencyLimitUpdate(limit=limit, active=True)
            )


async def task_run_count() -> int:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        response = await client._client.post("/task_runs/count", json={})
        response.raise_for_status()
        return int(response.json())


def settle(quiet_s: float = 3.0, timeout_s: float = 180.0) -> float:
    """Wait until the server stops recording task runs (the last run's backlog); the seconds waited."""
    start = time.perf_counter()
    last, since = -1, time.perf_counter()
    while True:
        count = asyncio.run(task_run_count())
        now = time.perf_counter()
        if count != last:
            last, since = count, now
        elif now - since >= quiet_s:
            return round(now - start - quiet_s, 1)
        if now - start > timeout_s:
            raise BenchError(f"the Prefect server was still recording task runs after {timeout_s:.0f} s")
        time.sleep(0.5)


def measure(n: int, mode: str, api_url: str) -> dict:
    durations = task_durations(n)
    longest = max(q + r for q, r in durations.values())
    ideal = longest + POLL_MAX_S
    settled = settle()
    if mode == "server":
        asyncio.run(set_server_limit(n))
    load = os.getloadavg()[0]
    with Emulator(n) as emulator, tempfile.TemporaryDirectory() as tmp:
        os.environ.update(
            WIRO_BASE_URL=emulator.url,
            WIRO_API_KEY=KEY,
            WIRO_API_SECRET=SECRET,
            WIRO_POLL_MAX_S=str(POLL_MAX_S),
            MEDIAMILL_CONCURRENCY=json.dumps({"wiro": n}),
            MEDIAMILL_LIMITS=mode,
            MEDIAMILL_VERIFY="off",  # the emulator answers every row with one sample file
        )
        manifest = Path(tmp) / "hosted.csv"
        with manifest.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["id", "text"])
            writer.writerows([f"r{i:05d}", text] for i, text in enumerate(durations))
        deadline = DEADLINE_FACTOR * ideal + 0.1 * n  # stitching the audio takes about 35 ms a row here
        with Timer() as t:
            state = asyncio.run(run_guarded(manifest, Path(tmp) / "out", Health(emulator, api_url), deadline))
        if not state.is_completed():
            raise BenchError(f"{mode} limits, {n} rows: the run ended {state.type.value}: {state.message}")
        summary = json.loads(Path(tmp, "out", "hosted", "summary.json").read_text())
        counts = emulator.counts()
    phases = summary["phases_s"]
    rows_phase = phases["plan"] + phases["generate"]
    usage = summary.get("limits", {}).get("wiro", {})
    result = {
        "rows": n,
        "limits": mode,
        "rows_phase_s": round(rows_phase, 1),
        "plan_s": round(phases["plan"], 2),
        "ideal_s": round(ideal, 1),
        "rows_phase_vs_ideal": round(rows_phase / ideal, 2),
        "wall_s": round(t.seconds, 1),
        "stitch_s": phases["stitch"],
        "slot_server_calls": usage.get("server_calls", {}),
        "peak_leased": usage.get("peak_leased"),
        "emulator_peak_tasks_at_once": counts["peak_active"],
        "runs": counts["runs"],
        "detail_requests_per_task": round(counts["detail_requests"] / max(1, counts["tasks"]), 2),
        "max_detail_requests_one_task": counts["max_details"],
        "load_avg_1m_before": round(load, 2),
        "load_avg_1m_after": round(os.getloadavg()[0], 2),
        "waited_for_server_s": settled,
    }
    if counts["peak_active"] > n:
        raise BenchError(
            f"{mode} limits, {n} rows: the emulator saw {counts['peak_active']} tasks at once, over the limit"
        )
    print(json.dumps(result), flush=True)
    return result


def main(sizes: list[int]) -> None:
    from prefect.settings import get_current_settings

    measurements = []
    with prefect_api():
        api_url = str(get_current_settings().api.url)
        server = "PREFECT_API_URL" if os.environ.get("PREFECT_API_URL") else "temporary (SQLite, its own process)"
        measure(WARM_UP_ROWS, "server", api_url)  # not reported: a process's first run pays for imports and setup
        for i, n in enumerate(sizes):  # the order alternates, so neither way always runs first
            for mode in ("server", "local") if i % 2 == 0 else ("local", "server"):
                measurements.append(measure(n, mode, api_url))
    by = {(m["rows"], m["limits"]): m for m in measurements}
    save(
        "hosted",
        {
            "prefect_server": server,
            "cpus": os.cpu_count(),
            "measurements": measurements,
            "server_vs_local_rows_phase": {
                str(n): round(by[n, "server"]["rows_phase_s"] / by[n, "local"]["rows_phase_s"], 2) for n in sizes
            },
            "peak_rss_mb": round(peak_rss_mb(), 1),
        },
    )


if __name__ == "__main__":
    faulthandler.register(signal.SIGUSR1)  # kill -USR1 <pid>: every thread's stack, should it ever seem stuck
    try:
        main([int(a) for a in sys.argv[1:]] or [200, 1000])
    except BenchError as exc:
        print(f"hosted benchmark: {exc}", file=sys.stderr)
        os._exit(2)  # Prefect's exit handlers would wait on a dead server
