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
is never replaced again; regex entries follow, in file order. Patterns are
compiled with the ``regex`` package (a superset of ``re``), for its timeouts.

A lexicon travels with a manifest from anyone, so its work is bounded:

- loading refuses control characters in any cell, a regex ``say`` that names
  a group its pattern lacks or holds a bad escape (it is expanded once when
  loaded), and a regex over ``MAX_UNROLLED`` elements once its counted
  repeats are spelled out (the package unrolls them when compiling:
  ``(?:a{1000}){1000}`` takes about 270 MB, ``(?:a{65535}){65535}`` all the
  memory there is);
- applying it gives each pass ``REGEX_SECONDS`` per 100,000 characters of
  text (at least that), so a backtracking pattern ends in an error, not a
  hang; and the spoken text may be at most ``MAX_GROWTH`` times the text
  plus ``GROWTH_SLACK`` characters, so entries whose ``say`` repeats what
  they match cannot double it entry after entry.

A limit broken raises ``LexiconError`` naming the entry's line; an entry that
broke one is left out of later texts (the manifest is refused anyway, and one
report per entry is enough).
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

import regex

BASE_COLUMNS = ("word", "say", "match")
# Engines that take phonemes in their input, and how an entry's phonemes are written for them.
PHONEME_ENGINES = {"piper": "[[ {} ]]"}
MATCH_KINDS = ("word", "regex")

REGEX_SECONDS = 1.0  # per pass over a text, per 100,000 characters of it
MAX_GROWTH = 4  # the spoken text: at most this times the text's length ...
GROWTH_SLACK = 1024  # ... plus this many characters (a one-word row may become a phrase)
MAX_UNROLLED = 100_000  # elements of a regex with its counted repeats spelled out (about 270 bytes each)

_CONTROL = regex.compile(r"\p{Cc}")
_REPEAT = re.compile(r"\{(\d+)(?:,\d*)?\}")


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
        where = ", ".join(
            x for x in (f"line {self.line}" if self.line else "", self.column and f"column '{self.column}'") if x
        )
        return f"{where}: {self.message}" if where else self.message


class LexiconError(ValueError):
    """Applying the lexicon to a text broke a limit; ``problem`` names the entry's line."""

    def __init__(self, source: str, problem: LexiconProblem):
        self.source, self.problem = source, problem
        super().__init__(f"{source}: {problem}")


class Lexicon:
    def __init__(self, entries: list[Entry], source: str = "the lexicon"):
        self.entries = entries
        self.source = source  # the file's name, for messages
        words = sorted((e for e in entries if e.match == "word"), key=lambda e: len(e.word), reverse=True)
        self._by_word = {e.word.casefold(): e for e in words}
        self._words = (
            regex.compile(r"(?<!\w)(" + "|".join(regex.escape(e.word) for e in words) + r")(?!\w)", regex.IGNORECASE)
            if words
            else None
        )
        self._regexes = [(regex.compile(e.word), e) for e in entries if e.match == "regex"]
        self._broken: set[int] = set()  # lines of entries that broke a limit, left out from then on

    def __len__(self) -> int:
        return len(self.entries)

    def _fail(self, entry: Entry | None, message: str, column: str) -> LexiconError:
        self._broken.add(entry.line if entry else 0)  # 0: the whole-word pass as a whole
        return LexiconError(self.source, LexiconProblem(message, entry.line if entry else None, column))

    def spoken(self, text: str, engine: str | None = None) -> str:
        """``text`` as ``engine`` should be given it (its phonemes where an entry has them); ``None``: the say forms.

        Raises ``LexiconError`` when an entry takes too long on ``text`` or grows it past the limit.
        """
        fmt = PHONEME_ENGINES.get(engine or "")
        seconds = REGEX_SECONDS * max(1.0, len(text) / 100_000)
        limit = MAX_GROWTH * len(text) + GROWTH_SLACK
        size = len(text)

        def grown(entry: Entry, old: str, new: str) -> str:
            nonlocal size
            size += len(new) - len(old)
            if size > limit:
                raise self._fail(
                    entry,
                    f"makes the spoken text longer than {limit} characters ({MAX_GROWTH} x the "
                    f"text's {len(text)} + {GROWTH_SLACK}): does its say repeat what it matches?",
                    "say",
                )
            return new

        def form(m: regex.Match) -> str:
            entry = self._by_word.get(m.group(1).casefold())
            if entry is None or entry.line in self._broken:
                return m.group(0)
            if fmt and entry.phonemes.get(engine or ""):
                return grown(entry, m.group(0), fmt.format(entry.phonemes[engine or ""]))
            return grown(entry, m.group(0), entry.say)

        if self._words is not None and 0 not in self._broken:
            try:
                text = self._words.sub(form, text, timeout=seconds)
            except TimeoutError:
                raise self._fail(None, f"the whole-word entries took over {seconds:g} s on this text", "word") from None
        for pattern, entry in self._regexes:
            if entry.line in self._broken:
                continue
            try:
                # Regex entries say what they say (phonemes are per word); expanded here to count the growth.
                text = pattern.sub(lambda m, e=entry: grown(e, m.group(0), m.expand(e.say)), text, timeout=seconds)
            except TimeoutError:
                raise self._fail(
                    entry,
                    f"the regex took over {seconds:g} s on this text (it backtracks: "
                    "nested repeats like (a+)+ or (a|aa)+?)",
                    "word",
                ) from None
            except (regex.error, IndexError) as exc:  # a say that loading could not check
                raise self._fail(entry, f"cannot be expanded: {exc}", "say") from None
        return text


def _unrolled_size(pattern: str) -> int:
    r"""About how many elements ``pattern`` compiles to once its counted repeats are spelled out.

    Rough on purpose, and never under: an escape or a character class is one element, a group its
    contents, ``{m}``, ``{m,}`` and ``{m,n}`` multiply what they follow by ``m``; a brace that is no
    count (``\p{L}``, fuzzy ``{e<=1}``) is plain text; alternatives add up.
    """
    size, outer, last, i = 0, [], 0, 0  # outer: the size so far of each enclosing group; last: the atom's size
    while i < len(pattern):
        ch = pattern[i]
        if ch == "{" and last and (count := _REPEAT.match(pattern, i)):
            size += last * (max(int(count.group(1)), 1) - 1)
            last, i = 0, count.end()
            continue
        if ch == "(":
            outer.append(size)
            size, last, i = 0, 0, i + 1
            continue
        if ch == ")" and outer:
            last = max(size, 1)
            size = outer.pop() + last
            i += 1
            continue
        if ch == "\\":
            i += 2
        elif ch == "[":
            i += 1 + (pattern[i + 1 : i + 2] == "^")
            i += pattern[i : i + 1] == "]"
            while i < len(pattern) and pattern[i] != "]":
                i += 2 if pattern[i] == "\\" else 1
            i += 1
        else:
            i += 1
        size, last = size + 1, 1
    return size + sum(outer)


def _template_problem(pattern: regex.Pattern, say: str) -> str | None:
    """Why ``say`` cannot be a replacement for ``pattern`` (a group it lacks, a bad escape), or None."""
    try:
        # An empty last alternative matches "", giving a match with every group of the pattern, none taking part
        # (the newline ends a verbose-mode comment). Expanding ``say`` against it checks it without any text.
        empty = regex.compile(pattern.pattern + "\n|").match("")
    except (regex.error, RecursionError):
        empty = None
    if empty is None:
        return None  # not checkable here: a bad say is then reported when the entry is applied
    try:
        literal = empty.expand(say)
    except (regex.error, IndexError) as exc:
        return f"{exc} (a regex's say may use its own groups: \\1 or \\g<name>)"
    bad = _CONTROL.search(literal)
    if bad:
        return f"makes the control character U+{ord(bad.group()):04X} (an escape such as \\0 or \\x00?)"
    return None


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
        controls = [(name, m) for name, value in cell.items() if (m := _CONTROL.search(value))]
        if controls:
            # A NUL or an escape code would pass here and fail every take of the row at the engine.
            problems += [
                LexiconProblem(f"contains the control character U+{ord(m.group()):04X}", line, name)
                for name, m in controls
            ]
            continue
        word, say, match = cell["word"], cell["say"], (cell.get("match") or "word").lower()
        if not word:
            problems.append(LexiconProblem("is empty", line, "word"))
            continue
        if match not in MATCH_KINDS:
            problems.append(LexiconProblem(f"must be 'word' or 'regex', not '{match}'", line, "match"))
            continue
        if match == "regex":
            size = _unrolled_size(word)
            if size > MAX_UNROLLED:
                problems.append(
                    LexiconProblem(
                        f"the regex spells out about {size} elements once its counted repeats "
                        f"are unrolled; at most {MAX_UNROLLED}",
                        line,
                        "word",
                    )
                )
                continue
            try:
                pattern = regex.compile(word)
            except (regex.error, OverflowError, ValueError, RecursionError) as exc:
                problems.append(LexiconProblem(f"the regex does not compile: {exc}", line, "word"))
                continue
            if not say:
                problems.append(
                    LexiconProblem("is empty: a regex entry is said as its say (phonemes are per word)", line, "say")
                )
                continue
            wrong = _template_problem(pattern, say)
            if wrong:
                problems.append(LexiconProblem(wrong, line, "say"))
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
    return Lexicon(entries, path.name), problems
