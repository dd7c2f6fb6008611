"""The read-along EPUB: from the source EPUB and from the manifest alone, checked by epubcheck and parsed back."""

from __future__ import annotations

import posixpath
import zipfile
from pathlib import Path

import pytest
from lxml import etree

from mediamill.deliver.readalong import (
    ReadalongBook,
    ReadalongChapter,
    ReadalongError,
    ReadalongRow,
    build_readalong,
    parse_clock,
)
from mediamill.deliver.readalong.spans import TextIndex, segments, wrap
from mediamill.ingest import ImportOptions, import_manuscript
from mediamill.media import probe
from tests.helpers.epub_helpers import chapters_of, epubcheck, problems, read_csv, sine_flac
from tests.helpers.ingest_books import epub2_book, epub3_book, markdown_book

SMIL = "{http://www.w3.org/ns/SMIL}"
OPF = "{http://www.idpf.org/2007/opf}"


def book_from(result, tmp: Path, words: bool = False, epub: Path | None = None) -> ReadalongBook:
    """Chapter audio of known length (a sine) and each row's stretch: 60 ms a character plus its pause."""
    chapters = []
    for n, (title, rows) in enumerate(chapters_of(read_csv(result.manifest)), 1):
        t, made = 0.0, []
        for row in rows:
            length = round(0.06 * len(row["text"]) + float(row["pause_after"]), 3)
            timed = None
            if words:
                ws = row["text"].split()
                step = length / len(ws)
                timed = tuple((w, round(t + i * step, 3), round(t + (i + 1) * step, 3)) for i, w in enumerate(ws))
            made.append(
                ReadalongRow(row["id"], row["text"], row["source"] or None, round(t, 3), round(t + length, 3), timed)
            )
            t = round(t + length, 3)
        chapters.append(ReadalongChapter(title, sine_flac(tmp / f"ch{n}.flac", t + 0.2), tuple(made)))
    report = result.report
    return ReadalongBook(
        report.title, report.author, report.language, result.cover, epub, tuple(chapters), narrator="Joe"
    )


def parse_package(path: Path):
    z = zipfile.ZipFile(path)
    container = etree.fromstring(z.read("META-INF/container.xml"))
    opf_path = container.xpath("//*[local-name()='rootfile']/@full-path")[0]
    opf = etree.fromstring(z.read(opf_path))
    return z, opf_path, opf


def pars_by_row(path: Path) -> tuple[dict[str, list[etree._Element]], dict]:
    """Every <par> of every overlay, by row id, and the package's facts."""
    z, opf_path, opf = parse_package(path)
    base = posixpath.dirname(opf_path)
    items = {i.get("id"): i for i in opf.iter(f"{OPF}item")}
    pars: dict[str, list] = {}
    docs = {}
    overlays = {}
    for item in items.values():
        if item.get("media-type") != "application/smil+xml":
            continue
        smil_path = posixpath.normpath(posixpath.join(base, item.get("href")))
        smil = etree.fromstring(z.read(smil_path))
        seconds = 0
        for par in smil.iter(f"{SMIL}par"):
            row_id = par.get("id")[2:].split("-w")[0] if "-w" in par.get("id") else par.get("id")[2:]
            text = par.find(f"{SMIL}text").get("src")
            audio = par.find(f"{SMIL}audio")
            doc = posixpath.normpath(posixpath.join(posixpath.dirname(smil_path), text.split("#")[0]))
            if doc not in docs:
                docs[doc] = etree.fromstring(z.read(doc))
            ids = docs[doc].xpath("//*[@id=$i]", i=text.split("#")[1])
            assert ids, f"{text} does not exist"
            audio_path = posixpath.normpath(posixpath.join(posixpath.dirname(smil_path), audio.get("src")))
            assert audio_path in z.namelist()
            begin, end = parse_clock(audio.get("clipBegin")), parse_clock(audio.get("clipEnd"))
            seconds += end - begin
            pars.setdefault(row_id, []).append((begin, end, audio_path, par))
        overlays[item.get("id")] = seconds
    metas = {(m.get("refines"), m.get("property")): m.text for m in opf.iter(f"{OPF}meta")}
    return pars, {"items": items, "metas": metas, "overlays": overlays, "zip": z, "opf": opf}


def assert_one_par_per_row(book: ReadalongBook, pars) -> None:
    for chapter in book.chapters:
        for row in chapter.rows:
            assert len(pars[row.id]) == 1, row.id
            begin, end, _, _ = pars[row.id][0]
            assert begin == pytest.approx(row.start_s, abs=0.0006) and end == pytest.approx(row.end_s, abs=0.0006)


def assert_durations(facts) -> None:
    metas = facts["metas"]
    total = 0.0
    for smil_id, seconds in facts["overlays"].items():
        declared = parse_clock(metas[(f"#{smil_id}", "media:duration")])
        assert declared == pytest.approx(seconds, abs=0.002)
        total += declared
        doc = next(i for i in facts["items"].values() if i.get("media-overlay") == smil_id)
        assert doc.get("media-type") == "application/xhtml+xml"
    assert parse_clock(metas[(None, "media:duration")]) == pytest.approx(total, abs=0.002)
    assert metas[(None, "media:active-class")] == "-epub-media-overlay-active"


@pytest.fixture(scope="module")
def lantern(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lantern")
    return epub3_book(tmp / "lantern.epub")


def test_readalong_from_the_source_epub(lantern, tmp_path):
    result = import_manuscript(lantern.path, tmp_path / "import")
    book = book_from(result, tmp_path, epub=lantern.path)
    dest = tmp_path / "readalong" / "lantern.epub"
    build_readalong(dest, book)
    assert problems(epubcheck(dest)) == []
    pars, facts = pars_by_row(dest)
    assert_one_par_per_row(book, pars)
    assert_durations(facts)
    assert book.warnings == []
    # The original book is all there, byte for byte where nothing was narrated.
    src = zipfile.ZipFile(lantern.path)
    out = facts["zip"]
    assert set(src.namelist()) <= set(out.namelist())
    assert out.read("OEBPS/text/copyright.xhtml") == src.read("OEBPS/text/copyright.xhtml")
    # Each chapter's audio is an MP3 of the chapter's length.
    for n, chapter in enumerate(book.chapters, 1):
        mp3 = tmp_path / f"c{n}.mp3"
        mp3.write_bytes(out.read(f"OEBPS/audio/ch{n:02d}.mp3"))
        info = probe(mp3)
        assert info.audio_codec.startswith("mp3") and info.duration_s == pytest.approx(
            chapter.rows[-1].end_s + 0.2, abs=0.1
        )


def test_sentence_rows_and_word_timings_wrap_spans_without_changing_the_text(lantern, tmp_path):
    result = import_manuscript(lantern.path, tmp_path / "import", ImportOptions(unit="sentence"))
    book = book_from(result, tmp_path, words=True, epub=lantern.path)
    dest = tmp_path / "lantern-words.epub"
    build_readalong(dest, book)
    assert problems(epubcheck(dest)) == []
    pars, facts = pars_by_row(dest)
    for chapter in book.chapters:
        for row in chapter.rows:
            clips = pars[row.id]
            assert len(clips) == len(row.text.split())  # one par per word
            assert clips[0][0] == pytest.approx(row.start_s, abs=0.0006)
            assert clips[-1][1] == pytest.approx(row.end_s, abs=0.0006)
            assert all(a[1] == pytest.approx(b[0], abs=1e-6) for a, b in zip(clips, clips[1:]))  # no gaps
            seq = clips[0][3].getparent()
            assert seq.tag == f"{SMIL}seq" and seq.get("{http://www.idpf.org/2007/ops}textref")
    assert_durations(facts)
    src = zipfile.ZipFile(lantern.path)
    for name in ("OEBPS/text/ch1.xhtml", "OEBPS/text/ch23.xhtml"):
        before = etree.fromstring(src.read(name).replace(b"&#160;", b"\xc2\xa0"))
        after = etree.fromstring(facts["zip"].read(name))
        assert segments(after)[1] == segments(before)[1]  # same visible text, only spans and ids added
        spans = after.xpath("//*[local-name()='span'][starts-with(@id, 'mm-')]")
        assert len(spans) > 50


def test_readalong_made_from_the_manifest(tmp_path):
    md = markdown_book(tmp_path / "salt.md")
    result = import_manuscript(md.path, tmp_path / "import")
    cover = tmp_path / "cover.png"
    from tests.helpers.ingest_books import png_bytes

    cover.write_bytes(png_bytes())
    book = book_from(result, tmp_path)
    book = ReadalongBook(book.title, book.author, book.language, cover, None, book.chapters)
    dest = tmp_path / "salt.epub"
    build_readalong(dest, book)
    assert problems(epubcheck(dest)) == []
    pars, facts = pars_by_row(dest)
    assert_one_par_per_row(book, pars)
    assert_durations(facts)
    z, opf = facts["zip"], facts["opf"]
    nav = etree.fromstring(z.read("EPUB/nav.xhtml"))
    assert nav.xpath("//*[@id='toc']//*[local-name()='a']/text()") == [c.title for c in book.chapters]
    assert any(i.get("properties") == "cover-image" for i in facts["items"].values())
    title = opf.xpath("//*[local-name()='title']/text()")
    assert title == ["Salt and Iron"]
    # every row's text is in the book, in its own element
    text = " ".join("".join(etree.fromstring(z.read(n)).itertext()) for n in z.namelist() if n.endswith(".xhtml"))
    assert all(row.text.rstrip(".") in text for c in book.chapters for row in c.rows)


def test_readalong_from_an_epub2_is_raised_to_epub3(tmp_path):
    ledger = epub2_book(tmp_path / "ledger.epub")
    result = import_manuscript(ledger.path, tmp_path / "import")
    book = book_from(result, tmp_path, epub=ledger.path)
    dest = tmp_path / "ledger-readalong.epub"
    build_readalong(dest, book)
    assert problems(epubcheck(dest)) == []
    pars, facts = pars_by_row(dest)
    assert_one_par_per_row(book, pars)
    assert facts["opf"].get("version") == "3.0"
    assert any("nav" in (i.get("properties") or "") for i in facts["items"].values())


def test_bad_times_are_refused_and_nothing_is_written(tmp_path):
    audio = sine_flac(tmp_path / "a.flac", 3.0)
    rows = (ReadalongRow("a", "One.", None, 0.0, 1.5), ReadalongRow("b", "Two.", None, 1.0, 2.0))
    book = ReadalongBook("T", None, "en", None, None, (ReadalongChapter("One", audio, rows),))
    with pytest.raises(ReadalongError, match="before the previous row ends"):
        build_readalong(tmp_path / "x.epub", book)
    rows = (ReadalongRow("a", "One.", None, 0.0, 1.5), ReadalongRow("b", "Two.", None, 1.5, 9.0))
    book = ReadalongBook("T", None, "en", None, None, (ReadalongChapter("One", audio, rows),))
    with pytest.raises(ReadalongError, match="audio lasts"):
        build_readalong(tmp_path / "x.epub", book)
    assert list(tmp_path.glob("*.epub")) == [] and list(tmp_path.glob(".*")) == []


def test_wrap_splits_inline_markup_and_keeps_text_and_ids():
    p = etree.fromstring('<p xmlns="http://www.w3.org/1999/xhtml">Go <em id="e">on, <b>then</b>,</em> he said.</p>')
    before = segments(p)[1]
    index = TextIndex(p)
    first = index.find("Go on, then,")
    second = index.find("he said.", first[1])
    wrap(p, *first, "r1")
    wrap(p, *second, "r2")
    assert segments(p)[1] == before
    assert "".join(p.xpath("//*[@id='r1']")[0].itertext()) == "Go on, then,"
    assert "".join(p.xpath("//*[@id='r2']")[0].itertext()) == "he said."
    assert len(p.xpath("//*[@id='e']")) == 1
    inner = TextIndex(p).find("then")
    wrap(p, *inner, "w")
    word = p.xpath("//*[@id='w']")[0]
    assert "".join(word.itertext()) == "then," and word[0].tag.endswith("b")  # the comma touching it comes along
    assert TextIndex(p).find("nowhere in the text") is None


# -- through the whole pipeline: import, produce, deliver -------------------------------------------------


@pytest.mark.usefixtures("prefect_api")
@pytest.mark.parametrize("with_source", [True, False])
def test_an_imported_book_is_produced_and_delivered_as_a_read_along(tmp_path, with_source):
    """import -> run -> readalong/<name>.epub: valid, one <par> per row, clips at the stitched rows' times."""
    import asyncio

    from mediamill.assemble import build_timeline
    from mediamill.flows import produce
    from mediamill.plan import validate
    from mediamill.store import Store

    src = epub3_book(tmp_path / "lantern.epub").path
    result = import_manuscript(src, tmp_path / "work")
    result.sidecar.write_text('profiles = ["readalong"]\n' + result.sidecar.read_text())  # before its tables
    if not with_source:
        (tmp_path / "work" / "lantern.epub").unlink(missing_ok=True)
    else:
        (tmp_path / "work" / "lantern.epub").write_bytes(src.read_bytes())  # the book beside its manifest
    out = tmp_path / "out"
    state = asyncio.run(
        produce(
            manifest=str(result.manifest),
            backend="tests.helpers.fakes:CountingBackend",
            outputs=str(out),
            return_state=True,
        )
    )
    assert state.is_completed(), state.message
    epub = out / result.manifest.stem / "readalong" / f"{result.manifest.stem}.epub"
    assert problems(epubcheck(epub)) == []

    plan = validate(result.manifest, "tests.helpers.fakes:CountingBackend")
    entries = {j.key: Store(out).get(j.key) for j in plan.jobs}
    timeline = build_timeline(plan, entries)
    pars, _ = pars_by_row(epub)
    expected = [r for c in timeline.chapters for r in c.rows]
    assert sorted(pars) == sorted(r.id for r in expected)  # one overlay entry per row, no more
    for chapter in timeline.chapters:
        for i, row in enumerate(chapter.rows):
            ((begin, end, audio, _),) = pars[row.id]
            following = chapter.rows[i + 1].start_s if i + 1 < len(chapter.rows) else chapter.duration_s
            assert begin == pytest.approx(row.start_s, abs=0.002) and end == pytest.approx(following, abs=0.002)
            assert audio.endswith(f"ch{chapter.number:02d}.mp3")
    qc = __import__("json").loads((out / result.manifest.stem / "qc.json").read_text())["profiles"]["readalong"]
    assert qc["ok"] and qc["outputs"] == [f"readalong/{result.manifest.stem}.epub"]
    assert any("not beside the manifest" in n for n in qc["notes"]) is (not with_source)
