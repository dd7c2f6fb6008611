"""The pronunciation lexicon: how words are said, applied before the engine and known to the verifier.

A lexicon is a CSV named by the manifest's sidecar (``lexicon = "names.csv"``)
with the columns ``word`` and ``say``, and optionally ``match`` (``word``, the
default: the whole word or phrase, case-insensitive; or ``regex``: a Python
regular expression, ``say`` may use its groups) and one column per engine that
takes phonemes (``piper``: written as Piper's ``[[ phonemes ]]``). For each
engine a row's text becomes its *spoken text*: what the engine is given, what
the content key is made from (so changing an entry regenerates exactly the
rows whose spoken text changed) and, in its ``say`` form, what verification
expects to hear. Captions keep the manifest's own text.

Whole-word entries are applied in one pass, longest first, so a replacement
is never replaced again; regex entries follow, in file order.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

BASE_COLUMNS = ("word", "say", "match")
# Engines that take phonemes in their input, and how an entry's phonemes are written for them.
PHONEME_ENGINES = {"piper": "[[ {} ]]"}
MATCH_KINDS = ("word", "regex")


@dataclass(frozen=True)
class Entry:
    word: str
    say: str
    match: str = "word"
    phonemes: dict[str, str] = field(default_factory=dict)  # engine -> phonemes
    line: int = 0


@dataclass(frozen=True)
class LexiconProblem:
    message: str
    line: int | None = None
    column: str | None = None

    def __str__(self) -> str:
        where = ", ".join(x for x in (f"line {self.line}" if self.line else "", self.column and f"column '{self.column}'") if x)
        return f"{where}: {self.message}" if where else self.message


class Lexicon:
    def __init__(self, entries: list[Entry]):
        self.entries = entries
        words = sorted((e for e in entries if e.match == "word"), key=lambda e: len(e.word), reverse=True)
        self._by_word = {e.word.casefold(): e for e in words}
        self._words = (
            re.compile(r"(?<!\w)(" + "|".join(re.escape(e.word) for e in words) + r")(?!\w)", re.IGNORECASE)
            if words
            else None
        )
        self._regexes = [(re.compile(e.word), e) for e in entries if e.match == "regex"]

    def __len__(self) -> int:
        return len(self.entries)

    def spoken(self, text: str, engine: str | None = None) -> str:
        """``text`` as ``engine`` should be given it (its phonemes where an entry has them); ``None``: the say forms."""
        fmt = PHONEME_ENGINES.get(engine or "")

        def form(entry: Entry) -> str:
            if fmt and entry.phonemes.get(engine or ""):
                return fmt.format(entry.phonemes[engine or ""])
            return entry.say

        if self._words is not None:
            text = self._words.sub(lambda m: form(self._by_word[m.group(1).casefold()]), text)
        for pattern, entry in self._regexes:
            text = pattern.sub(entry.say, text)  # regex entries say what they say: phonemes are per word
        return text


def load_lexicon(path: Path) -> tuple[Lexicon, list[LexiconProblem]]:
    """Read a lexicon CSV; every problem is reported (unknown columns, duplicates, bad regexes), none raised."""
    problems: list[LexiconProblem] = []
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = [h.strip().lower() for h in next(reader, [])]
            rows = [(reader.line_num, cells) for cells in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        return Lexicon([]), [LexiconProblem(f"cannot read the lexicon: {exc}")]
    known = set(BASE_COLUMNS) | set(PHONEME_ENGINES)
    for name in header:
        if name not in known:
            problems.append(LexiconProblem(f"unknown column (known: {', '.join(sorted(known))})", column=name))
    for required in ("word", "say"):
        if required not in header:
            problems.append(LexiconProblem("missing column", column=required))
    if problems:
        return Lexicon([]), problems
    entries: list[Entry] = []
    seen: dict[str, int] = {}
    for line, cells in rows:
        if not any(c.strip() for c in cells):
            continue
        cell = {name: (cells[i].strip() if i < len(cells) else "") for i, name in enumerate(header)}
        word, say, match = cell["word"], cell["say"], (cell.get("match") or "word").lower()
        if not word:
            problems.append(LexiconProblem("is empty", line, "word"))
            continue
        if match not in MATCH_KINDS:
            problems.append(LexiconProblem(f"must be 'word' or 'regex', not '{match}'", line, "match"))
            continue
        if match == "regex":
            try:
                re.compile(word)
            except re.error as exc:
                problems.append(LexiconProblem(f"the regex does not compile: {exc}", line, "word"))
                continue
        if not say and not any(cell.get(e) for e in PHONEME_ENGINES):
            problems.append(LexiconProblem("is empty: say how the word is spoken", line, "say"))
            continue
        folded = f"{match}:{word.casefold() if match == 'word' else word}"
        if folded in seen:
            problems.append(LexiconProblem(f"duplicate word '{word}' (first on line {seen[folded]})", line, "word"))
            continue
        seen[folded] = line
        phonemes = {e: cell[e] for e in PHONEME_ENGINES if cell.get(e)}
        entries.append(Entry(word, say or word, match, phonemes, line))
    return Lexicon(entries), problems
