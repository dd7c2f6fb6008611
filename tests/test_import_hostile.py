"""Hostile manuscripts: each is refused with a clear message (exit code 2) or imported correctly,
in bounded time and memory, and a refused or failed import leaves nothing behind.

The files are small and crafted here; limits are lowered for a test (monkeypatch) rather than
exercised at their real size.
"""

from __future__ import annotations

import errno
import io
import os
import random
import struct
import zipfile
from pathlib import Path

import pytest

from .epub_helpers import read_csv
from .ingest_books import CONTAINER, docx_book, epub3_book, png_bytes
from mediamill.cli import main
from mediamill.ingest import ImportOptions, IngestError, import_manuscript

MiB = 1024 * 1024
PARAS = ["The lantern swung above the harbour wall.", "Morning came quietly over the river.",
         "She folded the letter and left it by the window."]  # fmt: skip


def xhtml(body: str) -> bytes:
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<html xmlns="http://www.w3.org/1999/xhtml" lang="en">'
            f"<head><title>t</title></head><body>{body}</body></html>").encode()  # fmt: skip


def mini_epub(path: Path, docs: dict[str, bytes], spine: list[str] | None = None,
              extra: dict[str, bytes] | None = None) -> Path:  # fmt: skip
    """A minimal EPUB 3 (no TOC: one chapter per document); ``spine`` lists document names in order."""
    ids = {name: f"d{i}" for i, name in enumerate(docs)}
    items = "".join(f'<item id="{ids[n]}" href="{n}" media-type="application/xhtml+xml"/>' for n in docs)
    refs = "".join(f'<itemref idref="{ids[n]}"/>' for n in (spine or list(docs)))
    opf = ('<?xml version="1.0" encoding="UTF-8"?>\n<package xmlns="http://www.idpf.org/2007/opf" version="3.0" '
           'unique-identifier="uid"><metadata xmlns:dc="http://purl.org/dc/elements/1.1/">'
           '<dc:identifier id="uid">urn:uuid:0</dc:identifier><dc:title>Hostile</dc:title>'
           "<dc:language>en</dc:language></metadata>"
           f"<manifest>{items}</manifest><spine>{refs}</spine></package>")  # fmt: skip
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(zipfile.ZipInfo("mimetype"), "application/epub+zip", compress_type=zipfile.ZIP_STORED)
        z.writestr("META-INF/container.xml", CONTAINER)
        z.writestr("OEBPS/content.opf", opf)
        for name, data in {**docs, **(extra or {})}.items():
            z.writestr(f"OEBPS/{name}", data)
    return path


def plain_chapter() -> bytes:
    return xhtml("<h1>One</h1>" + "".join(f"<p>{p}</p>" for p in PARAS))


def refused(source: Path, out: Path, match: str, options: ImportOptions | None = None) -> str:
    with pytest.raises(IngestError, match=match) as info:
        import_manuscript(source, out, options)
    assert not out.exists(), "a refused import must write nothing"
    return str(info.value)


# 1. ZIP bombs ------------------------------------------------------------------------------------


@pytest.fixture
def small_zip_caps(monkeypatch):
    monkeypatch.setattr("mediamill.ingest.archive.MAX_ENTRY_BYTES", 1 * MiB)
    monkeypatch.setattr("mediamill.ingest.archive.MAX_TOTAL_BYTES", 3 * MiB)


def test_an_epub_entry_that_inflates_past_the_cap_is_refused(tmp_path, small_zip_caps):
    bomb = xhtml("<p>" + " " * (2 * MiB) + "Words.</p>")  # 2 MiB that deflate to about 2 KB
    path = mini_epub(tmp_path / "bomb.epub", {"ch1.xhtml": bomb})
    assert path.stat().st_size < 10_000
    message = refused(path, tmp_path / "out", "OEBPS/ch1.xhtml")
    assert "inflates" in message and "1 MiB" in message


def test_an_epub_whose_entries_inflate_past_the_total_cap_is_refused(tmp_path, small_zip_caps):
    docs = {f"ch{i}.xhtml": xhtml("<p>" + " " * (900 * 1024) + f"Chapter {i}.</p>") for i in range(4)}
    message = refused(mini_epub(tmp_path / "many.epub", docs), tmp_path / "out", "altogether")
    assert "3 MiB" in message


def test_a_zip_entry_that_lies_about_its_size_is_refused_not_a_traceback(tmp_path):
    path = mini_epub(tmp_path / "liar.epub", {"ch1.xhtml": xhtml("<p>" + "All work and no play. " * 5000 + "</p>")})
    data = bytearray(path.read_bytes())
    name = b"OEBPS/ch1.xhtml"
    for signature, size_at in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):  # local header, central directory
        at = data.find(signature)
        while at >= 0:
            name_len = struct.unpack_from("<H", data, at + (26 if signature == b"PK\x03\x04" else 28))[0]
            start = at + (30 if signature == b"PK\x03\x04" else 46)
            if bytes(data[start : start + name_len]) == name:
                struct.pack_into("<I", data, at + size_at, 1000)  # declares 1,000 bytes; inflates to 110 KB
            at = data.find(signature, at + 4)
    path.write_bytes(bytes(data))
    assert zipfile.ZipFile(path).getinfo(name.decode()).file_size == 1000
    refused(path, tmp_path / "out", "damaged|cannot be read")


def test_a_docx_zip_bomb_is_refused_before_python_docx_reads_it(tmp_path, small_zip_caps):
    plain = docx_book(tmp_path / "plain.docx").path
    path = tmp_path / "bomb.docx"
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "word/document.xml":
                data = data.replace(b"</w:body>", b" " * (2 * MiB) + b"</w:body>")
            dst.writestr(info.filename, data)
    refused(path, tmp_path / "out", "word/document.xml")


# 2. Undefined entities ---------------------------------------------------------------------------


def test_an_undefined_entity_is_named_with_its_file_and_line_not_a_traceback(tmp_path):
    chapter = xhtml("<h1>One</h1>\n<p>First paragraph here.</p>\n<p>Tom &bogus; and Jerry ran home.</p>")
    result = import_manuscript(mini_epub(tmp_path / "ent.epub", {"ch1.xhtml": chapter}), tmp_path / "out")
    texts = [r["text"] for r in read_csv(result.manifest)]
    assert "Tom and Jerry ran home." in texts
    remark = next(r for r in result.report.remarks if "&bogus;" in r)
    assert "ch1.xhtml" in remark and "line 4" in remark


# 3. Deep nesting ---------------------------------------------------------------------------------


@pytest.mark.parametrize("tag", ["div", "span"])
def test_deep_nesting_in_an_epub_is_refused_not_a_recursion_error(tmp_path, tag):
    deep = f"<{tag}>" * 100_000 + "Deep words." + f"</{tag}>" * 100_000
    body = f"<p>Before.</p><div>{deep}</div>" if tag == "div" else f"<p>Before.</p><p>{deep}</p>"
    path = mini_epub(tmp_path / "deep.epub", {"ch1.xhtml": xhtml(body)})
    message = refused(path, tmp_path / "out", "ch1.xhtml")
    assert "deep" in message and "200" in message


def test_deep_nesting_in_html_is_refused_not_silently_dropped(tmp_path):
    path = tmp_path / "deep.html"
    path.write_text("<html><body><p>Before the deep part.</p>" + "<div>" * 100_000 + "<p>Deep words.</p>"
                    + "</div>" * 100_000 + "<p>After the deep part.</p></body></html>")  # fmt: skip
    message = refused(path, tmp_path / "out", "deep.html")
    assert "deep" in message and "200" in message


def test_nesting_below_the_limit_is_read_in_full(tmp_path):
    spans = "<span>" * 90 + "Deep words are read." + "</span>" * 90
    body = "<p>Before.</p>" + "<div>" * 90 + f"<p>{spans}</p>" + "</div>" * 90  # 184 levels from <html>
    epub = import_manuscript(mini_epub(tmp_path / "ok.epub", {"ch1.xhtml": xhtml(body)}), tmp_path / "a")
    assert "Deep words are read." in [r["text"] for r in read_csv(epub.manifest)]
    (html := tmp_path / "ok.html").write_text(f"<html><body>{body}</body></html>")
    page = import_manuscript(html, tmp_path / "b")
    assert "Deep words are read." in [r["text"] for r in read_csv(page.manifest)]
    assert page.report.coverage == 1.0


# 4. A spine that repeats a document --------------------------------------------------------------


def test_a_document_repeated_in_the_spine_is_read_once(tmp_path):
    once = import_manuscript(mini_epub(tmp_path / "once.epub", {"ch1.xhtml": plain_chapter()}), tmp_path / "a")
    path = mini_epub(tmp_path / "loop.epub", {"ch1.xhtml": plain_chapter()}, spine=["ch1.xhtml"] * 1000)
    result = import_manuscript(path, tmp_path / "b")
    assert result.report.rows == once.report.rows and len(result.report.chapters) == 1
    assert result.report.predicted_s == once.report.predicted_s
    repeat = next(s for s in result.report.skipped if "reading order" in s.reason)
    assert repeat.what == "ch1.xhtml" and "999" in repeat.reason
