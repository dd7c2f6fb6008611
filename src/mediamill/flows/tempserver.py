"""A temporary Prefect API for one ``mediamill run`` (or ``sweep``), ending with the process that started it.

With no ``PREFECT_API_URL``, Prefect would start a temporary server itself,
as a child that outlives a SIGKILL of the run (re-parented, about 200 MB
each, for good). Instead the command line starts the same server (uvicorn
over Prefect's own ``create_app``, UI off) from its main thread as a child
that the kernel kills when the run dies, however it dies
(``core.processes``), and points the run's Prefect client at it. Limits stay
in the process as they would with Prefect's temporary server: this API is
the run's own, not a fleet's (``is_temporary``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import prefect
from prefect.context import refresh_global_settings_context
from prefect.settings import get_current_settings

from ..core.processes import child_options, linked_to_parent

TEMPORARY_URL_ENV = "MEDIAMILL_TEMPORARY_API_URL"
STARTUP_TIMEOUT_S = 120.0


def is_temporary(url: str | None) -> bool:
    """Whether ``url`` is the API a command line run started for itself."""
    return bool(url) and url == os.environ.get(TEMPORARY_URL_ENV)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class TemporaryAPI:
    """The run's own Prefect API server, on loopback; ``start`` it from the main thread."""

    def __init__(self, log: Path | None = None, environment: dict[str, str] | None = None):
        """``environment``: Prefect settings of the server's own (a home, a database) over the run's."""
        self.proc: subprocess.Popen | None = None
        self.url: str | None = None
        self._log = log
        self._environment = environment or {}

    def start(self, timeout: float = STARTUP_TIMEOUT_S) -> str:
        port = _free_port()
        env = {
            **os.environ,
            "PREFECT_UI_ENABLED": "0",
            "PREFECT__SERVER_EPHEMERAL": "1",  # Prefect's own temporary-server mode: no UI, no background services
            "PREFECT__SERVER_FINAL": "1",
            **get_current_settings().to_environment_variables(exclude_unset=True),
            **self._environment,
        }
        env.pop("PREFECT_API_URL", None)
        cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            "--app-dir",
            str(Path(prefect.__file__).parent.parent),
            "--factory",
            "prefect.server.api.server:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "error",
            "--lifespan",
            "on",
        ]
        out = self._log.open("ab") if self._log else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            cmd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **child_options()
        )
        if self._log:
            out.close()  # type: ignore[union-attr]  # the log file, not DEVNULL, here
        url = f"http://127.0.0.1:{port}/api"
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2.0) as client:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"the temporary Prefect API exited with {self.proc.returncode} while starting")
                try:
                    if client.get(f"{url}/health").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"the temporary Prefect API did not answer within {timeout:.0f} s")
                time.sleep(0.1)
        self.url = url
        return url

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


class own_api:
    """``with own_api():`` a temporary API for the block, unless one is configured or the OS cannot link lives.

    Sets ``PREFECT_API_URL`` (and ``MEDIAMILL_TEMPORARY_API_URL``) for the block and
    removes them after, so Prefect's client uses this server and starts none of its own.
    """

    def __init__(self) -> None:
        self.api: TemporaryAPI | None = None

    def __enter__(self) -> own_api:
        if os.environ.get("PREFECT_API_URL") or not linked_to_parent():
            return self  # a configured server, or a platform where Prefect's own temporary server is used
        self.api = TemporaryAPI()
        url = self.api.start()
        os.environ["PREFECT_API_URL"] = url
        os.environ[TEMPORARY_URL_ENV] = url
        refresh_global_settings_context()  # Prefect read its settings when imported
        return self

    def __exit__(self, *exc: object) -> None:
        if self.api is None:
            return
        _drain_prefect_workers()
        self.api.stop()
        os.environ.pop("PREFECT_API_URL", None)
        os.environ.pop(TEMPORARY_URL_ENV, None)
        refresh_global_settings_context()


def _drain_prefect_workers(timeout_s: float = 10.0) -> None:
    """Send what Prefect's background workers still hold (logs, events) while the API is up.

    They drain at interpreter exit otherwise, after the server has stopped, and retry against the dead
    port for over a minute before printing "Error logging to API"."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        try:
            worker.drain_all(timeout=timeout_s)
        except Exception:  # a worker that cannot drain must not keep the run from ending
            pass
