"""What is wrong with a manifest: problems with their row, column and line, and the error that carries them all.

Loading never stops at the first problem: every problem found is collected,
so a producer fixes the whole file at once. Row numbers count data rows from
1 (the header is not a row); for CSV the physical line is given too.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a manifest; ``row`` is None for file-wide problems."""

    message: str
    row: int | None = None
    column: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        where = []
        if self.row is not None:
            where.append(f"row {self.row}" + (f" (line {self.line})" if self.line else ""))
        if self.column:
            where.append(f"column '{_one_line(self.column)}'")
        return (", ".join(where) + ": " if where else "") + _one_line(self.message)


_LINE_BREAKS = {"\u0085", "\u2028", "\u2029"}


def _one_line(text: str) -> str:
    """``text`` with line breaks and other control characters escaped: one problem, one line.

    Messages quote the manifest's own values, and a cell may hold a newline."""
    if text.isprintable():
        return text
    return "".join(
        ch.encode("unicode_escape").decode("ascii") if unicodedata.category(ch) == "Cc" or ch in _LINE_BREAKS else ch
        for ch in text
    )


class ManifestError(Exception):
    """A manifest that cannot be run, with every problem found in it."""

    def __init__(self, path: Path | str, problems: list[Problem]):
        self.path = Path(path)
        self.problems = problems
        super().__init__(str(self))

    def __str__(self) -> str:
        n = len(self.problems)
        head = f"{self.path}: {n} problem{'s' if n != 1 else ''}"
        return "\n".join([head, *(f"  - {p}" for p in self.problems)])
