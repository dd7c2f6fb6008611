"""Content hashes of input files, remembered so a plan never hashes the same bytes twice.

A file's digest is the SHA-256 of its bytes; it is remembered per (path,
size, modification time), so an edited file is hashed again and an
unchanged one costs a ``stat``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

_file_hashes: dict[tuple[str, int, int], str] = {}


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes, remembered per (path, size, mtime)."""
    st = path.stat()
    memo = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    digest = _file_hashes.get(memo)
    if digest is None:
        h = hashlib.sha256()
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        digest = _file_hashes[memo] = h.hexdigest()
    return digest
