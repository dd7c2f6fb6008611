"""A fleet on this machine: a real `prefect server`, the work pools, `prefect deploy --all` from prefect.yaml,
and process workers, each standing for one machine. For the fleet tests and the fleet benchmark."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from mediamill.core.processes import child_options
from tests.helpers.paths import ROOT

PREFECT = str(Path(sys.executable).with_name("prefect"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process(proc: subprocess.Popen) -> None:
    """Stop a process and everything it started (workers start flow-run processes)."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(10)


class Fleet:
    def __init__(self, base: Path, **env: str):
        self.base = base
        self.outputs = base / "outputs"
        self.events = base / "events.log"
        self.url = f"http://127.0.0.1:{free_port()}/api"
        self.env = {
            **os.environ,
            "PREFECT_HOME": str(base / "prefect-home"),
            "PREFECT_API_URL": self.url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_UI_ENABLED": "false",
            "PREFECT_WORKER_QUERY_SECONDS": "1",
            "PREFECT_WORKER_PREFETCH_SECONDS": "5",
            "MEDIAMILL_PROJECT_DIR": str(ROOT),
            "MEDIAMILL_OUTPUTS": str(self.outputs),
            "MEDIAMILL_LIMITS": "auto",
            "MEDIAMILL_TEST_EVENTS": str(self.events),
            **env,
        }
        self.env.pop("PREFECT_PROFILE", None)
        self.procs: list[subprocess.Popen] = []

    def spawn(self, name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        with (self.base / f"{name}.log").open("w") as log:  # the child has its own copy of the file
            proc = subprocess.Popen(
                [PREFECT, *args],
                cwd=ROOT,
                env={**self.env, **(env or {})},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **child_options(),  # a killed test run takes its server and workers with it
            )
        self.procs.append(proc)
        return proc

    def start(self, workers: int, limit: int = 1, **env: str) -> None:
        """The server, both pools, every deployment, and ``workers`` workers on mediamill-cpu."""
        self.spawn("server", "server", "start", "--host", "127.0.0.1", "--port", self.url.split(":")[-1].split("/")[0])
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert self.procs[0].poll() is None, self.log("server")
            assert time.monotonic() < deadline, "prefect server did not start:\n" + self.log("server")
            time.sleep(0.5)
        self.prefect("work-pool", "create", "mediamill-cpu", "--type", "process")
        self.prefect("work-pool", "create", "mediamill-gpu", "--type", "process")
        self.prefect("--no-prompt", "deploy", "--all")
        for n in range(1, workers + 1):
            self.worker(n, limit, **env)

    def worker(self, n: int, limit: int = 1, **env: str) -> subprocess.Popen:
        """Worker ``worker-<n>`` on mediamill-cpu, taking ``limit`` flow runs at once."""
        return self.spawn(
            f"worker-{n}",
            "worker",
            "start",
            "--pool",
            "mediamill-cpu",
            "--name",
            f"worker-{n}",
            "--limit",
            str(limit),
            env=env,
        )

    def prefect(self, *args: str) -> str:
        done = subprocess.run([PREFECT, *args], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"prefect {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def log(self, name: str) -> str:
        return (self.base / f"{name}.log").read_text(errors="replace")

    def ran(self, worker: str, run_id: str) -> bool:
        """Whether ``worker`` ran flow run ``run_id``: it submitted the run, and the server did not turn it
        away because another worker had taken it first."""
        log = self.log(worker)
        return f"submitting flow run '{run_id}'" in log and f"Aborted submission of flow run '{run_id}'" not in log

    def stop(self) -> None:
        for proc in reversed(self.procs):
            stop_process(proc)

    # -- the API, as an operator's script would use it -----------------------------
    def api(self, method: str, path: str, **kwargs) -> dict | list:
        # SQLite answers 503 now and then while it records task runs: try again, as Prefect's client does.
        for attempt in range(8):
            answer = httpx.request(method, self.url + path, timeout=30, **kwargs)
            if answer.status_code != 503:
                break
            time.sleep(0.5 * 2**attempt)
        answer.raise_for_status()
        return answer.json() if answer.content else {}

    def trigger(self, deployment: str, **parameters) -> str:
        flow, name = deployment.split("/")
        dep = self.api("GET", f"/deployments/name/{flow}/{name}")
        run = self.api("POST", f"/deployments/{dep['id']}/create_flow_run", json={"parameters": parameters})
        return run["id"]

    def wait(self, run_ids: list[str], timeout: float = 420) -> dict[str, dict]:
        deadline = time.monotonic() + timeout
        runs: dict[str, dict] = {}
        while time.monotonic() < deadline:
            runs = {rid: self.api("GET", f"/flow_runs/{rid}") for rid in run_ids}
            if all(r["state"]["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") for r in runs.values()):
                return runs
            time.sleep(1)
        states = {rid: r["state"]["type"] for rid, r in runs.items()}
        raise AssertionError(f"runs not finished after {timeout}s: {states}\n{self.log('worker-1')[-3000:]}")

    def artifact(self, run_id: str, key: str) -> list[dict]:
        found = self.api(
            "POST", "/artifacts/filter", json={"artifacts": {"key": {"any_": [key]}, "flow_run_id": {"any_": [run_id]}}}
        )
        assert found, f"no artifact {key} for run {run_id}"
        data = found[0]["data"]
        return json.loads(data) if isinstance(data, str) else data
