"""EPUB 2 and 3 imports: reading order, chapters from the TOC, front/back matter, notes, bad input."""

from __future__ import annotations

import zipfile

import pytest

from mediamill.ingest import ImportOptions, IngestError, import_manuscript
from mediamill.ingest.clean import words
from tests.helpers.epub_helpers import chapters_of, epubcheck, problems, read_csv
from tests.helpers.ingest_books import assert_words_reach, drm_epub, epub2_book, epub3_book


@pytest.fixture(scope="module")
def book3(tmp_path_factory):
    return epub3_book(tmp_path_factory.mktemp("src") / "lantern.epub")


def test_the_epub3_fixture_is_valid(book3):
    assert problems(epubcheck(book3.path)) == []


def test_the_epub2_fixture_is_valid(tmp_path):
    book = epub2_book(tmp_path / "ledger.epub")
    assert problems(epubcheck(book.path)) == []


def test_epub3_chapters_follow_the_nested_toc_and_split_a_shared_file(book3, tmp_path):
    result = import_manuscript(book3.path, tmp_path / "out")
    rows = read_csv(result.manifest)
    assert [c.title for c in result.report.chapters] == [t for t, _ in book3.chapters]
    # Chapters 2 and 3 live in one XHTML file: each row's anchor says which half it came from.
    by_chapter = dict(chapters_of(rows))
    assert all(r["source"].startswith("text/ch23.xhtml#") for r in by_chapter["Chapter 2: The Market"])
    assert {r["source"] for r in by_chapter["Chapter 2: The Market"]}.isdisjoint(
        r["source"] for r in by_chapter["Chapter 3: Lanterns"]
    )
    assert_words_reach(book3, rows)
    # The part title page is read at the start of its first chapter, not as a chapter of its own.
    assert rows[0]["text"] == "Part One." and rows[1]["text"] == "Chapter 1: Arrival."


def test_epub3_front_and_back_matter_are_skipped_and_listed(book3, tmp_path):
    report = import_manuscript(book3.path, tmp_path / "out").report
    skipped = {s.what for s in report.skipped}
    assert set(book3.skipped_titles) <= skipped
    reasons = {s.what: s.reason for s in report.skipped}
    assert "copyright" in reasons["Copyright"] and "acknowledgments" in reasons["Acknowledgments"]
    text = report.to_text()
    assert "Skipped" in text and "Copyright" in text
    rows = read_csv(tmp_path / "out" / "lantern.csv")
    assert not any("All rights reserved" in r["text"] or "ISBN" in r["text"] for r in rows)


def test_keep_reads_front_matter_on_request(book3, tmp_path):
    report = import_manuscript(
        book3.path, tmp_path / "out", ImportOptions(keep=frozenset({"copyright-page", "acknowledgments"}))
    ).report
    titles = [c.title for c in report.chapters]
    assert "Copyright" in titles and "Acknowledgments" in titles
    assert "Title Page" not in titles


def test_note_markers_are_dropped_and_notes_read_at_the_chapter_end_on_request(book3, tmp_path):
    rows = read_csv(import_manuscript(book3.path, tmp_path / "a").manifest)
    office = next(r for r in rows if r["text"].startswith("The office"))
    assert office["text"] == "The office was quiet and the clock ticked in its careful way."  # ligature, NBSP,
    assert not any("closed since spring" in r["text"] for r in rows)  # soft hyphen, marker, page number
    rows = read_csv(import_manuscript(book3.path, tmp_path / "b", ImportOptions(notes="end")).manifest)
    chapters = dict(chapters_of(rows))
    assert chapters["Part One: Chapter 1: Arrival"][-1]["text"] == "Note 1. The office had been closed since spring."
    assert chapters["Part Two: Chapter 4: Winter"][-1]["text"] == "Note 2. Twelve candles, counted twice."


def test_tables_and_alt_text_are_optional(book3, tmp_path):
    rows = read_csv(import_manuscript(book3.path, tmp_path / "a").manifest)
    assert not any("Candles" in r["text"] or "map of the harbour" in r["text"] for r in rows)
    rows = read_csv(import_manuscript(book3.path, tmp_path / "b", ImportOptions(tables="read", alt_text=True)).manifest)
    texts = [r["text"] for r in rows]
    assert "Candles, 12." in texts and "A map of the harbour" in texts


def test_report_counts_words_duration_and_coverage(book3, tmp_path):
    report = import_manuscript(book3.path, tmp_path / "out").report
    assert report.rows == sum(c.rows for c in report.chapters)
    assert 0.97 <= report.coverage <= 1.0
    expected = sum(len(words(p)) for _, paras in book3.chapters for p in paras)
    assert expected <= report.words <= expected + 30  # plus the headings read
    assert report.predicted_s > report.words / 3  # about 2.5 words a second, plus pauses
    data = report.to_dict()
    assert data["coverage"] == round(report.coverage, 4) and data["chapters"][0]["title"] == report.chapters[0].title


def test_sidecar_and_cover(book3, tmp_path):
    import tomllib

    result = import_manuscript(book3.path, tmp_path / "out")
    side = tomllib.loads(result.sidecar.read_text())
    assert side["title"] == "The Lantern Harbour" and side["author"] == "Mara Ellison" and side["language"] == "en"
    assert (
        side["cover"] == "lantern-cover.png" and (tmp_path / "out" / "lantern-cover.png").read_bytes()[:4] == b"\x89PNG"
    )
    assert side["source"]["file"] == "lantern.epub" and side["source"]["format"] == "epub3"
    import hashlib

    assert side["source"]["sha256"] == hashlib.sha256(book3.path.read_bytes()).hexdigest()
    assert "narrator" not in side and "# narrator" in result.sidecar.read_text()


def test_epub2_with_ncx_only(tmp_path):
    book = epub2_book(tmp_path / "ledger.epub")
    result = import_manuscript(book.path, tmp_path / "out")
    assert result.report.format == "epub2"
    assert [c.title for c in result.report.chapters] == ["Chapter I", "Chapter II", "Chapter III"]
    assert_words_reach(book, read_csv(result.manifest))
    assert {"Title Page", "About the Author"} <= {s.what for s in result.report.skipped}
    assert result.report.author == "J. Carver" and result.report.language == "en-GB"
    # "Chapter II" is read as "Chapter 2."
    assert "Chapter 2." in [r["text"] for r in read_csv(result.manifest)]


def test_drm_encrypted_epub_is_refused_and_nothing_written(tmp_path):
    path = drm_epub(tmp_path / "locked.epub")
    with pytest.raises(IngestError, match="encrypted"):
        import_manuscript(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_font_obfuscation_is_not_drm(tmp_path):
    book = epub3_book(tmp_path / "fonts.epub")
    enc = (
        '<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container" '
        'xmlns:enc="http://www.w3.org/2001/04/xmlenc#"><enc:EncryptedData>'
        '<enc:EncryptionMethod Algorithm="http://www.idpf.org/2008/embedding"/>'
        '<enc:CipherData><enc:CipherReference URI="OEBPS/fonts/a.otf"/></enc:CipherData>'
        "</enc:EncryptedData></encryption>"
    )
    with zipfile.ZipFile(book.path, "a") as z:
        z.writestr("META-INF/encryption.xml", enc)
    assert import_manuscript(book.path, tmp_path / "out").report.rows > 10


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty"),
        (b"PK\x03\x04 not really a zip", "cannot be opened|not a readable"),
        (b"\x00\x01binary", "cannot tell"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(tmp_path, content, message):
    path = tmp_path / ("book.epub" if content.startswith(b"PK") else "book.bin")
    path.write_bytes(content)
    with pytest.raises(IngestError, match=message):
        import_manuscript(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_an_epub_without_text_is_refused(tmp_path):
    path = tmp_path / "empty.epub"
    with zipfile.ZipFile(epub3_book(tmp_path / "x.epub").path) as src, zipfile.ZipFile(path, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            if name.startswith("OEBPS/text/"):
                data = data.split(b"<body>")[0] + b"<body></body></html>"
            dst.writestr(name, data)
    with pytest.raises(IngestError, match="no text"):
        import_manuscript(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()
