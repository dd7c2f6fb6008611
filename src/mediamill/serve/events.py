"""OpenAI's server-sent speech events (``stream_format=sse``): ``speech.audio.delta`` and ``speech.audio.done``.

Each event is one ``data:`` line of JSON and a blank line. A delta carries
base64 audio (consecutive deltas decode to one stream of the requested
format); the last event, ``speech.audio.done``, carries OpenAI's usage object.
mediamill counts no tokens, so its counts are zero. A stream that ends
without ``speech.audio.done`` was cut short (cancelled, or the server failed).
"""

from __future__ import annotations

import base64
import json

USAGE = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}


def event(doc: dict) -> bytes:
    return b"data: " + json.dumps(doc, separators=(",", ":")).encode("ascii") + b"\n\n"


def audio_delta(audio: bytes) -> bytes:
    return event({"type": "speech.audio.delta", "audio": base64.b64encode(audio).decode("ascii")})


def audio_done() -> bytes:
    return event({"type": "speech.audio.done", "usage": USAGE})
