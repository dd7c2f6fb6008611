"""Shared helpers for the benchmarks: a Prefect API for the whole run, timing, output."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import time
from pathlib import Path

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "CRITICAL")
os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")

RESULTS = Path(__file__).resolve().parent / "results"


@contextlib.contextmanager
def prefect_api():
    """Use PREFECT_API_URL if set, else one temporary server for every measurement in the run."""
    if os.environ.get("PREFECT_API_URL"):
        yield
        return
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        try:
            yield
        except BaseException:
            # The harness stops its server only when the block ends normally: a benchmark that
            # fails would leave the server process running after it exits.
            stop_temporary_server()
            raise


def stop_temporary_server() -> None:
    """Stop prefect_api()'s temporary server, if one runs (before an os._exit, say)."""
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer._instances.get(None)
    if server is not None:
        server.stop()


async def _task_run_count() -> int:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        response = await client._client.post("/task_runs/count", json={})
        response.raise_for_status()
        return int(response.json())


def wait_for_server(expected: int, timeout: float = 300) -> float:
    """Wait until the server has recorded ``expected`` task runs; return the seconds waited.

    Task runs reach the server as events that it records in the background;
    measuring the next thing while it still works through a backlog would
    charge that work to the wrong measurement.
    """
    import asyncio

    start = time.perf_counter()
    while asyncio.run(_task_run_count()) < expected:
        if time.perf_counter() - start > timeout:
            raise TimeoutError(f"server recorded fewer than {expected} task runs in {timeout} s")
        time.sleep(0.25)
    return time.perf_counter() - start


class Timer:
    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.start


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def save(name: str, doc: dict) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(doc, indent=2))
    print(json.dumps(doc, indent=2))
