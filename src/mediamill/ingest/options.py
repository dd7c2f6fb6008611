"""``ImportOptions``: everything that changes what an import produces."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

DEFAULT_MAX_CHARS = 1000


@dataclass(frozen=True)
class ImportOptions:
    unit: Literal["paragraph", "sentence"] = "paragraph"
    max_chars: int = DEFAULT_MAX_CHARS  # no row longer than this (split at sentences, clauses, words)
    notes: Literal["skip", "end"] = "skip"  # note texts: left out, or read at the end of their chapter
    alt_text: bool = False  # read images' alt text
    tables: Literal["skip", "read"] = "skip"
    headings: bool = True  # read headings (chapter titles) as rows
    keep: frozenset[str] = frozenset()  # front/back matter kinds to read anyway ("all": every kind)
    toc_depth: int = 0  # split chapters at TOC/heading levels up to this; 0 decides from the book
    backends: tuple[str, ...] = ("piper",)  # cost estimates for these
    name: str | None = None  # manifest name; default from the source's file name
    format: str | None = None  # force a reader: epub, docx, markdown, html, text, pdf

    def __post_init__(self) -> None:
        if self.unit not in ("paragraph", "sentence"):
            raise ValueError("unit must be 'paragraph' or 'sentence'")
        if not 40 <= self.max_chars <= 100_000:
            raise ValueError("max_chars must be between 40 and 100000")
        if self.notes not in ("skip", "end"):
            raise ValueError("notes must be 'skip' or 'end'")
        if self.tables not in ("skip", "read"):
            raise ValueError("tables must be 'skip' or 'read'")
        if self.toc_depth < 0:
            raise ValueError("toc_depth must be 0 (automatic) or more")
