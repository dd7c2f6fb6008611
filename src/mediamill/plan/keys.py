"""Content keys: the byte contract that decides whether a row is generated again.

A key is the SHA-256 of a canonical JSON document of the backend, the row's
kind, the model, the engine's parameters and the digests of the input files
whose bytes matter. The JSON's exact bytes are a contract: stores written by
earlier versions must keep their keys, so nothing here may change them
(``KEY_VERSION`` would change every key).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..core.hashing import file_digest

KEY_VERSION = 1


def content_key(backend: str, kind: str, model: str, params: dict, inputs: dict[str, Path]) -> str:
    doc = {
        "v": KEY_VERSION,
        "backend": backend,
        "kind": kind,
        "model": model,
        "params": params,
        "inputs": {role: file_digest(p) for role, p in sorted(inputs.items())},
    }
    blob = json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()
