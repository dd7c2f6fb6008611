"""The neutral document model every reader produces and the rest of ingest consumes.

A reader turns a manuscript into a stream of ``Block``s (text to read, in
reading order) interleaved with ``Mark``s (places where a new chapter may
start, with a level: 1 is the outermost, such as a part). ``chapters.py``
decides which marks become chapters. Text in blocks is already cleaned (see
``clean.py``); ``source`` says where it came from (README, "From a manuscript").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..epub import BookError

BlockKind = Literal["heading", "para", "note", "alt", "table"]


INSTALL_HINT = "pip install 'mediamill[ingest]'"


# A manuscript that cannot be imported; the message says why, for a person. The EPUB reading underneath raises
# the same error, so it is one class under two names.
IngestError = BookError


@dataclass
class Block:
    """One stretch of text to read: a paragraph, heading, table row, caption..."""

    kind: BlockKind
    text: str
    source: str
    level: int = 0  # headings: 1 for h1
    break_after: bool = False  # a scene break (<hr/>, "* * *") follows
    noterefs: list[str] = field(default_factory=list)  # keys of notes referenced here, in order


@dataclass
class Mark:
    """A place where a chapter may start (a TOC entry, a heading, a chapter line)."""

    level: int
    title: str
    source: str
    hints: frozenset[str] = frozenset()  # semantics known at the source: epub:type, landmarks, styles
    explicit: bool = True  # False: inferred (a document start without a TOC entry)


@dataclass
class Skipped:
    """Something left out of the manifest, and why (listed in the report)."""

    what: str
    reason: str
    source: str
    words: int = 0


@dataclass
class Note:
    key: str
    label: str  # "1", "*", "iv"
    text: str
    source: str


@dataclass
class Manuscript:
    """What a reader found: metadata, the block/mark stream, notes and what it skipped."""

    format: str  # "epub3", "epub2", "docx", "markdown", "html", "text", "pdf"
    stream: list[Block | Mark]
    encoding: str | None = None  # what a text source was decoded as ("UTF-8", "Windows-1252")
    title: str | None = None
    author: str | None = None
    language: str | None = None
    cover: tuple[bytes, str] | None = None  # image bytes and file extension (".jpg")
    notes: dict[str, Note] = field(default_factory=dict)
    skipped: list[Skipped] = field(default_factory=list)
    remarks: list[str] = field(default_factory=list)  # things the producer should know
    # The source's text as it stood, by part (see ``part_of``), for measuring how much reaches the manifest.
    raw_parts: dict[str, str] = field(default_factory=dict)


@dataclass
class Chapter:
    title: str
    source: str
    blocks: list[Block]
    hints: frozenset[str] = frozenset()


def part_of(source: str) -> str:
    """The part of the source an anchor lies in: an EPUB/HTML document, a PDF page, else the whole file."""
    if "#" in source:
        return source.split("#", 1)[0]
    if source.startswith("pg"):
        return source.split(".", 1)[0]
    return "all"
