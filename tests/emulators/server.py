"""Run an ASGI app with uvicorn in a background thread on a free loopback port."""

from __future__ import annotations

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
