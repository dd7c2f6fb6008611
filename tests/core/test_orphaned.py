"""A process someone else started (a Prefect worker's flow run) ends in order once its parent is gone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from tests.helpers.paths import ROOT

GRANDCHILD = textwrap.dedent(
    """
    import signal, sys, threading, time
    sys.path.insert(0, {src!r})
    from mediamill.core.processes import end_when_orphaned

    def stopped(*_):
        open({mark!r}, "w").write("SIGTERM")
        if {how!r} != "ignores":
            sys.exit(0)  # else the handler's exit is lost, as an exception swallowed in an event loop would be

    def work():  # as a flow's event-loop thread goes on making rows after the main thread has gone
        for _ in range(2400):
            open({words!r}, "a").write("working\\n")
            time.sleep(0.05)

    if {how!r} == "lingers":  # a thread that is no daemon keeps the process after its main thread ends
        threading.Thread(target=work).start()
    signal.signal(signal.SIGTERM, stopped)
    end_when_orphaned(0.05, grace_s={grace!r}, last_words=lambda: open({words!r}, "a").write("crashed\\n"))
    print("ready", flush=True)
    time.sleep(120)
    """
)
PARENT = textwrap.dedent(
    """
    import subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c", {code!r}], stdout=open({ready!r}, "w"))
    open({pid!r}, "w").write(str(child.pid))
    time.sleep(120)
    """
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize(
    ("how", "grace"),
    [("obeys", 1.0), ("ignores", 1.0), ("lingers", 60.0)],
    ids=["ends-on-sigterm", "killed-after-the-grace", "killed-soon-after-its-main-thread-ends"],
)
def test_a_process_sends_itself_sigterm_when_its_parent_is_killed(tmp_path, how, grace):
    """SIGTERM first; a process that does not end on it is SIGKILLed after the grace (its claims go with it), or
    a few seconds after its main thread has ended when other threads still hold it. Its last words (the crash
    record) are said once in every case, an exit on its own included."""
    mark, ready, pid_file, words = tmp_path / "mark", tmp_path / "ready", tmp_path / "pid", tmp_path / "words"
    code = GRANDCHILD.format(src=str(ROOT / "src"), mark=str(mark), how=how, grace=grace, words=str(words))
    parent = subprocess.Popen([sys.executable, "-c", PARENT.format(code=code, ready=str(ready), pid=str(pid_file))])
    try:
        deadline = time.monotonic() + 60
        while not (ready.is_file() and "ready" in ready.read_text()):
            assert time.monotonic() < deadline, "the watched process never started"
            time.sleep(0.05)
        child = int(pid_file.read_text())
        time.sleep(0.3)
        assert not mark.exists()  # a living parent is left alone
        parent.send_signal(signal.SIGKILL)  # the worker alone, as the OOM killer would
        parent.wait()
        while not mark.exists():
            assert time.monotonic() < deadline, "the orphan was not told to stop"
            time.sleep(0.05)
        assert mark.read_text() == "SIGTERM"
        told = time.monotonic()
        while _alive(child):
            assert time.monotonic() < deadline, "the orphan did not end"
            time.sleep(0.05)
        assert time.monotonic() - told < 20  # not the 60 s grace: its main thread was done
        said = [line for line in words.read_text().splitlines() if line != "working"]
        assert said == ["crashed"]  # its last words, said once, however it ended ...
        after = words.read_text().split("crashed\n")[1].splitlines()
        assert len(after) <= 1, after  # ... and last: nothing of its work goes on once it is recorded crashed
    finally:
        if parent.poll() is None:
            parent.kill()
