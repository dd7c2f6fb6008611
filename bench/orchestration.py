"""Orchestration overhead per row: mediamill's produce flow vs bare Prefect tasks (one per row).

Both run in one process against one Prefect API. The manifest uses the
``silence`` backend, which does next to no work, so what is measured is
mediamill's own cost per row: planning, the store, Prefect task runs,
results. Usage: python bench/orchestration.py [ROWS]
"""

from __future__ import annotations

import asyncio
import csv
import json
import math
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Timer, peak_rss_mb, prefect_api, save, wait_for_server  # noqa: E402
from prefect import flow, task  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402


@task(cache_policy=NO_CACHE, persist_result=False)
async def noop(i: int) -> int:
    return i


@flow
async def bare(n: int, limit: int) -> None:
    sem = asyncio.Semaphore(limit)
    named = noop.with_options(task_run_name="row-{i}")

    async def one(i: int) -> None:
        async with sem:
            await named(i)

    await asyncio.gather(*(one(i) for i in range(n)))


def write_manifest(folder: Path, n: int) -> Path:
    path = folder / "bench.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "chapter", "text"])
        for i in range(n):
            w.writerow([f"r{i:05d}", f"Chapter {i // 100 + 1}" if i % 100 == 0 else "", f"Line {i}."])
    return path


def main(n: int = 1000) -> None:
    from mediamill.backends.silence import SilenceBackend
    from mediamill.flows import produce

    limit = SilenceBackend.default_concurrency
    with prefect_api(), tempfile.TemporaryDirectory() as tmp:
        manifest = write_manifest(Path(tmp), n)
        asyncio.run(bare(5, limit))  # warm-up: client, API connection
        wait_for_server(5)
        with Timer() as t_bare:
            asyncio.run(bare(n, limit))
        drain_bare = wait_for_server(5 + n)
        with Timer() as t_mm:
            state = asyncio.run(produce(str(manifest), backend="silence", outputs=f"{tmp}/out", return_state=True))
        assert state.is_completed(), state.message
        # Row task runs (silence runs 100 rows per task run) and the stitch task.
        drain_mm = wait_for_server(5 + n + math.ceil(n / SilenceBackend.batch_rows) + 1)
        phases = json.loads(Path(tmp, "out", "bench", "summary.json").read_text())["phases_s"]
        with Timer() as t_rerun:
            asyncio.run(produce(str(manifest), backend="silence", outputs=f"{tmp}/out", return_state=True))
    doc = {
        "rows": n,
        "bare_prefect_s": round(t_bare.seconds, 2),
        "bare_ms_per_task": round(1000 * t_bare.seconds / n, 2),
        "mediamill_s": round(t_mm.seconds, 2),
        "mediamill_ms_per_row": round(1000 * t_mm.seconds / n, 2),
        "ratio_vs_bare": round(t_mm.seconds / t_bare.seconds, 2),
        # The row phase alone: plan + task runs + store, without stitching the book's audio.
        "rows_phase_ms_per_row": round(1000 * (phases["plan"] + phases["generate"]) / n, 2),
        "rows_phase_ratio_vs_bare": round((phases["plan"] + phases["generate"]) / t_bare.seconds, 2),
        "stitch_s": phases["stitch"],
        "rerun_all_cached_s": round(t_rerun.seconds, 2),
        "server_backlog_after_bare_s": round(drain_bare, 1),
        "server_backlog_after_mediamill_s": round(drain_mm, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
    save("orchestration", doc)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
