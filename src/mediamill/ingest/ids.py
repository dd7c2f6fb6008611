"""Row ids that survive re-imports, so only edited paragraphs are generated again.

A fresh id is ``ch<NN>-<hash>``: the chapter's number (01, 02, ...) and the
first 8 hex digits of the SHA-256 of the row's text (NFC, whitespace
collapsed). A text repeated inside one chapter gets ``-2``, ``-3`` ... in
reading order. Ids are always unique: a clash (another row, a reused id) adds
the next free suffix.

When the output folder already holds a previous import, its ids are reused
first: each new row whose normalised text equals a previous row's takes that
row's id (identical texts are matched in order), wherever it moved. So ids a
producer edited, or ids from an earlier scheme, stay; so does everything a
content key is made of. Only rows whose text changed, or that are new, get
fresh ids. Previous ids that are not safe file names are not reused.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections import defaultdict, deque
from collections.abc import Sequence

from ..core.ids import check_safe_id


def normalise(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).split())


def text_hash(text: str) -> str:
    return hashlib.sha256(normalise(text).encode("utf-8")).hexdigest()[:8]


def _safe(value: str) -> bool:
    try:
        check_safe_id(value)
    except ValueError:
        return False
    return True


def assign_ids(rows: Sequence[tuple[int, str]], previous: Sequence[tuple[str, str]] = ()) -> tuple[list[str], int]:
    """Ids for ``(chapter number, text)`` rows, and how many came from ``previous`` ``(id, text)`` rows."""
    available: dict[str, deque[str]] = defaultdict(deque)
    for row_id, text in previous:
        if row_id and _safe(row_id):
            available[normalise(text)].append(row_id)
    ids: list[str | None] = [None] * len(rows)
    used: set[str] = set()
    reused = 0
    for i, (_, text) in enumerate(rows):
        queue = available.get(normalise(text))
        while queue:
            candidate = queue.popleft()
            if candidate not in used:
                ids[i] = candidate
                used.add(candidate)
                reused += 1
                break
    seen: dict[str, int] = defaultdict(int)
    for i, (chapter, text) in enumerate(rows):
        base = f"ch{chapter:02d}-{text_hash(text)}"
        seen[base] += 1
        if ids[i] is not None:
            continue
        candidate = base if seen[base] == 1 else f"{base}-{seen[base]}"
        n = seen[base]
        while candidate in used:
            n += 1
            candidate = f"{base}-{n}"
        ids[i] = candidate
        used.add(candidate)
    return [i for i in ids if i is not None], reused
