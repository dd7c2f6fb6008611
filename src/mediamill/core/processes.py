"""Child processes that end with the process that started them, however it dies.

A run killed with SIGKILL (the OOM killer, a preempted spot machine,
``kill -9``) runs no clean-up, so its children must not depend on one. On
Linux each child asks the kernel, between fork and exec, for SIGKILL when its
parent dies (``PR_SET_PDEATHSIG``), and exits at once if the parent is
already gone. The signal follows the *thread* that started the child, so a
child meant to live as long as the process is started from its main thread;
a child started by a call that waits for it (ffmpeg) cannot outlive that
call's thread anyway. Elsewhere children are started as usual.

``end_when_orphaned()`` is the other side: a process started by someone else
(a Prefect worker's flow run) that sends itself SIGTERM once its parent is
gone, so it ends the way a stopped run ends instead of running on unwatched.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

PR_SET_PDEATHSIG = 1

_prctl: Any = None
if sys.platform.startswith("linux"):
    try:
        _prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # an unusual libc: children are started as usual
        _prctl = None


def linked_to_parent() -> bool:
    """Whether children started with ``die_with_parent`` really end with their parent here."""
    return _prctl is not None


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child end when this process does (None where the OS cannot)."""
    if _prctl is None:
        return None
    parent = os.getpid()
    prctl = _prctl  # resolved before fork: the child only calls it

    def link() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before the link was made
            os._exit(1)

    return link


def child_options() -> dict[str, Any]:
    """Keyword arguments for ``subprocess.run``/``Popen`` that tie the child's life to this process."""
    link = die_with_parent()
    return {"preexec_fn": link} if link is not None else {}


EXIT_S = 3.0  # what an orphan whose main thread has ended gets to exit on its own


def end_when_orphaned(
    every_s: float = 1.0, grace_s: float = 30.0, last_words: Callable[[], None] | None = None
) -> threading.Thread:
    """Watch this process's parent from a daemon thread; when it is gone, SIGTERM this process.

    A parent's death re-parents the process (``getppid`` changes), which is checked every ``every_s``.
    SIGTERM, not SIGKILL: the process's own handler ends it in order and records why. It is SIGKILLed when it
    is still alive ``grace_s`` later (Prefect's handler raises in the main thread, and where that lands inside
    an event loop's machinery the exception can be swallowed), or ``EXIT_S`` after its main thread has ended:
    a flow-run process whose handler ran is then held only by threads that are not daemons (Prefect's
    heartbeat and event-loop threads; seen on a killed worker's flow run, holding its claims). ``last_words``
    runs just before that SIGKILL, or at exit when the process ends on its own first (to record why, where
    nothing else will; it must leave alone a run that did record its end)."""
    parent = os.getppid()
    main = threading.main_thread()
    said = threading.Lock()

    def say_last_words() -> None:
        if last_words is not None and said.acquire(blocking=False):  # once, from here or from atexit
            with contextlib.suppress(Exception):
                last_words()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every_s)
        atexit.register(say_last_words)  # a process that ends on its own before this thread speaks
        os.kill(os.getpid(), signal.SIGTERM)
        ends = time.monotonic() + grace_s
        while main.is_alive() and time.monotonic() < ends:
            time.sleep(0.1)
        if not main.is_alive():  # a moment for exit handlers (log flushes), which follow the threads' joins
            time.sleep(max(0.0, min(EXIT_S, ends - time.monotonic())))
        # Said last, just before the end: a Prefect flow's rows may still run on its event-loop thread after the
        # main thread has gone, and a run recorded crashed has its rows made elsewhere at once.
        say_last_words()
        os.kill(os.getpid(), signal.SIGKILL)

    thread = threading.Thread(target=watch, name="end-when-orphaned", daemon=True)
    thread.start()
    return thread
