"""Child processes that end with the process that started them, however it dies.

A run killed with SIGKILL (the OOM killer, a preempted spot machine,
``kill -9``) runs no clean-up, so its children must not depend on one. On
Linux each child asks the kernel, between fork and exec, for SIGKILL when its
parent dies (``PR_SET_PDEATHSIG``), and exits at once if the parent is
already gone. The signal follows the *thread* that started the child, so a
child meant to live as long as the process is started from its main thread;
a child started by a call that waits for it (ffmpeg) cannot outlive that
call's thread anyway. Elsewhere children are started as usual.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
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
