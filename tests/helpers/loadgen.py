"""`mediamill serve` in its own process, and a bounded load against it.

Shared by tests/serve/test_server_hostile.py and bench/serve_load.py: the server
runs as ``python -m mediamill.cli serve`` so its memory can be measured on its
own, and the load is N concurrent clients posting speech requests for a fixed
time, honouring ``Retry-After`` on 429 as a well-behaved client does, or one
round of N concurrent SSE streams each read to its end (``sse_round``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from mediamill.core.processes import child_options


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Served:
    url: str
    proc: subprocess.Popen
    log: Path

    def rss_mb(self) -> float:
        import psutil

        return psutil.Process(self.proc.pid).memory_info().rss / 2**20

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@contextlib.contextmanager
def serve_process(
    env: dict[str, str], args: list[str], log: Path, startup_s: float = 120, python: str = sys.executable
) -> Iterator[Served]:
    """Start ``mediamill serve`` on a free loopback port with ``env`` added; stop it afterwards."""
    port = free_port()
    cmd = [python, "-m", "mediamill.cli", "serve", "--port", str(port), *args]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT, **child_options())
    served = Served(f"http://127.0.0.1:{port}", proc, log)
    try:
        deadline = time.monotonic() + startup_s
        while True:
            try:
                if httpx.get(f"{served.url}/health", timeout=2).json()["status"] == "healthy":
                    break
            except (httpx.HTTPError, ValueError):
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mediamill serve did not start:\n{served.output()[-3000:]}")
            time.sleep(0.2)
        yield served
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class LoadResult:
    clients: int
    seconds: float = 0.0
    statuses: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)  # transport errors by type
    latencies_ok: list[float] = field(default_factory=list)  # seconds, 200s only
    unexpected: list[str] = field(default_factory=list)  # the first few odd answers, for messages
    retry_after_missing: int = 0  # 429/503 answers that did not say when to come back

    @property
    def requests(self) -> int:
        return sum(self.statuses.values()) + sum(self.errors.values())

    def percentile(self, q: float) -> float | None:
        if not self.latencies_ok:
            return None
        ordered = sorted(self.latencies_ok)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def summary(self) -> dict:
        p50, p95 = self.percentile(0.5), self.percentile(0.95)
        return {
            "clients": self.clients,
            "seconds": round(self.seconds, 2),
            "requests": self.requests,
            "requests_per_s": round(self.requests / self.seconds, 2) if self.seconds else 0.0,
            "ok_per_s": round(self.statuses.get(200, 0) / self.seconds, 2) if self.seconds else 0.0,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "transport_errors": dict(self.errors),
            "retry_after_missing": self.retry_after_missing,
            "p50_ms": round(p50 * 1000, 1) if p50 is not None else None,
            "p95_ms": round(p95 * 1000, 1) if p95 is not None else None,
        }


async def hammer(
    url: str, clients: int, seconds: float, headers: dict[str, str] | None = None, timeout_s: float = 120
) -> LoadResult:
    """``clients`` concurrent clients post short, different speech requests for ``seconds``."""
    result = LoadResult(clients=clients)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    start = time.perf_counter()
    deadline = start + seconds

    async def client(c: int, http: httpx.AsyncClient) -> None:
        n = 0
        while time.perf_counter() < deadline:
            n += 1
            body = {"input": f"Client {c} asks for line {n}. The lamps came on.", "response_format": "wav"}
            sent = time.perf_counter()
            try:
                response = await http.post("/v1/audio/speech", json=body)
            except httpx.TransportError as exc:
                result.errors[type(exc).__name__] += 1
                await asyncio.sleep(0.05)
                continue
            result.statuses[response.status_code] += 1
            if response.status_code == 200:
                result.latencies_ok.append(time.perf_counter() - sent)
            elif response.status_code in (429, 503):
                wait = response.headers.get("retry-after", "")
                result.retry_after_missing += not wait
                delay = float(wait) if wait.replace(".", "", 1).isdigit() else 0.5
                await asyncio.sleep(max(0.0, min(delay, deadline - time.perf_counter())))
            elif len(result.unexpected) < 5:
                result.unexpected.append(f"{response.status_code}: {response.text[:200]}")

    async with httpx.AsyncClient(base_url=url, headers=headers or {}, limits=limits, timeout=timeout_s) as http:
        await asyncio.gather(*(client(c, http) for c in range(clients)))
    result.seconds = time.perf_counter() - start
    return result


async def sse_round(
    url: str, clients: int, text: str, headers: dict[str, str] | None = None, timeout_s: float = 120
) -> list[int]:
    """``clients`` concurrent OpenAI-style SSE speech streams, each read to its end (waiting out 429s).

    Returns each stream's count of ``speech.audio.delta`` events, or -1 for a stream that ended
    without ``speech.audio.done``.
    """
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def client(c: int, http: httpx.AsyncClient) -> int:
        body = {"input": f"{text} Client {c}.", "stream_format": "sse"}
        deadline = time.monotonic() + timeout_s
        while True:
            async with http.stream("POST", "/v1/audio/speech", json=body) as response:
                if response.status_code == 429 and time.monotonic() < deadline:
                    await response.aread()
                    await asyncio.sleep(float(response.headers.get("retry-after", "1")) / 4)
                    continue
                response.raise_for_status()
                deltas, done = 0, False
                async for line in response.aiter_lines():
                    deltas += '"speech.audio.delta"' in line
                    done = done or '"speech.audio.done"' in line
                return deltas if done else -1

    async with httpx.AsyncClient(base_url=url, headers=headers or {}, limits=limits, timeout=timeout_s) as http:
        return list(await asyncio.gather(*(client(c, http) for c in range(clients))))
