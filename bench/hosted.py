"""1,000 hosted rows against the Wiro emulator with realistic task durations.

The emulator runs in its own process (so its work does not share our GIL).
Each task waits 0.5-3 s in the service's queue and runs 4-15 s (seeded), as
hosted TTS does. mediamill runs every row at once (limit 1,000) with its
default polling (2 s, growing to 10 s). Reported: wall time vs the ideal
(longest task + one poll interval), Detail requests per task, peak memory.
Usage: python bench/hosted.py [ROWS]
"""

from __future__ import annotations

import asyncio
import csv
import json
import multiprocessing as mp
import os
import random
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Timer, peak_rss_mb, prefect_api, save  # noqa: E402

KEY, SECRET = "bench-key-0123456789", "bench-secret-0123456789"
POLL_MAX_S = 10.0


def task_durations(n: int) -> dict[str, tuple[float, float]]:
    rng = random.Random(7)
    return {f"Line {i} for the hosted benchmark.": (rng.uniform(0.5, 3.0), rng.uniform(4.0, 15.0)) for i in range(n)}


def emulator_process(n: int, urls: mp.Queue, stop: mp.Event, stats: mp.Queue) -> None:
    from tests.emulators.wiro import WiroEmulator

    table = task_durations(n)
    with WiroEmulator(api_key=KEY, api_secret=SECRET, durations=lambda model, inputs: table[inputs["prompt"]]) as wiro:
        urls.put(wiro.url)
        stop.wait()
        details = [wiro.detail_count(t) for t in wiro.tasks]
        stats.put({"runs": len(wiro.runs), "tasks": len(wiro.tasks), "detail_requests": sum(details), "max_details": max(details)})


def main(n: int = 1000) -> None:
    from mediamill.flows import produce

    ctx = mp.get_context("spawn")
    urls, stats, stop = ctx.Queue(), ctx.Queue(), ctx.Event()
    child = ctx.Process(target=emulator_process, args=(n, urls, stop, stats), daemon=True)
    child.start()
    url = urls.get(timeout=60)
    os.environ.update(
        WIRO_BASE_URL=url, WIRO_API_KEY=KEY, WIRO_API_SECRET=SECRET, WIRO_POLL_MAX_S=str(POLL_MAX_S),
        MEDIAMILL_CONCURRENCY=f'{{"wiro": {n}}}',
    )  # fmt: skip
    with prefect_api(), tempfile.TemporaryDirectory() as tmp:
        manifest = Path(tmp) / "hosted.csv"
        with manifest.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["id", "text"])
            writer.writerows([f"r{i:05d}", text] for i, text in enumerate(task_durations(n)))
        with Timer() as t:
            state = asyncio.run(produce(str(manifest), backend="wiro", outputs=f"{tmp}/out", return_state=True))
        assert state.is_completed(), state.message
        phases = json.loads(Path(tmp, "out", "hosted", "summary.json").read_text())["phases_s"]
    stop.set()
    counts = stats.get(timeout=60)
    child.join(timeout=30)
    longest = max(q + r for q, r in task_durations(n).values())
    ideal = longest + POLL_MAX_S
    save(
        "hosted",
        {
            "rows": n,
            "wall_s": round(t.seconds, 1),
            "longest_task_s": round(longest, 1),
            "ideal_s": round(ideal, 1),
            "wall_vs_ideal": round(t.seconds / ideal, 2),
            "rows_phase_s": round(phases["plan"] + phases["generate"], 1),
            "rows_phase_vs_ideal": round((phases["plan"] + phases["generate"]) / ideal, 2),
            "stitch_s": phases["stitch"],
            "runs": counts["runs"],
            "detail_requests_per_task": round(counts["detail_requests"] / counts["tasks"], 2),
            "max_detail_requests_one_task": counts["max_details"],
            "peak_rss_mb": round(peak_rss_mb(), 1),
        },
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
