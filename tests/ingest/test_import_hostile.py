"""Hostile manuscripts: each is refused with a clear message (exit code 2) or imported correctly,
in bounded time and memory, and a refused or failed import leaves nothing behind.

The files are small and crafted here; limits are lowered for a test (monkeypatch) rather than
exercised at their real size.
"""

from __future__ import annotations

import errno
import os
import random
import struct
import zipfile
from pathlib import Path

import pytest

from mediamill.cli import main
from mediamill.ingest import ImportOptions, IngestError, import_manuscript
from tests.helpers.epub_helpers import read_csv
from tests.helpers.ingest_books import CONTAINER, docx_book, epub3_book, png_bytes

MiB = 1024 * 1024
PARAS = [
    "The lantern swung above the harbour wall.",
    "Morning came quietly over the river.",
    "She folded the letter and left it by the window.",
]


def xhtml(body: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<html xmlns="http://www.w3.org/1999/xhtml" lang="en">'
        f"<head><title>t</title></head><body>{body}</body></html>"
    ).encode()


def mini_epub(
    path: Path, docs: dict[str, bytes], spine: list[str] | None = None, extra: dict[str, bytes] | None = None
) -> Path:
    """A minimal EPUB 3 (no TOC: one chapter per document); ``spine`` lists document names in order."""
    ids = {name: f"d{i}" for i, name in enumerate(docs)}
    items = "".join(f'<item id="{ids[n]}" href="{n}" media-type="application/xhtml+xml"/>' for n in docs)
    refs = "".join(f'<itemref idref="{ids[n]}"/>' for n in (spine or list(docs)))
    opf = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<package xmlns="http://www.idpf.org/2007/opf" version="3.0" '
        'unique-identifier="uid"><metadata xmlns:dc="http://purl.org/dc/elements/1.1/">'
        '<dc:identifier id="uid">urn:uuid:0</dc:identifier><dc:title>Hostile</dc:title>'
        "<dc:language>en</dc:language></metadata>"
        f"<manifest>{items}</manifest><spine>{refs}</spine></package>"
    )
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
    monkeypatch.setattr("mediamill.epub.archive.MAX_ENTRY_BYTES", 1 * MiB)
    monkeypatch.setattr("mediamill.epub.archive.MAX_TOTAL_BYTES", 3 * MiB)


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
    path.write_text(
        "<html><body><p>Before the deep part.</p>"
        + "<div>" * 100_000
        + "<p>Deep words.</p>"
        + "</div>" * 100_000
        + "<p>After the deep part.</p></body></html>"
    )
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


# 5. Too much text --------------------------------------------------------------------------------


def test_more_rows_than_a_manifest_may_have_is_refused_at_import(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDIAMILL_MAX_ROWS", "5")
    path = tmp_path / "long.md"
    path.write_text("# Long\n\n" + "\n\n".join(f"{PARAS[i % 3]} It was day {i}." for i in range(8)) + "\n")
    message = refused(path, tmp_path / "out", "MEDIAMILL_MAX_ROWS")
    assert "makes 9 rows" in message and "at most 5" in message and "split" in message


@pytest.mark.parametrize(
    "name, paragraph", [("many.md", "Para {i}.\n\n"), ("many.txt", "Para {i}.\n\n"), ("many.html", "<p>Para {i}.</p>")]
)
def test_far_more_paragraphs_than_rows_are_refused_before_parsing(tmp_path, monkeypatch, name, paragraph):
    monkeypatch.setenv("MEDIAMILL_MAX_ROWS", "10")
    path = tmp_path / name
    path.write_text("".join(paragraph.format(i=i) for i in range(25)))
    message = refused(path, tmp_path / "out", "MEDIAMILL_MAX_ROWS")
    assert "paragraphs" in message and "split" in message  # counted before parsing, not rows made


def test_a_text_manuscript_over_the_size_cap_is_refused_before_it_is_read(tmp_path, monkeypatch):
    monkeypatch.setattr("mediamill.ingest.sources.MAX_TEXT_BYTES", 4096)
    path = tmp_path / "huge.md"
    path.write_text("\n\n".join(f"Paragraph number {i} is here." for i in range(400)))
    message = refused(path, tmp_path / "out", "huge.md")
    assert "split" in message


# 6. Binary data posing as text -------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, data, match",
    [
        ("noise.txt", random.Random(6).randbytes(20_000), "binary|not text"),
        ("picture.md", png_bytes(), "PNG"),
        ("page.html", b"\x7fELF\x02\x01\x01" + bytes(2000), "ELF"),
        ("gz.txt", b"\x1f\x8b\x08" + random.Random(7).randbytes(500), "gzip"),
    ],
)
def test_binary_data_named_as_text_is_refused(tmp_path, name, data, match):
    path = tmp_path / name
    path.write_bytes(data)
    refused(path, tmp_path / "out", match)


def test_binary_data_is_refused_even_with_a_forced_format(tmp_path):
    path = tmp_path / "noise.bin"
    path.write_bytes(random.Random(8).randbytes(5000))
    refused(path, tmp_path / "out", "binary|not text", ImportOptions(format="text"))


def test_utf16_text_with_a_bom_is_still_text(tmp_path):
    path = tmp_path / "wide.txt"
    path.write_bytes("\n\n".join(PARAS).encode("utf-16"))
    result = import_manuscript(path, tmp_path / "out")
    assert [r["text"] for r in read_csv(result.manifest)][-3:] == PARAS  # after the title the file name gives
    assert result.report.encoding == "UTF-16"


# 7. Encodings ------------------------------------------------------------------------------------


def test_latin1_text_is_read_as_windows_1252_and_the_report_says_so(tmp_path):
    path = tmp_path / "cafe.txt"
    path.write_bytes("The naïve café owner smiled.\n\nHe served crème brûlée to the façade painter.".encode("latin-1"))
    result = import_manuscript(path, tmp_path / "out")
    assert [r["text"] for r in read_csv(result.manifest)][-2:] == [
        "The naïve café owner smiled.",
        "He served crème brûlée to the façade painter.",
    ]
    assert result.report.encoding == "Windows-1252"
    assert any("Windows-1252" in r and "UTF-8" in r for r in result.report.remarks)
    assert "Windows-1252" in result.report.to_text()


def test_utf8_is_preferred_and_named(tmp_path):
    path = tmp_path / "cafe.md"
    path.write_text("The naïve café owner smiled.\n\nA second paragraph.", encoding="utf-8")
    result = import_manuscript(path, tmp_path / "out")
    assert "The naïve café owner smiled." in [r["text"] for r in read_csv(result.manifest)]
    assert result.report.encoding == "UTF-8" and not any("Windows-1252" in r for r in result.report.remarks)


def test_utf8_html_without_a_charset_is_read_as_utf8(tmp_path):
    path = tmp_path / "page.html"
    path.write_text(
        "<html><body><p>The naïve café owner smiled.</p><p>A second paragraph.</p></body></html>", encoding="utf-8"
    )
    result = import_manuscript(path, tmp_path / "out")
    assert "The naïve café owner smiled." in [r["text"] for r in read_csv(result.manifest)]
    assert result.report.encoding == "UTF-8"


def test_html_in_its_declared_charset(tmp_path):
    path = tmp_path / "page.html"
    path.write_bytes(
        '<html><head><meta charset="iso-8859-15"></head><body><p>It cost 5 € at the café.</p>'
        "<p>A second paragraph.</p></body></html>".encode("iso-8859-15")
    )
    result = import_manuscript(path, tmp_path / "out")
    assert "It cost 5 € at the café." in [r["text"] for r in read_csv(result.manifest)]
    assert result.report.encoding == "ISO-8859-15"


def test_text_in_another_8_bit_encoding_is_refused_asking_for_utf8(tmp_path):
    path = tmp_path / "russian.txt"
    path.write_bytes("Мороз и солнце; день чудесный!\n\nЕщё ты дремлешь, друг прелестный.".encode("cp1251"))
    refused(path, tmp_path / "out", "UTF-8")


# 8. Symbolic links -------------------------------------------------------------------------------


def test_a_symlinked_source_is_refused(tmp_path):
    secret = tmp_path / "elsewhere" / "passwd"
    secret.parent.mkdir()
    secret.write_text("root:x:0:0:root:/root:/bin/bash\n\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n")
    (tmp_path / "inbox").mkdir()
    link = tmp_path / "inbox" / "book.txt"
    link.symlink_to(secret)
    refused(link, tmp_path / "out", "symbolic link")


# 9. Failed writes leave nothing behind -----------------------------------------------------------


@pytest.fixture(scope="module")
def book_with_cover(tmp_path_factory):
    return epub3_book(tmp_path_factory.mktemp("src") / "book.epub").path


def test_out_of_space_names_the_output_and_leaves_nothing(tmp_path, monkeypatch, capsys, book_with_cover):
    real = Path.write_bytes

    def full_disk(self, data):
        if self.suffix == ".csv":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", full_disk)
    out = tmp_path / "out"
    assert main(["import", str(book_with_cover), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(out / "book.csv") in err and "No space left" in err and "Traceback" not in err
    assert not out.exists() or not list(out.iterdir()), sorted(p.name for p in out.iterdir())


def test_a_folder_in_the_manifests_place_fails_before_anything_is_written(tmp_path, capsys, book_with_cover):
    out = tmp_path / "out"
    (out / "book.csv").mkdir(parents=True)
    assert main(["import", str(book_with_cover), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(out / "book.csv") in err
    assert [p.name for p in out.iterdir()] == ["book.csv"] and not list((out / "book.csv").iterdir())


def test_the_cli_refuses_hostile_input_with_exit_code_2_and_no_traceback(tmp_path, capsys):
    path = tmp_path / "noise.txt"
    path.write_bytes(random.Random(6).randbytes(20_000))
    assert main(["import", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mediamill import: noise.txt") and "binary" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
