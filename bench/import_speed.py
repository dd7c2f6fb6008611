"""Import speed on a novel-sized EPUB, and the share of its words that reach the manifest.

Builds a book with ebooklib (about 100,000 words in 30 chapters of generated
prose, with dialogue, abbreviations, italics and a few footnotes), then times
``import_manuscript`` on it, paragraph and sentence units, best of three runs.

    python bench/import_speed.py [--words 100000] [--chapters 30] [--readalong]

``--readalong`` also times building the read-along EPUB from the source EPUB
(chapter audio is silence of the rows' predicted length).

Baselines in the same run: for the import, ebooklib reading the book and lxml
taking the text of every document (what any converter does at least); for the
read-along, the same MP3 encodes of the chapters as plain ffmpeg commands.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path
from xml.sax.saxutils import escape

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save  # noqa: E402

from mediamill.ingest import ImportOptions, import_manuscript  # noqa: E402
from mediamill.ingest.clean import word_count  # noqa: E402

VOCAB = (
    "the a of and to in was he she it that his her with as for had on at by they but from not be "
    "river lantern morning quiet harbour window letter garden stone bridge evening silver winter market candle "
    "orchard meadow thunder shadow whisper crowd kettle ladder chapel foreman copper distant gentle narrow "
    "heavy bright patient sudden careful golden remembered walked turned looked said answered wondered "
    "slowly quickly never always again before after beneath above beyond toward"
).split()


def sentence(rng: random.Random) -> str:
    words = [rng.choice(VOCAB) for _ in range(rng.randint(5, 22))]
    if rng.random() < 0.05:
        words.insert(rng.randrange(len(words)), "Dr. Ellison")
    text = " ".join(words)
    text = text[0].upper() + text[1:] + rng.choice([".", ".", ".", "?", "!"])
    if rng.random() < 0.15:
        text = f"\u201c{text}\u201d she said."
    return text


def build(path: Path, total_words: int, chapters: int, seed: int = 7) -> int:
    from ebooklib import epub

    rng = random.Random(seed)
    book = epub.EpubBook()
    book.set_identifier("bench-novel-0001")
    book.set_title("The Long Harbour")
    book.set_language("en")
    book.add_author("Mara Ellison")
    per_chapter = total_words // chapters
    items, written = [], 0
    for n in range(1, chapters + 1):
        paras, words = [], 0
        while words < per_chapter:
            text = " ".join(sentence(rng) for _ in range(rng.randint(2, 7)))
            words += word_count(text)
            text = escape(text)
            if rng.random() < 0.1:
                w = text.split(" ")
                k = rng.randrange(1, len(w))
                w[k] = f"<em>{w[k]}</em>"
                text = " ".join(w)
            paras.append(f"<p>{text}</p>")
        written += words
        ch = epub.EpubHtml(title=f"Chapter {n}", file_name=f"chap_{n:02d}.xhtml", lang="en")
        ch.content = f"<h1>Chapter {n}</h1>" + "".join(paras)
        book.add_item(ch)
        items.append(ch)
    book.toc = items
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = ["nav", *items]
    epub.write_epub(str(path), book)
    return written


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--words", type=int, default=100_000)
    parser.add_argument("--chapters", type=int, default=30)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--readalong", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "novel.epub"
        t0 = time.perf_counter()
        words = build(src, args.words, args.chapters)
        built = time.perf_counter() - t0
        figures = {
            "source_words": words,
            "chapters": args.chapters,
            "epub_bytes": src.stat().st_size,
            "build_s": round(built, 2),
        }
        figures["baseline_s"] = round(min(bare_read(src) for _ in range(args.runs)), 2)
        for unit in ("paragraph", "sentence"):
            best, result = None, None
            for run in range(args.runs):
                out = Path(tmp) / f"out-{unit}-{run}"
                t0 = time.perf_counter()
                result = import_manuscript(src, out, ImportOptions(unit=unit))
                elapsed = time.perf_counter() - t0
                best = elapsed if best is None else min(best, elapsed)
            report = result.report
            figures[unit] = {
                "seconds": round(best, 2),
                "words_per_s": round(words / best),
                "rows": report.rows,
                "chapters": len(report.chapters),
                "coverage": round(report.coverage, 5),
                "predicted_hours": round(report.predicted_s / 3600, 2),
                "ratio": round(best / figures["baseline_s"], 2),
            }
        if args.readalong:
            figures["readalong"] = readalong(src, result, Path(tmp))
    save("import", figures)
    return 0


def bare_read(src: Path) -> float:
    """Seconds for ebooklib to read the book and lxml to take each document's text."""
    import ebooklib
    import lxml.html
    from ebooklib import epub

    t0 = time.perf_counter()
    book = epub.read_epub(str(src), {"ignore_ncx": True})
    words = 0
    for item in book.get_items_of_type(ebooklib.ITEM_DOCUMENT):
        words += len(lxml.html.fromstring(item.get_content()).text_content().split())
    assert words > 0
    return time.perf_counter() - t0


def readalong(src: Path, result, tmp: Path) -> dict:
    import csv

    from mediamill.deliver.readalong import ReadalongBook, ReadalongChapter, ReadalongRow, build_readalong
    from mediamill.media import run_ffmpeg
    from mediamill.text import predicted_seconds

    rows = list(csv.DictReader(result.manifest.open(encoding="utf-8")))
    chapters, current = [], None
    for row in rows:
        if row["chapter"]:
            current = [row["chapter"], []]
            chapters.append(current)
        current[1].append(row)
    made = []
    for n, (title, chapter_rows) in enumerate(chapters, 1):
        t, out = 0.0, []
        for row in chapter_rows:
            length = round(predicted_seconds(row["text"]) + float(row["pause_after"]), 3)
            out.append(ReadalongRow(row["id"], row["text"], row["source"], round(t, 3), round(t + length, 3)))
            t = round(t + length, 3)
        audio = tmp / f"ch{n}.flac"
        run_ffmpeg("-f", "lavfi", "-i", "anullsrc=r=22050:cl=mono", "-t", f"{t + 0.1:.3f}", "-c:a", "flac", audio)
        made.append(ReadalongChapter(title, audio, tuple(out)))
    book = ReadalongBook("The Long Harbour", "Mara Ellison", "en", None, src, tuple(made))
    t0 = time.perf_counter()
    build_readalong(tmp / "readalong.epub", book)
    seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    for n, chapter in enumerate(made, 1):
        run_ffmpeg(
            "-i",
            chapter.audio,
            "-vn",
            "-ac",
            "1",
            "-ar",
            "22050",
            "-c:a",
            "libmp3lame",
            "-b:a",
            "64k",
            "-write_xing",
            "1",
            "-id3v2_version",
            "0",
            "-f",
            "mp3",
            tmp / f"bare{n}.mp3",
        )
    bare = time.perf_counter() - t0
    return {
        "seconds": round(seconds, 1),
        "baseline_s": round(bare, 1),
        "ratio": round(seconds / bare, 2),
        "audio_hours": round(sum(c.rows[-1].end_s for c in made) / 3600, 2),
        "epub_mb": round((tmp / "readalong.epub").stat().st_size / 1e6, 1),
        "warnings": len(book.warnings),
    }


if __name__ == "__main__":
    sys.exit(main())
