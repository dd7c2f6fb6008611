"""Run an ASGI app with uvicorn in a background thread on a free loopback port."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from functools import lru_cache
from pathlib import Path

import uvicorn

from mediamill.media.ffmpeg import run_ffmpeg


class ServerThread:
    def __init__(self, app, host: str = "127.0.0.1"):
        sock = socket.socket()
        sock.bind((host, 0))
        self.port = sock.getsockname()[1]
        sock.close()
        self.url = f"http://{host}:{self.port}"
        config = uvicorn.Config(app, host=host, port=self.port, log_level="warning", lifespan="off", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "ServerThread":
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("emulator did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


MEDIA_DIR = Path(__file__).resolve().parent / ".media"


@lru_cache(maxsize=None)
def sample_media(kind: str) -> bytes:
    """Real media files for emulated outputs, made once with ffmpeg."""
    MEDIA_DIR.mkdir(exist_ok=True)
    recipes = {
        "wav": (["-f", "lavfi", "-i", "sine=frequency=220:duration=1.5:sample_rate=48000"], "speech.wav"),
        "mp3": (["-f", "lavfi", "-i", "sine=frequency=330:duration=3:sample_rate=44100", "-ac", "2", "-b:a", "128k"], "song.mp3"),
        "mp4": (
            [
                "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=24:duration=2",
                "-f", "lavfi", "-i", "sine=frequency=440:duration=2:sample_rate=44100",
                "-c:v", "libx264", "-pix_fmt", "yuv420p", "-preset", "ultrafast", "-c:a", "aac", "-shortest",
            ],
            "clip.mp4",
        ),
    }  # fmt: skip
    args, name = recipes[kind]
    path = MEDIA_DIR / name
    if not path.exists():
        run_ffmpeg(*args, path)
    return path.read_bytes()


class Emulator:
    """What every emulator shares: its server's lifecycle and the queue of injected faults.

    Subclasses set ``name`` and ``FAULTS``, build ``self.app`` and may override
    ``_started(url)``. Faults are consumed in the order they were injected.
    """

    name = "emulator"
    FAULTS: frozenset[str] = frozenset()

    def __init__(self, slow_s: float) -> None:
        self.slow_s = slow_s
        self.url: str | None = None
        self._lock = threading.RLock()
        self._closing = threading.Event()
        self._faults: dict[str, int] = {}  # insertion-ordered: older injections are consumed first
        self._server: ServerThread | None = None

    def __enter__(self):
        self._closing.clear()
        self._server = ServerThread(self.app).__enter__()
        self._started(self._server.url)
        return self

    def _started(self, url: str) -> None:
        self.url = url

    def __exit__(self, *exc) -> None:
        self._closing.set()  # ends injected slow answers early so shutdown does not wait for them
        if self._server is not None:
            self._server.__exit__(*exc)
            self._server = None

    def inject(self, fault: str, times: int = 1) -> None:
        if fault not in self.FAULTS:
            raise ValueError(f"unknown {self.name} fault {fault!r}; known: {sorted(self.FAULTS)}")
        with self._lock:
            self._faults[fault] = self._faults.get(fault, 0) + times

    def pending_faults(self) -> dict[str, int]:
        with self._lock:
            return {name: n for name, n in self._faults.items() if n > 0}

    def _take(self, *names: str) -> str | None:
        """Consume one pending fault among ``names`` (the earliest injected first)."""
        with self._lock:
            for name, left in self._faults.items():
                if name in names and left > 0:
                    self._faults[name] = left - 1
                    return name
        return None

    async def _sleep(self, seconds: float) -> None:
        # An asyncio sleep (other requests proceed), in steps so that shutdown can cut it short.
        deadline = time.monotonic() + seconds
        while not self._closing.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(min(left, 0.05))
