"""Build the reading-preparation corpus: sentences from real public-domain books that hold what engines misread.

    python bench/reading_corpus.py BOOK.htm|BOOK.txt|BOOK.epub ... > tests/data/reading/cases.tsv

Each book is imported with ``mediamill import`` (so the sentences are what a producer's manifest holds:
curly quotes, em dashes and all), split into sentences, and every sentence holding one of the forms below
is kept, up to ``--per`` per form and book. Columns: ``book``, ``form``, ``text``. The books used and where
they come from are listed in README ("Verification": the real-book corpus).
"""

from __future__ import annotations

import argparse
import csv
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from mediamill.text import sentences

FORMS = {
    "dash-cluster": r"[!?;:.,][\u2014\u2015]|[\u2014\u2015][!?;:.,\"\u201c\u201d\u2019]|[!?;:.,]--|--[!?;:,\"]",
    "dash": r"\w[\u2014\u2015]\w|\w--\w",
    "ellipsis": r"\u2026|\.\s?\.\s?\.",
    "scene-break": r"^\s*(?:\*\s*){3,}\s*$",
    "part-number": r"\b(?:No|Nos|p|pp|Ch|Chap|Vol|Fig|Art|Sect?)\.\s*(?:\d|[IVXLC]+\b)|\b(?:Chapter|CHAPTER|Book|BOOK|Act|ACT|Scene|SCENE|Part|PART|Vol|Volume|Stave|Canto)\s+[IVXLC]+\b",
    "regnal": r"\b[A-Z][a-z]+\s+(?:II|III|IV|V|VI|VII|VIII|IX|X|XI|XII|XIII|XIV|XV|XVI)\b",
    "heading-numeral": r"^(?:[IVXLC]+)[.:]\s",
    "range": r"\b\d{1,4}\s?[-\u2013]\s?\d{1,4}\b",
    "year": r"\b1[1-9]\d\d\b",
    "money": r"[£$€]\s?\d|\b\d+\s?[lsd]\.(?:\s|$)",
    "ordinal": r"\b\d+(?:st|nd|rd|th|d)\b",
    "fraction": r"\b\d+/\d+\b|[\u00bc\u00bd\u00be\u2153\u2154\u215b-\u215e]",
    "abbreviation": r"\b(?:Mr|Mrs|Dr|St|Capt|Col|Gen|Lieut|Rev|Prof|Messrs|Esq|viz|cf|vs|etc|i\.e|e\.g)\.|&c\.?",
    "initials": r"\b[A-Z]\.\s?[A-Z]\.",
    "capitals": r"\b[a-z]+\b.*\b[A-Z]{4,}\b|\b[A-Z]{4,}\b.*\b[a-z]+\b",
    "symbol": r"[&%#/*_\[\]]",
    "quote-cluster": r"[\"\u201c\u201d\u2018\u2019]\s*[\u2014\u2015-]|[\u2014\u2015-]\s*[\"\u201c\u201d\u2018\u2019]",
}


def import_rows(book: Path) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        subprocess.run(
            [sys.executable, "-m", "mediamill.cli", "import", str(book), "--out", str(out), "--unit", "paragraph"],
            check=True,
            capture_output=True,
        )
        (table,) = out.glob("*.csv")
        with table.open(newline="", encoding="utf-8") as fh:
            return [row["text"] for row in csv.DictReader(fh)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("books", nargs="+", type=Path)
    parser.add_argument("--per", type=int, default=12, help="sentences kept per form and book")
    args = parser.parse_args()
    writer = csv.writer(sys.stdout, delimiter="\t", lineterminator="\n")
    writer.writerow(["book", "form", "text"])
    for book in args.books:
        found: dict[str, list[str]] = {form: [] for form in FORMS}
        seen: set[str] = set()
        for paragraph in import_rows(book):
            for sentence in sentences(paragraph):
                sentence = " ".join(sentence.split())
                if sentence in seen or len(sentence) > 400:
                    continue
                for form, pattern in FORMS.items():
                    if len(found[form]) < args.per and re.search(pattern, sentence):
                        found[form].append(sentence)
                        seen.add(sentence)
                        break
        for form, texts in found.items():
            for text in texts:
                writer.writerow([book.stem, form, text])


if __name__ == "__main__":
    main()
