"""One reader per manuscript format; each returns a ``Manuscript`` (see ``model.py``)."""

from __future__ import annotations

from ..model import Block, Mark

__all__ = ["heading_marks"]


def heading_marks(stream: list[Block | Mark], max_level: int = 2) -> list[Block | Mark]:
    """A mark before every heading block of level ``max_level`` or above (h1, h2 ...)."""
    out: list[Block | Mark] = []
    for item in stream:
        if isinstance(item, Block) and item.kind == "heading" and 1 <= item.level <= max_level:
            out.append(Mark(item.level, item.text, item.source))
        out.append(item)
    return out
