"""DOCX, Markdown, HTML, plain text and PDF imports, each from a file made with a real writer."""

from __future__ import annotations

import random

import lxml.html
import pytest

from mediamill.epub.xhtml import resolve_fragment
from mediamill.ingest import ImportOptions, IngestError, import_manuscript
from tests.helpers.epub_helpers import chapters_of, read_csv
from tests.helpers.ingest_books import (
    GUTENBERG_HEADER,
    GUTENBERG_LICENCE,
    assert_words_reach,
    docx_book,
    gutenberg_html_book,
    html_book,
    markdown_book,
    paragraph,
    pdf_book,
    scanned_pdf,
    text_book,
)


def test_docx_heading_styles_make_chapters_and_title_style_names_the_book(tmp_path):
    book = docx_book(tmp_path / "orchard.docx")
    result = import_manuscript(book.path, tmp_path / "out")
    rows = read_csv(result.manifest)
    assert result.report.title == "The Orchard Year" and result.report.author == "Ada Brook"
    assert_words_reach(book, rows)
    assert "Later that day." in [r["text"] for r in rows]  # Heading 2 is read, inside its chapter
    assert not any(r["text"].endswith("3") for r in rows)  # the hand-typed superscript marker is gone
    assert all(r["source"].startswith("p") for r in rows)
    assert any(s.what == "table" for s in result.report.skipped)
    rows = read_csv(import_manuscript(book.path, tmp_path / "b", ImportOptions(tables="read")).manifest)
    assert "Apples, 40." in [r["text"] for r in rows]


def test_markdown_headings_front_matter_footnotes_and_code(tmp_path):
    book = markdown_book(tmp_path / "salt.md")
    result = import_manuscript(book.path, tmp_path / "out")
    rows = read_csv(result.manifest)
    assert (result.report.title, result.report.author, result.report.language) == ("Salt and Iron", "Tom Reyes", "en")
    assert_words_reach(book, rows)
    assert rows[0]["text"] == "Salt and Iron." and rows[1]["text"] == "Chapter One."  # the title opens the book
    assert not any("print(" in r["text"] or "[^1]" in r["text"] for r in rows)
    assert all(r["source"].startswith("L") for r in rows)
    rows = read_csv(import_manuscript(book.path, tmp_path / "b", ImportOptions(notes="end")).manifest)
    assert dict(chapters_of(rows))["Chapter One"][-1]["text"] == "Note 1. A note about salt."


def test_html_h2_chapters_under_one_h1(tmp_path):
    book = html_book(tmp_path / "road.html")
    result = import_manuscript(book.path, tmp_path / "out")
    assert_words_reach(book, read_csv(result.manifest))
    assert result.report.author == "Iris Hale"
    assert any("titlepage" in s.reason for s in result.report.skipped)


def test_plain_text_headings_wrapping_and_hyphenation(tmp_path):
    book = text_book(tmp_path / "harbour.txt")
    result = import_manuscript(book.path, tmp_path / "out")
    rows = read_csv(result.manifest)
    assert (result.report.title, result.report.author) == ("The Harbour Lights", "Nell Avery")
    assert_words_reach(book, rows)
    texts = [r["text"] for r in rows]
    assert "She thought the bay looked beautiful tonight, and the well-known lamps were lit." in texts
    assert "Chapter 12: Morning." in texts  # "CHAPTER XII" + subtitle, read with digits
    assert not any("* * *" in t for t in texts)
    first = dict(chapters_of(rows))["Chapter X: The Storm"]
    assert max(float(r["pause_after"]) for r in first[:-1]) == 1.5  # the scene break's pause


def test_pdf_drops_running_heads_and_page_numbers_and_joins_hyphens(tmp_path):
    book = pdf_book(tmp_path / "keeper.pdf")
    result = import_manuscript(book.path, tmp_path / "out")
    rows = read_csv(result.manifest)
    assert [c.title for c in result.report.chapters] == ["Chapter 1", "Chapter 2"]
    assert_words_reach(book, rows)
    texts = " ".join(r["text"] for r in rows)
    assert "KEEPER'S YEAR" not in texts.upper().replace("THE KEEPER'S YEAR.", "")
    assert "extraordinarily beautiful" in texts and "extraordi-" not in texts
    assert all(r["source"].startswith("pg") for r in rows)
    # paragraphs were rebuilt: one row per source paragraph (plus the headings)
    assert len(rows) == sum(len(p) for _, p in book.chapters) + 2
    assert any("page furniture" in s.reason for s in result.report.skipped)


def test_scanned_pdf_without_text_layer_is_refused(tmp_path):
    path = scanned_pdf(tmp_path / "scan.pdf")
    with pytest.raises(IngestError, match="no text layer.*OCR"):
        import_manuscript(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_sentence_unit_and_max_chars(tmp_path):
    path = tmp_path / "doc.txt"
    long = " ".join(f"Sentence number {i} speaks of Dr. Smith and the harbour at dawn." for i in range(40))
    path.write_text("CHAPTER 1\n\n" + long + "\n\nA short one. And another.\n", encoding="utf-8")
    rows = read_csv(import_manuscript(path, tmp_path / "a", ImportOptions(max_chars=300)).manifest)
    assert all(len(r["text"]) <= 300 for r in rows)
    assert all(r["text"].endswith(".") for r in rows)  # split at sentence ends
    inner = [float(r["pause_after"]) for r in rows[1:-1]]
    assert 0.3 in inner and 0.6 in inner and float(rows[-1]["pause_after"]) == 2.0
    rows = read_csv(import_manuscript(path, tmp_path / "b", ImportOptions(unit="sentence")).manifest)
    assert "Sentence number 0 speaks of Dr. Smith and the harbour at dawn." in [r["text"] for r in rows]
    assert [r["text"] for r in rows][-2:] == ["A short one.", "And another."]


def test_gutenberg_licence_in_a_pre_block_is_skipped_not_read(tmp_path):
    """Project Gutenberg's HTML books keep the header and licence in <pre> blocks longer than the marker line."""
    header = "The Project Gutenberg EBook of A Book, by Someone\n" + "This eBook is for the use of anyone. " * 20
    licence = "End of the Project Gutenberg EBook\n" + "Section 1. General Terms of Use. " * 40
    source = tmp_path / "book.htm"
    source.write_text(
        "<html><head><title>A Book</title></head><body>"
        f"<pre>{header}\n*** START OF THIS PROJECT GUTENBERG EBOOK A BOOK ***\nProduced by volunteers</pre>"
        "<h2>Chapter 1</h2><p>The lamp was lit at dusk.</p><p>Then the street went dark.</p>"
        f"<pre>{licence}\n*** END OF THIS PROJECT GUTENBERG EBOOK A BOOK ***\n{licence}</pre>"
        "</body></html>",
        encoding="utf-8",
    )
    result = import_manuscript(source, tmp_path / "out", ImportOptions())
    texts = [r["text"] for r in read_csv(result.manifest)]
    assert "The lamp was lit at dusk." in texts
    assert not any("Gutenberg" in t or "Terms of Use" in t for t in texts), texts
    skipped = {s.what for s in result.report.skipped}
    assert {"Project Gutenberg header", "Project Gutenberg licence"} <= skipped


def _letters(text: str) -> str:
    return "".join(c for c in text if c.isalpha())


def _titles(result) -> list[str]:
    return [c.title for c in result.report.chapters]


def test_gutenberg_html4_contents_table_links_to_named_anchors_in_h3_stories(tmp_path):
    """Chapters are the <a name> anchors a contents table links to, inside H3 headings under H1/H2 title lines;
    the table and its "CONTENTS" heading are a table of contents, left out unless --keep toc."""
    book = gutenberg_html_book(tmp_path / "lamp.htm", "table")
    result = import_manuscript(book.path, tmp_path / "out")
    rows = read_csv(result.manifest)
    assert _titles(result) == ["ADVENTURE I. THE LAMP", "ADVENTURE II. THE FERRY", "ADVENTURE III. THE ORCHARD"]
    assert_words_reach(book, rows)
    assert not any("CONTENTS" in r["text"] for r in rows)
    toc = [s for s in result.report.skipped if s.reason.startswith("toc")]
    assert [s.what for s in toc] == ["CONTENTS"] and toc[0].words > 0
    # Anchors count the elements of the file as it is, the header and the list taken out notwithstanding.
    tree = lxml.html.document_fromstring(book.path.read_bytes().decode("latin-1")).getroottree()
    for row in rows:
        element = resolve_fragment(tree, row["source"].partition("#")[2])
        assert _letters(row["text"])[:20] in _letters(element.text_content()), row
    kept = import_manuscript(book.path, tmp_path / "keep", ImportOptions(keep=frozenset({"toc"})))
    assert "CONTENTS." in [r["text"] for r in read_csv(kept.manifest)]
    assert not any(s.reason.startswith("toc") for s in kept.report.skipped)
    assert _titles(kept) == _titles(result)


def test_gutenberg_html4_pre_contents_anchors_before_headings(tmp_path):
    """Empty <A NAME> anchors before H3 "1. The Lamp" (the first after an H1 repeating the book's title); an
    unlisted H3 "Preface" is a section of its own; an H3 sign inside a chapter is not a chapter."""
    book = gutenberg_html_book(tmp_path / "lamp.htm", "pre")
    result = import_manuscript(book.path, tmp_path / "out")
    rows = read_csv(result.manifest)
    assert _titles(result) == ["Preface", "1. The Lamp", "2. The Ferry", "3. The Orchard"]
    assert_words_reach(book, rows)
    texts = [r["text"] for r in rows]
    assert '"KEEP OFF THE GRASS".' in [r["text"] for r in dict(chapters_of(rows))["2. The Ferry"]]
    assert not any("The Ferry" in t and "The Orchard" in t for t in texts)  # the list is not read
    assert [s.what for s in result.report.skipped if s.reason.startswith("toc")] == ["Contents"]


def test_gutenberg_html_contents_paragraphs_and_anchors_closing_the_paragraph_before(tmp_path):
    """H1 title and H2 "By <author>" are not a chapter; the CONTENTS paragraphs are left out; an anchor at the
    end of a chapter's last paragraph starts the next chapter after that paragraph, not before it."""
    book = gutenberg_html_book(tmp_path / "lamp.htm", "paragraphs")
    result = import_manuscript(book.path, tmp_path / "out")
    rows = read_csv(result.manifest)
    assert _titles(result) == ["Chapter 1", "Chapter 2", "Chapter 3"]
    assert_words_reach(book, rows)
    chapters = dict(chapters_of(rows))
    assert chapters["Chapter 1"][-1]["text"] == "\u201cEDITH MARLOW\u201d"
    assert chapters["Chapter 2"][0]["text"] == "Chapter 2."
    assert [r["text"] for r in rows][:2] == ["THE LAMP STORIES.", "By Edith Marlow."]  # read, not a chapter


def test_gutenberg_html_header_gives_title_author_language_and_credits_are_skipped(tmp_path):
    """No <html lang>: the header's "Language: English" is the language, as a tag; its title beats the
    page's <TITLE>; "Produced by ..." after the start marker (in the header's <PRE> or a paragraph of its
    own) and a transcriber's note are not read."""
    for name, credit in (
        ("pre", ""),
        ("p", "<P>Produced by Jane Volunteer.</P><P CLASS=transnote>TRANSCRIBER'S NOTE: Spelling is as printed.</P>"),
    ):
        book = gutenberg_html_book(tmp_path / f"{name}.htm", "paragraphs")
        if credit:
            page = book.path.read_bytes().replace(b"<h1>", credit.encode() + b"<h1>", 1)
            book.path.write_bytes(page)
        result = import_manuscript(book.path, tmp_path / name)
        assert (result.report.title, result.report.author, result.report.language) == (
            "The Lamp Stories",
            "Edith Marlow",
            "en",
        )
        assert 'language = "en"' in result.sidecar.read_text(encoding="utf-8")
        texts = " ".join(r["text"] for r in read_csv(result.manifest))
        assert "Produced by" not in texts and "TRANSCRIBER" not in texts and "Spelling is" not in texts
        assert ("Project Gutenberg credits" in {s.what for s in result.report.skipped}) == bool(credit)


def test_gutenberg_text_credit_line_after_the_start_marker_is_skipped(tmp_path):
    rng = random.Random(9)
    header = GUTENBERG_HEADER.format(title="The Lamp Stories", author="Edith Marlow", upper="THE LAMP STORIES")
    first, second = paragraph(rng), paragraph(rng)
    source = tmp_path / "lamp.txt"
    source.write_text(
        header + "\n\n\nProduced by an anonymous Project Gutenberg volunteer and Jose\nMenendez\n\n\n"
        f"CHAPTER I\n\n{first}\n\nCHAPTER II\n\n{second}\n\n"
        "Produced by the light of the lamp, the shadows danced.\n\n"
        + GUTENBERG_LICENCE.format(upper="THE LAMP STORIES"),
        encoding="utf-8",
    )
    result = import_manuscript(source, tmp_path / "out")
    texts = [r["text"] for r in read_csv(result.manifest)]
    assert not any("Menendez" in t for t in texts)
    assert "Produced by the light of the lamp, the shadows danced." in texts  # the book's own words stay
    assert result.report.language == "en"
    text = source.read_text(encoding="utf-8")
    line = text[: text.index("Produced by an")].count("\n") + 1
    assert ("Project Gutenberg credits", f"L{line}") in [(s.what, s.source) for s in result.report.skipped]


def test_html_without_contents_numbered_h3_headings_are_chapters(tmp_path):
    """No contents list: H3 "1. The Lamp" headings under an H1 title and H2 author and contents lines are the
    chapters; an H3 inside a chapter that is not numbered stays in it."""
    rng = random.Random(10)
    names = ["Lamp", "Ferry", "Orchard"]
    chapters = [(f"{i}. {t}", [paragraph(rng) for _ in range(3)]) for i, t in enumerate(names, 1)]
    body = "<H1>THE LAMP STORIES</H1><H2>EDITH MARLOW</H2><H2>CONTENTS</H2><P>1. Lamp 2. Ferry 3. Orchard</P>"
    for n, (title, paras) in enumerate(chapters):
        body += f"<H3>{title}</H3>" + "".join(f"<P>{p}</P>" for p in paras[:2])
        body += ("<H3>A SIGN ON THE DOOR</H3>" if n == 1 else "") + f"<P>{paras[2]}</P>"
    source = tmp_path / "lamp.htm"
    source.write_text(f"<HTML><BODY>{body}</BODY></HTML>", encoding="utf-8")
    result = import_manuscript(source, tmp_path / "out")
    assert _titles(result) == ["1. Lamp", "2. Ferry", "3. Orchard"]
    rows = read_csv(result.manifest)
    assert "A SIGN ON THE DOOR." in [r["text"] for r in dict(chapters_of(rows))["2. Ferry"]]


def test_html_centred_chapter_paragraphs_are_chapters(tmp_path):
    """No chapter headings, but centred paragraphs "CHAPTER I." (with a subtitle paragraph) under H1/H2 title
    lines: those paragraphs head the chapters."""
    rng = random.Random(11)
    body = "<h1>THE LAMP STORIES</h1><h2>By Edith Marlow</h2>"
    for numeral, subtitle in (("I", "THE LAMP"), ("II", "THE FERRY"), ("III", "THE ORCHARD")):
        body += f'<p align="center">CHAPTER {numeral}.</p><p align="center">{subtitle}</p>' + "".join(
            f"<p>{paragraph(rng)}</p>" for _ in range(3)
        )
    source = tmp_path / "lamp.html"
    source.write_text(f"<html><body>{body}</body></html>", encoding="utf-8")
    result = import_manuscript(source, tmp_path / "out")
    assert _titles(result) == ["CHAPTER I. THE LAMP", "CHAPTER II. THE FERRY", "CHAPTER III. THE ORCHARD"]


@pytest.mark.parametrize("mark", ["* * *", "*" * 40, " ".join("*" * 20), "-" * 60, "~ ~ ~ ~ ~ ~ ~ ~ ~ ~ ~ ~ ~ ~ ~ ~"])
def test_a_line_of_break_marks_of_any_length_is_a_pause_not_a_row(tmp_path, mark):
    # Project Gutenberg's Alice marks a break inside chapter V with twenty spaced asterisks (39 characters).
    page = tmp_path / "marks.html"
    page.write_text(
        "<html><head><title>Marks</title></head><body><h1>Chapter One</h1>"
        f"<p>The first part of the chapter ends here.</p><p>{mark}</p><p>The second part begins here.</p>"
        "</body></html>",
        encoding="utf-8",
    )
    rows = read_csv(import_manuscript(page, tmp_path / "out").manifest)
    texts = [r["text"] for r in rows]
    assert texts[-2:] == ["The first part of the chapter ends here.", "The second part begins here."]
    assert float(rows[-2]["pause_after"]) == 1.5  # the scene break's pause
