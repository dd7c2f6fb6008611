"""Joining hard-wrapped lines, repairing words hyphenated at line ends.

A line ending in ``letter-`` followed by a line starting with a lower-case
letter is a candidate. The document is its own dictionary: its words that do
not touch a line break are counted first. Then, in order:

1. the joined word ("beautiful") occurs in the document, the hyphenated
   compound ("beauti-ful") does not: join without the hyphen;
2. the compound occurs ("well-known" elsewhere) and the joined word does not:
   keep the hyphen;
3. otherwise keep the hyphen when both halves are words of the document (or
   the first half is a common compound-forming word such as "well", "self",
   "half", "twenty") and the joined word is not; else join.

A line ending in a soft hyphen always joins; ``--`` (a typed dash) and a
hyphen before a capital or a digit ("anti-\\nAmerican", "1914-\\n1918") keep
the hyphen without a space.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

_TOKEN = re.compile(r"[^\W\d_]+(?:['\u2019-][^\W\d_]+)*")
_TAIL = re.compile(r"([^\W\d_]+)-$")
_HEAD = re.compile(r"^([^\W\d_]+)")
# First halves that commonly form hyphenated compounds in English prose.
_COMPOUND_FIRST = frozenset(
    "well self ill half all ever long short high low old new far near great good bad cross ex non "
    "one two three four five six seven eight nine ten twenty thirty forty fifty sixty seventy eighty ninety "
    "first second third so full quarter semi mid life world".split()
)


class Vocabulary:
    """Words of a document, for deciding hyphenation; build it from the lines to be joined."""

    def __init__(self, lines: Iterable[str]):
        self.words: Counter[str] = Counter()
        for line in lines:
            tokens = _TOKEN.findall(line.rstrip().removesuffix("-"))
            stripped = line.strip()
            # The last token of a hyphen-ended line and the first after it are fragments, not words.
            if stripped.endswith("-") and tokens:
                tokens = tokens[:-1]
            self.words.update(t.lower() for t in tokens)

    def __contains__(self, word: str) -> bool:
        return word.lower() in self.words


def join_hyphenated(first: str, second: str, vocab: Vocabulary) -> bool:
    """True when ``first-`` + ``second`` is one word broken by the typesetter."""
    joined, compound = first + second, f"{first}-{second}"
    has_joined, has_compound = joined in vocab, compound in vocab
    if has_joined and not has_compound:
        return True
    if has_compound and not has_joined:
        return False
    halves_are_words = (first in vocab or first.lower() in _COMPOUND_FIRST) and second in vocab
    return not (halves_are_words and not has_joined)


def join_lines(lines: Sequence[str], vocab: Vocabulary | None = None) -> str:
    """The lines of one paragraph as one line, with line-end hyphenation repaired."""
    vocab = vocab or Vocabulary(lines)
    out = ""
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        if not out:
            out = line
            continue
        if out.endswith("\u00ad"):
            out = out[:-1] + line
            continue
        if out.endswith("-") and not out.endswith("--"):
            tail, head = _TAIL.search(out), _HEAD.match(line)
            if tail and head and line[0].islower():
                if join_hyphenated(tail.group(1), head.group(1), vocab):
                    out = out[:-1] + line
                else:
                    out = out + line
                continue
            if tail and line[:1].isalnum():
                out = out + line  # "anti-" + "American", "1914-" + "1918"
                continue
        if out.endswith(("--", "\u2014")):
            out = out + line
            continue
        out = f"{out} {line}"
    return out
