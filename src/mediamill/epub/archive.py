"""Reading ZIP containers (EPUB, DOCX) in bounded memory and time.

``check_archive`` is run on a container before anything else reads it (our
EPUB reader, python-docx): it refuses more than ``MAX_ENTRIES`` entries, and
inflates every entry in chunks, without keeping the data, to refuse one that
inflates past ``MAX_ENTRY_BYTES`` or entries that together inflate past
``MAX_TOTAL_BYTES`` (a ZIP bomb). The sizes an entry declares are checked
first but not trusted: the count is of the bytes that actually come out.
``read_member`` reads one entry with the same per-entry bound. Damaged
entries (a bad CRC, a broken stream) are refused too. Every refusal is an
``BookError`` that names the container and the entry.
"""

from __future__ import annotations

import zipfile
import zlib

from . import BookError

MAX_ENTRIES = 10_000
# A novel's largest XHTML file or document.xml is a few MB; images are stored, not inflated.
MAX_ENTRY_BYTES = 128 * 1024 * 1024
MAX_TOTAL_BYTES = 1024 * 1024 * 1024
_CHUNK = 1024 * 1024


def _size(n: int) -> str:
    return f"{n / (1024 * 1024):g} MiB"


def _inflate(archive: zipfile.ZipFile, info: zipfile.ZipInfo, label: str, keep: bool) -> tuple[int, bytes]:
    """How many bytes the entry inflates to, and them if ``keep``; more than ``MAX_ENTRY_BYTES`` is refused."""
    limit = MAX_ENTRY_BYTES
    if info.file_size > limit:
        raise BookError(
            f"{label}: {info.filename} inflates to {info.file_size:,} bytes; an entry may inflate "
            f"to at most {_size(limit)} (a ZIP bomb?)"
        )
    parts: list[bytes] = []
    count = 0
    try:
        with archive.open(info) as fh:
            while chunk := fh.read(_CHUNK):
                count += len(chunk)
                if count > limit:
                    raise BookError(
                        f"{label}: {info.filename} inflates to more than {_size(limit)}, the most an "
                        "entry may inflate to (a ZIP bomb?)"
                    )
                if keep:
                    parts.append(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:
        # RuntimeError: an encrypted entry; NotImplementedError: an unknown compression method.
        raise BookError(f"{label}: {info.filename} is damaged and cannot be read ({exc})") from None
    return count, b"".join(parts)


def check_archive(archive: zipfile.ZipFile, label: str) -> None:
    """Refuse a container with too many entries, or entries that inflate past the caps (see the module doc)."""
    infos = archive.infolist()
    if len(infos) > MAX_ENTRIES:
        raise BookError(f"{label} holds {len(infos):,} files; a manuscript may hold at most {MAX_ENTRIES:,}")
    total = 0
    for info in infos:
        if info.is_dir():
            continue
        total += _inflate(archive, info, label, keep=False)[0]  # counted, not kept
        if total > MAX_TOTAL_BYTES:
            raise BookError(
                f"{label}: its files inflate to more than {_size(MAX_TOTAL_BYTES)} altogether, the most "
                "a manuscript may hold (a ZIP bomb?)"
            )


def read_member(archive: zipfile.ZipFile, name: str, label: str) -> bytes:
    """One entry's bytes, refusing one that inflates past ``MAX_ENTRY_BYTES``; KeyError if there is none."""
    return _inflate(archive, archive.getinfo(name), label, keep=True)[1]
