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
    import signal, sys, time
    sys.path.insert(0, {src!r})
    from mediamill.core.processes import end_when_orphaned

    def stopped(*_):
        open({mark!r}, "w").write("SIGTERM")
        if {obeys!r}:
            sys.exit(0)  # else the handler's exit is lost, as an exception swallowed in an event loop would be

    signal.signal(signal.SIGTERM, stopped)
    end_when_orphaned(0.05, grace_s=1.0)
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


@pytest.mark.parametrize("obeys", [True, False], ids=["ends-on-sigterm", "killed-after-the-grace"])
def test_a_process_sends_itself_sigterm_when_its_parent_is_killed(tmp_path, obeys):
    """SIGTERM first; a process that does not end on it is SIGKILLed after the grace (its claims go with it)."""
    mark, ready, pid_file = tmp_path / "mark", tmp_path / "ready", tmp_path / "pid"
    code = GRANDCHILD.format(src=str(ROOT / "src"), mark=str(mark), obeys=obeys)
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
        while _alive(child):
            assert time.monotonic() < deadline, "the orphan did not end"
            time.sleep(0.05)
    finally:
        if parent.poll() is None:
            parent.kill()
