"""The command line as a user runs it: a child process with the project on its path.

Starting a run's temporary Prefect API costs a child about six CPU-seconds (Prefect's server imports), most
of a small run's cost. So children share one such API per test process (the same server, SQLite, no UI,
ending with the test process), told it is their temporary one (``MEDIAMILL_TEMPORARY_API_URL``) so they
behave as with their own: limits in the process, nothing of a fleet. Tests of the temporary API itself (it
is started, receives the run's logs, dies with a killed run) ask for ``own_api``.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from mediamill.flows.tempserver import TEMPORARY_URL_ENV, TemporaryAPI

from .paths import ROOT

_shared: TemporaryAPI | None = None
_home: Path | None = None


def shared_api() -> str:
    """The URL of this test process's shared temporary Prefect API, started on first use."""
    global _shared, _home
    if _shared is None or _shared.proc is None or _shared.proc.poll() is not None:
        _home = home = Path(tempfile.mkdtemp(prefix="mediamill-test-prefect-"))
        api = TemporaryAPI(
            log=home / "server.log",
            environment={
                "PREFECT_HOME": str(home),
                "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home / 'prefect.db'}",
            },
        )
        api.start()
        atexit.register(shutil.rmtree, home, True)
        atexit.register(api.stop)  # runs first
        _shared = api
    assert _shared.url is not None
    return _shared.url


def shared_api_database() -> list[Path]:
    """The shared API's SQLite files (the database and its write-ahead log), once it has started."""
    if _home is None:
        return []
    return [p for p in (_home / "prefect.db", _home / "prefect.db-wal") if p.is_file()]


def cli_env(home: Path | None = None, own_api: bool = False, **extra: str) -> dict[str, str]:
    """This environment for a `mediamill` child: unbuffered output, the checkout on its path, the shared
    temporary API (with ``own_api``, none: the child starts its own); with ``home``, a Prefect home of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API") and k != TEMPORARY_URL_ENV}
    env.update(PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", **extra)
    if not own_api:
        url = shared_api()
        env.update(PREFECT_API_URL=url, **{TEMPORARY_URL_ENV: url})
    if home is not None:
        env["PREFECT_HOME"] = str(home)
    return env


def mediamill(*args: str, own_api: bool = False, **kw) -> subprocess.CompletedProcess:
    """`mediamill ARGS` in a child process, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "mediamill.cli", *args],
        capture_output=True,
        text=True,
        env=cli_env(own_api=own_api),
        timeout=300,
        **kw,
    )
