"""What a source file must be before a reader opens it, and how text sources are decoded.

``check_source`` refuses a symbolic link (mediamill imports the file it is
named, never one a link leads to, which may lie anywhere), anything but a
regular file, and an empty file; ``check_size`` a file over the size cap of
its kind: ``MAX_TEXT_BYTES`` for Markdown, HTML and plain text (a book is a
few MB; far more makes more rows than a manifest may hold),
``MAX_SOURCE_BYTES`` for the rest. ``refuse_binary`` refuses a text source that is not text: a
known binary format by its magic number, NUL bytes, or more than 1 % control
characters. ``decode_text`` decodes the same way every time and says how:
UTF-16 when a byte-order mark says so, UTF-8 (with or without a BOM), then a
charset the file declares (HTML's ``<meta charset>``), then Windows-1252 (a
superset of Latin-1's printable characters); text that none of these decode,
or that decodes to what is plainly another 8-bit encoding, is refused with a
request for UTF-8 (as the manifest loader asks for UTF-8 or UTF-16).
``check_rows`` holds an import to the manifest loader's row limit
(``MEDIAMILL_MAX_ROWS``); a text source with more than twice as many
paragraphs (blank-line separated; ``<p>`` in HTML) is refused before it is
parsed, as each paragraph makes a row unless it is skipped. Every refusal is
an ``IngestError``.
"""

from __future__ import annotations

import codecs
import os
import re
from pathlib import Path

from ..manifest.tables import max_rows
from .model import IngestError

TEXT_FORMATS = frozenset({"markdown", "html", "text"})
MAX_TEXT_BYTES = 32 * 1024 * 1024  # about 5 million words, some 600 hours of speech
MAX_SOURCE_BYTES = 1024 * 1024 * 1024
_MiB = 1024 * 1024

_MAGIC = [
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"%PDF", "a PDF"),
    (b"PK\x03\x04", "a ZIP archive (an EPUB or DOCX?)"),
    (b"\x1f\x8b", "gzip-compressed data"),
    (b"\xfd7zXZ\x00", "xz-compressed data"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"\x7fELF", "an ELF executable"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Office file (.doc?)"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"OggS", "Ogg audio"),
    (b"fLaC", "FLAC audio"),
]
# Control characters a text file does not hold (tab, line feed, vertical tab, form feed and CR are fine).
_CONTROL_BYTES = bytes([*range(0x00, 0x09), *range(0x0E, 0x20), 0x7F])
_CONTROL = re.compile("[\x00-\x08\x0e-\x1f\x7f\ufffd]")
_META_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([A-Za-z0-9._:-]{1,40})""", re.I)
_BLANK_LINES = re.compile(r"\n[ \t]*\n")
_HTML_PARAGRAPH = re.compile(r"<p[\s>/]", re.I)
_NAMES = {"utf-8": "UTF-8", "utf-16": "UTF-16", "cp1252": "Windows-1252"}


def check_source(path: Path) -> None:
    """Refuse a symbolic link, anything but a regular file, and an empty file."""
    if path.is_symlink():
        raise IngestError(
            f"{path} is a symbolic link (to {os.readlink(path)}); mediamill imports only a file "
            "named directly: give the path of the file itself"
        )
    if not path.exists():
        raise IngestError(f"{path}: no such file")
    if not path.is_file():
        raise IngestError(f"{path} is not a regular file")
    size = path.stat().st_size
    if size == 0:
        raise IngestError(f"{path.name} is empty")


def check_size(path: Path, fmt: str) -> None:
    """Refuse a file over the size cap of its format's kind."""
    size = path.stat().st_size
    cap = MAX_TEXT_BYTES if fmt in TEXT_FORMATS else MAX_SOURCE_BYTES
    if size > cap:
        raise IngestError(
            f"{path.name} is {size / _MiB:,.1f} MiB; mediamill imports a {fmt} manuscript of at "
            f"most {cap / _MiB:g} MiB: split it into parts (volumes, or groups of chapters) and "
            "import each"
        )


def refuse_binary(data: bytes, name: str) -> None:
    """Refuse bytes that are not text: a known binary format, NUL bytes, > 1 % control characters."""
    for magic, what in _MAGIC:
        if data.startswith(magic):
            raise IngestError(f"{name} is {what}, not a text manuscript")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        text = data.decode("utf-16", errors="replace")  # NUL bytes are part of UTF-16 itself
        bad, total = len(_CONTROL.findall(text)), len(text)
    else:
        if b"\x00" in data:
            raise IngestError(f"{name} holds NUL bytes: it is binary data, not text")
        bad, total = len(data) - len(data.translate(None, _CONTROL_BYTES)), len(data)
    if bad * 100 > total:
        raise IngestError(f"{name} is binary data, not text ({bad * 100 / total:.0f} % control characters)")


def decode_text(data: bytes, name: str, declared: bool = False) -> tuple[str, str]:
    """The text and the name of the encoding it was read in (see the module doc); ``declared``: look for
    an HTML ``<meta charset>`` before falling back to Windows-1252."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16"), "UTF-16"
        except UnicodeDecodeError as exc:
            raise IngestError(f"{name} starts as UTF-16 but is not ({exc.reason}); save it as UTF-8") from None
    try:
        return data.decode("utf-8-sig"), "UTF-8"
    except UnicodeDecodeError:
        pass
    if declared and (match := _META_CHARSET.search(data[:4096])):
        label = match.group(1).decode("ascii").lower()
        try:
            codec = codecs.lookup(label).name
            return data.decode(codec), _NAMES.get(codec, label.upper())
        except (LookupError, UnicodeDecodeError):
            pass  # a wrong or unknown declaration: the fallback below decides
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        raise IngestError(
            f"{name} is neither UTF-8 nor Windows-1252 (Latin-1) text: save it as UTF-8 and import it again"
        ) from None
    if _foreign(text):
        raise IngestError(
            f"{name} is not UTF-8 and reads as another 8-bit encoding (Cyrillic, Greek...?): save "
            "it as UTF-8 and import it again"
        )
    return text, "Windows-1252"


def _foreign(text: str) -> bool:
    """Most letters in the 0xC0-0xFF range: another 8-bit alphabet read as Windows-1252 ("Ìîðîç")."""
    letters = [c for c in text[:200_000] if c.isalpha()]
    return len(letters) >= 20 and sum(1 for c in letters if c >= "\u00c0") > 0.3 * len(letters)


def encoding_remark(name: str, encoding: str) -> str | None:
    """What the report says about a text source that was not UTF-8 (None for UTF-8 and UTF-16)."""
    if encoding in ("UTF-8", "UTF-16"):
        return None
    return (
        f"{name} is not UTF-8: it was read as {encoding}; if letters look wrong in the manifest, save it "
        "as UTF-8 and import it again"
    )


def read_text_source(path: Path, fmt: str) -> tuple[str, str]:
    """A text source's bytes checked (``refuse_binary``), decoded (``decode_text``; HTML may declare its
    charset) and its paragraphs counted against the row limit, before any parsing."""
    data = path.read_bytes()
    if not data.strip():
        raise IngestError(f"{path.name} is empty")
    refuse_binary(data, path.name)
    text, encoding = decode_text(data, path.name, declared=fmt == "html")
    paragraphs = len((_HTML_PARAGRAPH if fmt == "html" else _BLANK_LINES).findall(text))
    limit = max_rows()
    if paragraphs > 2 * limit:
        raise IngestError(
            f"{path.name} has some {paragraphs:,} paragraphs, far more than the {limit:,} rows a "
            "manifest may have at most (MEDIAMILL_MAX_ROWS): split the manuscript into parts and import "
            "each"
        )
    return text, encoding


def check_rows(count: int, name: str) -> None:
    """Refuse an import that makes more rows than the manifest loader accepts."""
    limit = max_rows()
    if count > limit:
        raise IngestError(
            f"{name} makes {count:,} rows; a manifest may have at most {limit:,} "
            "(MEDIAMILL_MAX_ROWS): split the manuscript into parts and import each"
        )
