"""Run an ASGI app with uvicorn in a background thread on a free loopback port."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from functools import cache
from pathlib import Path

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse

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

    def __enter__(self) -> ServerThread:
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


@cache
def sample_media(kind: str) -> bytes:
    """Real media files for emulated outputs, made once with ffmpeg."""
    MEDIA_DIR.mkdir(exist_ok=True)
    recipes = {
        "wav": (["-f", "lavfi", "-i", "sine=frequency=220:duration=1.5:sample_rate=48000"], "speech.wav"),
        "mp3": (
            ["-f", "lavfi", "-i", "sine=frequency=330:duration=3:sample_rate=44100", "-ac", "2", "-b:a", "128k"],
            "song.mp3",
        ),
        "mp4": (
            [
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=320x180:rate=24:duration=2",
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=440:duration=2:sample_rate=44100",
                "-c:v",
                "libx264",
                "-pix_fmt",
                "yuv420p",
                "-preset",
                "ultrafast",
                "-c:a",
                "aac",
                "-shortest",
            ],
            "clip.mp4",
        ),
    }
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
        self.drip_s = 1.0  # slow-loris faults send one byte this often, forever
        self._visits: list[dict] = []

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

    # -- hostile answers shared by the emulators (faults named in HOSTILE_DOWNLOADS, *_drip, *_redirect) --

    @property
    def visits(self) -> list[dict]:
        """Every file download and every request that reached /elsewhere: host, path and headers."""
        with self._lock:
            return [dict(v) for v in self._visits]

    def _visit(self, request: Request) -> None:
        with self._lock:
            self._visits.append(
                {
                    "host": request.headers.get("host", ""),
                    "path": request.url.path,
                    "headers": {k.lower(): v for k, v in request.headers.items()},
                }
            )

    def _other_host(self, request: Request, path: str) -> str:
        """The same server under another host name (localhost for 127.0.0.1): another origin to clients."""
        return f"http://localhost:{request.url.port}{path}"

    def redirect_elsewhere(self, request: Request) -> Response:
        """An API answer that sends the client to another host, which records whatever arrives."""
        return RedirectResponse(self._other_host(request, "/elsewhere" + request.url.path), status_code=307)

    def drip(self, media_type: str, byte: bytes = b" ") -> StreamingResponse:
        """Slow-loris: headers at once, then one byte every drip_s until the client gives up.

        A space keeps a JSON body valid but unfinished; no single read ever waits long."""

        async def body():
            while not self._closing.is_set():
                yield byte
                await self._sleep(self.drip_s)

        return StreamingResponse(body(), media_type=media_type)

    def hostile_download(self, fault: str, request: Request, data: bytes, media_type: str) -> Response:
        """The answer of a file host for one of HOSTILE_DOWNLOADS."""
        if fault == "download_huge":
            return DeclaredResponse(data, declared=8 * 1024**3, media_type=media_type)
        if fault == "download_endless":
            return StreamingResponse(self._endless(), media_type=media_type)
        if fault == "download_drip":
            return self.drip(media_type, b"\0")
        if fault == "download_html":
            return Response(ERROR_PAGE, media_type="text/html")
        if fault == "download_json":
            return Response('{"error": "object expired"}', media_type="application/json")
        if fault in ("download_garbage", "download_untyped"):
            garbage = b"NOT MEDIA " * 2000
            return Response(garbage, media_type="application/octet-stream" if fault == "download_garbage" else None)
        if fault == "download_offsite":
            return RedirectResponse(self._other_host(request, request.url.path), status_code=302)
        if fault == "download_bad_scheme":
            return RedirectResponse("file:///etc/passwd", status_code=302)
        if fault == "download_loop":
            with self._lock:
                self._faults[fault] = self._faults.get(fault, 0) + 1  # so the next hop loops again
            return RedirectResponse(request.url.path, status_code=302)
        raise ValueError(fault)

    async def _endless(self):
        chunk = bytes(64 * 1024)
        for _ in range(16 * 1024):  # 1 GiB at most, in case a client never stops reading
            if self._closing.is_set():
                return
            yield chunk


HOSTILE_DOWNLOADS = {
    "download_huge",  # declares 8 GiB in Content-Length (sends the real file, then stops)
    "download_endless",  # no Content-Length, 64 KiB chunks of zeros until the client stops reading
    "download_drip",  # headers, then one zero byte every drip_s, forever
    "download_html",  # HTTP 200 with an HTML error page
    "download_json",  # HTTP 200 with a JSON error body
    "download_garbage",  # HTTP 200 application/octet-stream, bytes that are no media
    "download_untyped",  # HTTP 200 without a Content-Type, bytes that are no media
    "download_offsite",  # 302 to the same file on another host name (localhost)
    "download_bad_scheme",  # 302 to file:///etc/passwd
    "download_loop",  # 302 to itself, forever (every hop consumes the fault and puts it back)
}

ERROR_PAGE = "<html><head><title>Error</title></head><body><h1>This object has expired</h1></body></html>"


class DeclaredResponse(Response):
    """Declares ``declared`` bytes in Content-Length, sends ``body``, then drops the connection."""

    def __init__(self, body: bytes, declared: int, media_type: str):
        super().__init__(body, media_type=media_type)
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        self.raw_headers.append((b"content-length", str(declared).encode()))

    async def __call__(self, scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": self.body, "more_body": True})


def add_elsewhere(app: FastAPI, emulator: Emulator) -> None:
    """The target of redirect_elsewhere: records each visit; a client that follows gets a plain 200."""

    @app.api_route("/elsewhere/{path:path}", methods=["GET", "POST"])
    async def elsewhere(path: str, request: Request):
        emulator._visit(request)
        return {"result": True, "followed": path}
