"""The command line as a user runs it: real processes; the first run and the interrupted one with their own
temporary Prefect API, the rest sharing the test process's (``tests.helpers.cli``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from mediamill.media.probe import probe
from tests.helpers.cli import cli_env, mediamill

pytestmark = pytest.mark.slow


def finished_entries(outputs: Path) -> dict[str, int]:
    """Store records (the proof a row is done) by name, with their modification times; a record being written
    (a hidden temporary, which a kill may leave and the next run sweeps) is none."""
    records = (outputs / ".store" / "objects").rglob("*.json")
    return {p.name: p.stat().st_mtime_ns for p in records if not p.name.startswith(".")}


def test_run_and_report_commands(write_manifest, tmp_path):
    path = write_manifest(
        "id,chapter,text\nl1,Opening,The first line of a tiny book.\nl2,,And the second one.\n",
        name="tiny",
        sidecar='title = "Tiny"\nauthor = "Tester"\n',
    )
    out = tmp_path / "out"
    first = mediamill("run", str(path), "--outputs", str(out), own_api=True)
    assert first.returncode == 0, first.stderr
    assert "tiny: 2 rows — 2 done, 0 cached, 0 failed" in first.stderr
    # The run's logs reach its temporary API before the API stops: nothing is sent to a dead server.
    assert "Error logging to API" not in first.stderr and "connection attempts failed" not in first.stderr
    assert (out / "tiny" / "tiny.m4b").is_file()

    again = mediamill("run", str(path), "--outputs", str(out))
    assert again.returncode == 0, again.stderr
    assert "0 done, 2 cached" in again.stderr

    report = mediamill("report", str(path), "--outputs", str(out))
    assert report.returncode == 0
    assert "| 2 | 0 | 2 | 0 |" in report.stdout


def test_sweep_command(tmp_path):
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    (inbox / "one.csv").write_text("id,text\na,A line to sweep.\n")
    (inbox / "two.csv").write_text("id,text\nb,\n")
    first = mediamill("sweep", str(inbox), "--outputs", str(out), "--backend", "silence")
    assert first.returncode == 1, first.stderr
    assert "1 of 2 manifests failed: two.csv: row 1 (line 2), column 'text'" in " ".join(first.stderr.split())
    assert (out / "one" / "results.csv").is_file()
    (inbox / "two.csv").write_text("id,text\nb,Fixed now.\n")
    second = mediamill("sweep", str(inbox), "--outputs", str(out), "--backend", "silence")
    assert second.returncode == 0 and "1 manifests produced, 1 unchanged" in " ".join(second.stderr.split())


def test_run_refuses_an_invalid_manifest_before_starting(write_manifest, tmp_path):
    path = write_manifest("id,text\ngood,Fine.\nbad one,Words.\n", name="broken")
    proc = mediamill("run", str(path), "--outputs", str(tmp_path / "out"), own_api=True)
    assert proc.returncode == 2
    assert "row 2 (line 3), column 'id'" in proc.stderr
    assert "Starting temporary server" not in proc.stderr + proc.stdout
    assert not (tmp_path / "out").exists()


def test_a_killed_run_resumes_without_redoing_finished_rows(demo_copy, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mediamill.cli", "run", str(demo_copy), "--outputs", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=cli_env(),
        start_new_session=True,
    )
    deadline = time.monotonic() + 240
    try:
        while len(finished_entries(out) if out.exists() else {}) < 4:
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "no rows finished in time"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    before = finished_entries(out)
    assert 4 <= len(before) < 16, "the kill should land mid-run"
    resumed = mediamill("run", str(demo_copy), "--outputs", str(out))
    assert resumed.returncode == 0, resumed.stderr

    after = finished_entries(out)
    assert len(after) == 16
    assert all(after[name] == mtime for name, mtime in before.items()), "finished rows were redone"
    rows = pq.read_table(out / "audiobook" / "results.parquet").to_pylist()
    cached = {r["key"] for r in rows if r["status"] == "cached"}
    assert cached == {name.removesuffix(".json") for name in before}
    assert {r["status"] for r in rows} <= {"done", "cached"}
    # No half-written file anywhere a user or a rerun could mistake for output.
    leftovers = [p for p in out.rglob("*") if ".partial" in p.name and ".store/tmp" not in p.as_posix()]
    assert leftovers == []
    book = probe(out / "audiobook" / "audiobook.m4b")
    assert len(book.chapters) == 2 and book.duration_s > 60


def test_ctrl_c_stops_promptly_and_the_next_run_resumes(demo_copy, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mediamill.cli", "run", str(demo_copy), "--outputs", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=cli_env(own_api=True),
        start_new_session=True,
    )
    deadline = time.monotonic() + 240
    while len(finished_entries(out) if out.exists() else {}) < 2:
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal sends on Ctrl-C: the run and its temporary server
    try:
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130
    assert "interrupted: finished rows are kept" in output
    assert output.count("interrupted:") == 1
    done = finished_entries(out)
    resumed = mediamill("run", str(demo_copy), "--outputs", str(out))
    assert resumed.returncode == 0, resumed.stderr
    assert f"{len(done)} cached" in resumed.stderr
