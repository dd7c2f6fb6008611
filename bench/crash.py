"""Crash safety at random instants: many SIGKILLs, each followed by checks, until the run completes.

The test suite's chain (tests/test_crash.py) kills at ten named points; this
script adds kills at random instants of the same production (Piper without
noise, two rows on the Wiro emulator, audiobook + ACX delivery), in chains:
each launch is killed at a random moment within an uninterrupted run's
duration, the next resumes, until one completes. After every kill: store
records match their media, every delivered file equals the uninterrupted
run's, and nothing the killed run started (its temporary Prefect API, ffmpeg)
is still alive. After every chain: the book is byte-identical, nothing but
delivered files and store records remains, and each hosted row was submitted
once, plus once per kill that fell inside a submission's round trip (the one
window Wiro's API gives no way to close).
Usage: python bench/crash.py [KILLS] [SEED]
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save  # noqa: E402

from tests.helpers import crash  # noqa: E402
from tests.helpers.emulators.wiro import WiroEmulator  # noqa: E402


def at(seconds: float) -> crash.KillPoint:
    return crash.KillPoint(f"t={seconds:.2f}s", lambda out, since: time.time() - since >= seconds)


def unjournaled(runs: list[dict], out: Path) -> int:
    noted = {json.loads(p.read_text()).get("task_id") for p in (out / ".store" / "journal").glob("[!.]*.json")}
    noted |= {json.loads(p.read_text()).get("task_id") for p in (out / ".store" / "objects").rglob("*.json")}
    return sum(1 for r in runs if r["taskid"] not in noted)


def main(kills_wanted: int = 30, seed: int = 7) -> None:
    rng = random.Random(seed)
    work = Path(tempfile.mkdtemp(prefix="mediamill-crash-"))
    manifest = crash.lamp_book(work)
    with WiroEmulator(api_key=crash.KEY, api_secret=crash.SECRET, queue_s=0.2, run_s=2.5) as wiro:
        env = crash.wiro_env(work / "prefect", wiro.url, own_api=True)  # as a user's runs: each its own API
        clean = crash.launch(manifest, work / "reference", env, [])
        assert clean.returncode == 0, clean.log[-2000:]
        expected = crash.deliverables(work / "reference", "lamp")
        full_s = clean.seconds
        kills, chains, window, failures, leaked = [], 0, 0, [], 0
        while len(kills) < kills_wanted:
            chains += 1
            out = work / f"chain-{chains}"
            first_run = len(wiro.runs)
            chain_window = 0
            while True:
                before = len(wiro.runs)
                result = crash.launch(
                    manifest, out, env, [at(rng.uniform(0.2, full_s))] if len(kills) < kills_wanted else []
                )
                if not result.killed:
                    break
                kills.append(result.point)
                if result.leaked:
                    leaked += 1
                    failures.append(f"chain {chains}: {result.point}: still running after the kill: {result.leaked}")
                time.sleep(0.5)
                chain_window += unjournaled(wiro.runs[before:], out)
                failures += [f"chain {chains}: {p}" for p in crash.store_problems(out)]
                failures += [
                    f"chain {chains}: {p} differs"
                    for p, d in crash.deliverables(out, "lamp").items()
                    if d != expected[p]
                ]
            if result.returncode != 0:
                failures.append(f"chain {chains}: final run exited {result.returncode}")
            if crash.deliverables(out, "lamp") != expected:
                failures.append(f"chain {chains}: the finished book differs")
            if crash.leftovers(out):
                failures.append(f"chain {chains}: left behind: {crash.leftovers(out)}")
            paid = Counter(r["inputs"]["prompt"] for r in wiro.runs[first_run:])
            if sum(paid.values()) != crash.HOSTED_ROWS + chain_window:
                failures.append(f"chain {chains}: {dict(paid)} submissions with {chain_window} round-trip kills")
            window += chain_window
    doc = {
        "kills": len(kills),
        "chains": chains,
        "uninterrupted_run_s": round(full_s, 1),
        "kills_in_a_submission_round_trip": window,
        "kills_that_left_a_process_running": leaked,
        "failures": failures,
        "ok": not failures,
    }
    save("crash", doc)


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
