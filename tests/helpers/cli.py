"""The command line as a user runs it: a child process with the project on its path, its own Prefect home."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .paths import ROOT


def cli_env(home: Path | None = None, **extra: str) -> dict[str, str]:
    """This environment for a `mediamill` child: no inherited Prefect API (it starts its own), unbuffered output,
    the checkout on its path; with ``home``, a Prefect home of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", **extra)
    if home is not None:
        env["PREFECT_HOME"] = str(home)
    return env


def mediamill(*args: str, **kw) -> subprocess.CompletedProcess:
    """`mediamill ARGS` in a child process, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "mediamill.cli", *args],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=300,
        **kw,
    )
