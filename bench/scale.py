"""10,000 rows: mediamill's produce flow vs bare Prefect tasks, ephemeral and against a server.

Each measurement runs in its own process, so its peak memory is its own:

- ``bare``: one no-op Prefect task per row (concurrency bounded like mediamill's), the
  baseline a hand-written Prefect flow would pay;
- ``mediamill``: the produce flow on a manifest of N rows with the ``silence`` backend,
  which does next to no work; timed by phase, so the row phase (plan, task runs, store)
  is compared with the baseline and stitching the book's audio is reported apart.

Against a server: a real ``prefect server start`` on loopback (SQLite), started here;
once with the backend's limit on the server (the default), once with ``MEDIAMILL_LIMITS=local``
to show what the server-side slots cost (``bare`` is the same server's baseline).
Memory is given at 1,000 and 10,000 rows, to show it does not grow with the manifest.
Usage: python bench/scale.py [ROWS]
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import peak_rss_mb, save  # noqa: E402
from orchestration import write_manifest  # noqa: E402

LIMIT = 8  # the silence backend's default concurrency, used for both sides


def child(kind: str, rows: int) -> dict:
    """One measurement, in this process."""
    if kind == "bare":
        from prefect import flow, task
        from prefect.cache_policies import NO_CACHE

        @task(cache_policy=NO_CACHE, persist_result=False, task_run_name="row-{i}")
        async def noop(i: int) -> int:
            return i

        @flow
        async def bare(n: int) -> None:
            sem = asyncio.Semaphore(LIMIT)

            async def one(i: int) -> None:
                async with sem:
                    await noop(i)

            await asyncio.gather(*(one(i) for i in range(n)))

        start = time.perf_counter()
        asyncio.run(bare(rows))
        return {"wall_s": round(time.perf_counter() - start, 2), "peak_rss_mb": round(peak_rss_mb(), 1)}

    from mediamill.flows import produce

    with tempfile.TemporaryDirectory() as tmp:
        manifest = write_manifest(Path(tmp), rows)
        start = time.perf_counter()
        state = asyncio.run(produce(str(manifest), backend="silence", outputs=f"{tmp}/out", return_state=True))
        wall = time.perf_counter() - start
        assert state.is_completed(), state.message
        summary = json.loads(Path(tmp, "out", "bench", "summary.json").read_text())
    phases = summary["phases_s"]
    return {
        "wall_s": round(wall, 2),
        "rows_phase_s": round(phases["plan"] + phases["generate"], 2),
        "stitch_s": phases["stitch"],
        "done": summary["done"],
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def measure(kind: str, rows: int, env: dict) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(rows)], env=env, capture_output=True, text=True, timeout=3600
    )
    if out.returncode != 0:
        raise SystemExit(f"{kind} {rows} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def start_server(home: Path) -> tuple[subprocess.Popen, str]:
    from mediamill.core.processes import child_options

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_UI_ENABLED": "false"}
    log = (home / "server.log").open("w")
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("prefect")), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        **child_options(),
    )
    import httpx

    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.5)
    raise SystemExit("prefect server did not start")


def main(rows: int = 10_000) -> None:
    base = {
        **os.environ,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING",
        "PREFECT_SERVER_LOGGING_LEVEL": "CRITICAL",
    }
    doc: dict = {"rows": rows, "concurrency": LIMIT}
    with tempfile.TemporaryDirectory() as tmp:
        ephemeral = {k: v for k, v in base.items() if k != "PREFECT_API_URL"}
        ephemeral["PREFECT_HOME"] = f"{tmp}/ephemeral-home"
        proc, url = start_server(Path(tmp))
        try:
            server = {**base, "PREFECT_API_URL": url}
            modes = (
                ("ephemeral", ephemeral),
                ("server", server),
                ("server_local_limits", {**server, "MEDIAMILL_LIMITS": "local"}),
            )
            for mode, env in modes:
                if mode != "server_local_limits":
                    bare = measure("bare", rows, env)
                    small = measure("mediamill", rows // 10, env)
                full = measure("mediamill", rows, env)
                doc[mode] = {
                    "bare_s": bare["wall_s"],
                    "bare_ms_per_row": round(1000 * bare["wall_s"] / rows, 2),
                    "mediamill_s": full["wall_s"],
                    "rows_phase_s": full["rows_phase_s"],
                    "rows_phase_ms_per_row": round(1000 * full["rows_phase_s"] / rows, 3),
                    "rows_phase_ratio_vs_bare": round(full["rows_phase_s"] / bare["wall_s"], 3),
                    "stitch_s": full["stitch_s"],
                    "bare_peak_rss_mb": bare["peak_rss_mb"],
                    f"peak_rss_mb_{rows // 10}_rows": small["peak_rss_mb"],
                    f"peak_rss_mb_{rows}_rows": full["peak_rss_mb"],
                }
                print(mode, json.dumps(doc[mode]), flush=True)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
    save("scale", doc)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(child(sys.argv[2], int(sys.argv[3]))))
    else:
        main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
