"""Names that become files: row ids and slugs.

Ids name output files on every OS and appear in URLs, so they are
conservative on purpose; slugs turn titles into file-name parts.
"""

from __future__ import annotations

import re

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_RESERVED_NAMES = {"con", "prn", "aux", "nul"} | {f"{p}{i}" for p in ("com", "lpt") for i in range(1, 10)}


def check_safe_id(value: str) -> str:
    """Ids name output files, so they must be safe file names everywhere; raises ValueError."""
    if not _SAFE_ID.match(value) or ".." in value:
        raise ValueError(
            "must be 1-100 characters of letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    if value.split(".")[0].lower() in _RESERVED_NAMES:
        raise ValueError(f"'{value}' is a reserved file name on Windows")
    return value


def slug(text: str, limit: int = 60) -> str:
    """Lower-case letters and digits joined by '-', for file names made from titles."""
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return s[:limit].rstrip("-") or "chapter"
