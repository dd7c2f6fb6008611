"""Killed and interrupted runs against the hosted-API emulators: no double billing, nothing lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.helpers import hosted
from tests.helpers.cli import cli_env
from tests.helpers.emulators.wiro import WiroEmulator
from tests.helpers.hosted import WIRO_KEY, WIRO_SECRET

pytestmark = pytest.mark.slow

KEY, SECRET = WIRO_KEY, WIRO_SECRET


def cli_wiro_env(emulator: WiroEmulator) -> dict[str, str]:
    return cli_env(
        **hosted.wiro_env(
            emulator.url, WIRO_POLL_INITIAL_S="0.1", WIRO_POLL_MAX_S="0.3", MEDIAMILL_RETRY_DELAY_S="0.05"
        )
    )


def start_run(manifest: Path, out: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "mediamill.cli", "run", str(manifest), "--backend", "wiro", "--outputs", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )


def wait_for(predicate, proc: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert proc.poll() is None, proc.communicate()[0][-2000:]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def speech(write_manifest, n: int) -> Path:
    return write_manifest(
        "id,text\n" + "".join(f"h{i},Hosted line {i} for the kill test.\n" for i in range(n)), name="hosted"
    )


def test_a_run_killed_after_submitting_resumes_its_tasks_instead_of_paying_again(write_manifest, tmp_path):
    manifest = speech(write_manifest, 6)
    out = tmp_path / "out"
    with WiroEmulator(api_key=KEY, api_secret=SECRET, queue_s=0.1, run_s=3.0) as wiro:
        proc = start_run(manifest, out, cli_wiro_env(wiro))
        try:
            wait_for(lambda: len(wiro.runs) >= 4, proc)  # the default limit, 4, are in flight
            time.sleep(0.3)  # let the task ids reach the journal
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        submitted = {r["taskid"] for r in wiro.runs}
        journals = list((out / ".store" / "journal").glob("*.json"))
        assert len(journals) == len(submitted) == 4

        resumed = subprocess.run(
            [sys.executable, "-m", "mediamill.cli", "run", str(manifest), "--backend", "wiro", "--outputs", str(out)],
            capture_output=True,
            text=True,
            env=cli_wiro_env(wiro),
            timeout=300,
        )
        assert resumed.returncode == 0, resumed.stderr
        prompts = Counter(r["inputs"]["prompt"] for r in wiro.runs)
        assert len(prompts) == 6 and set(prompts.values()) == {1}  # exactly one Run per row
        rows = pq.read_table(out / "hosted" / "results.parquet").to_pylist()
        assert {r["status"] for r in rows} == {"done"}
        assert submitted <= {r["task_id"] for r in rows}  # the killed run's tasks were collected
        assert not list((out / ".store" / "journal").glob("*.json"))


def test_ctrl_c_cancels_queued_and_kills_running_hosted_tasks(write_manifest, tmp_path):
    manifest = speech(write_manifest, 4)

    def durations(model: str, inputs: dict) -> tuple[float, float]:
        # Two tasks start at once and run long; two wait in the service's queue.
        return (0.05, 60.0) if inputs["prompt"].startswith(("Hosted line 0", "Hosted line 1")) else (60.0, 1.0)

    with WiroEmulator(api_key=KEY, api_secret=SECRET, durations=durations) as wiro:
        proc = start_run(manifest, tmp_path / "out", cli_wiro_env(wiro))
        wait_for(lambda: len(wiro.runs) >= 4, proc)
        time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGINT)
        try:
            output, _ = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        assert proc.returncode == 130, output[-2000:]
        tasks = list(wiro.tasks.values())
        assert len(tasks) == 4 and all(t.status == "task_cancel" for t in tasks)
        assert sum(t.killed for t in tasks) == 2 and sum(t.cancelled and not t.killed for t in tasks) == 2
        endpoints = Counter(endpoint for endpoint, _ in wiro.requests)
        assert endpoints["Kill"] >= 2 and endpoints["Cancel"] >= 2
