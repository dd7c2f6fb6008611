"""The content-addressed store and atomic writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from mediamill.core.files import atomic_path
from mediamill.core.redact import error_line, redact
from mediamill.report import read_results, write_results
from mediamill.store import Store
from tests.helpers.runs import result_row


def test_put_then_get_and_partial_entries_are_ignored(tmp_path):
    store = Store(tmp_path)
    key = "ab" + "0" * 62
    with store.workdir(key) as work:
        media = work / "x.wav"
        media.write_bytes(b"data" * 100)
        entry = store.put(key, media, {"duration_s": 1.5})
    assert not any(store.tmp.iterdir())  # scratch removed
    got = store.get(key)
    assert got is not None and got.path == entry.path and got.duration_s == 1.5
    entry.path.write_bytes(b"truncated")  # size no longer matches the record
    assert store.get(key) is None
    entry.path.with_suffix(".json").write_text("{not json")
    assert store.get(key) is None


def test_atomic_path_keeps_the_old_file_when_writing_fails(tmp_path):
    dest = tmp_path / "out.txt"
    dest.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(dest) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert dest.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_results_csv_escapes_formulas_and_parquet_round_trips(tmp_path):
    write_results(tmp_path, [result_row(chapter='=HYPERLINK("http://x")', error="-oops")])
    text = (tmp_path / "results.csv").read_text()
    assert "'=HYPERLINK" in text and ",'-oops," in text
    (row,) = read_results(tmp_path)
    assert row["chapter"] == '=HYPERLINK("http://x")'  # parquet keeps the value as written


def test_secrets_from_the_environment_are_masked(monkeypatch):
    monkeypatch.setenv("WIRO_API_KEY", "sk-live-1234567890")
    assert redact("auth failed for sk-live-1234567890") == "auth failed for ***"
    assert error_line(ValueError("key sk-live-1234567890\nsecond line")) == "ValueError: key *** second line"


# -- what killed writers leave, and what the sweeps take ------------------------------------------

_HOLDER = """
import sys, time
from pathlib import Path
from mediamill.core.files import atomic_path, scratch_dir
kind, target = sys.argv[1], Path(sys.argv[2])
if kind == "partial":
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"half a file")
        print(tmp, flush=True)
        time.sleep(600)
else:
    with scratch_dir(target, "work-") as folder:
        (folder / "piece.wav").write_bytes(b"x")
        print(folder, flush=True)
        time.sleep(600)
"""


def _holding(kind: str, target, tmp_path):
    """A process in the middle of an atomic write (or with a scratch folder), and the path it holds."""
    import os
    import subprocess
    import sys

    script = tmp_path / "holder.py"
    script.write_text(_HOLDER)
    proc = subprocess.Popen(
        [sys.executable, str(script), kind, str(target)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    return proc, Path(proc.stdout.readline().strip())


def _aged(path, seconds: float = 60.0) -> None:
    import os
    import time

    old = time.time() - seconds
    os.utime(path, (old, old))


def test_a_live_writers_partial_file_is_kept_and_a_killed_ones_is_swept(tmp_path):
    from mediamill.core.files import sweep_partials

    book = tmp_path / "book"
    proc, partial = _holding("partial", book / "book.m4b", tmp_path)
    try:
        assert partial.is_file() and partial.name.startswith(".book.") and ".partial" in partial.name
        _aged(partial)
        assert sweep_partials(book) == [] and partial.exists()  # its writer is alive: not ours to remove
    finally:
        proc.kill()
        proc.wait()
    (book / ".book.0badc0de.partial.m4b").write_bytes(b"too new to judge")  # created a moment ago
    assert sweep_partials(book) == [partial]
    assert not partial.exists() and (book / ".book.0badc0de.partial.m4b").exists()
    (book / "book.m4b").write_bytes(b"delivered")
    _aged(book / "book.m4b")
    assert sweep_partials(book) == []  # finished files are never touched


def test_scratch_of_a_dead_run_is_swept_at_once_and_a_live_runs_is_kept(tmp_path):
    from mediamill.core.files import sweep_scratch

    parent = tmp_path / "tmp"
    proc, live = _holding("scratch", parent, tmp_path)
    try:
        _aged(live)
        assert sweep_scratch(parent, max_age_s=24 * 3600) == [] and live.is_dir()
    finally:
        proc.kill()
        proc.wait()
    assert sweep_scratch(parent, max_age_s=24 * 3600) == [live] and not live.exists()
    legacy = parent / "older-version-dir"  # no owner file: judged by age alone
    legacy.mkdir()
    _aged(legacy, 10)
    assert sweep_scratch(parent, max_age_s=24 * 3600) == [] and legacy.exists()
    _aged(legacy, 2 * 24 * 3600)
    assert sweep_scratch(parent, max_age_s=24 * 3600) == [legacy]


def test_a_scratch_folder_killed_in_the_making_is_swept_at_once(tmp_path):
    """A kill between making the folder and locking its owner file leaves it ownerless: it must not wait a
    day (the crash test's kill at the first sight of a generation's folder found one left after the rerun)."""
    from mediamill.core.files import MAKING, OWNER_FILE, scratch_dir, sweep_scratch

    parent = tmp_path / "tmp"
    with scratch_dir(parent, "key-") as path:
        assert path.name.startswith("key-") and (path / OWNER_FILE).exists()
        assert [p.name for p in parent.iterdir()] == [path.name]  # only ever seen with its owner
    orphan = parent / f".key-0badc0de{MAKING}"
    orphan.mkdir()
    assert sweep_scratch(parent, max_age_s=24 * 3600) == []  # too young to judge: its maker may be at work
    _aged(orphan, 3)
    assert sweep_scratch(parent, max_age_s=24 * 3600) == [orphan] and not orphan.exists()


def test_a_child_started_with_child_options_dies_with_its_parent(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from mediamill.core.processes import linked_to_parent

    if not linked_to_parent():
        pytest.skip("this platform cannot tie a child's life to its parent")
    parent_code = (
        "import subprocess, sys, time\n"
        "from mediamill.core.processes import child_options\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'], **child_options())\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", parent_code],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    child = int(parent.stdout.readline())
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return
        with open(f"/proc/{child}/stat") as stat:  # reaped by init as a zombie counts as gone
            if stat.read().split(") ", 1)[1].startswith("Z"):
                return
        time.sleep(0.05)
    os.kill(child, signal.SIGKILL)
    pytest.fail("the child outlived its SIGKILLed parent")
