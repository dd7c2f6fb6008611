"""Text normalisation for checking speech against its script.

Contract:

- ``normalize(text, language="en", say=None) -> list[str]``: the words a
  reader says for ``text``, lower case, without punctuation: numbers, years,
  ordinals, times, money and percentages are read as words, ``&``/``%``/``+``/
  ``@``/``=`` as words, common abbreviations expanded, hyphenated words split,
  inner apostrophes kept (``don't``), quotes dropped.
- ``spans(text, language="en", say=None) -> list[Span]``: the same text as
  spans, each with every plausible reading (``readings[0]`` is the one
  ``normalize`` uses). "1999" reads as "nineteen ninety nine", "nineteen
  hundred ninety nine" or "one thousand nine hundred (and) ninety nine";
  "$45" as "forty five dollars" or "dollar forty five"; engines differ, and
  a checker should not call a different reading of a number a defect.
  ``Span.pause`` marks a span that punctuation follows (a sentence or clause
  ends there), where a reader may pause or a take may hold extra speech.
- ``say``: the pronunciation lexicon's hook. Either a mapping of written
  words to spoken forms (keys compared case-insensitively) or a function from
  a written word to its spoken form (``None`` keeps the word). It is applied
  first, to each whitespace-separated token without the punctuation around
  it ("gr8", "Dr." or "Dr"), once; the spoken form is then normalised like
  any text, so it may hold numbers or several words. The engine is given the
  spoken forms, so the check compares against them too.

Numbers in languages other than English are read with ``num2words`` (one
reading each); abbreviations and the alternative readings are English only.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass

Lexicon = Mapping[str, str] | Callable[[str], str | None] | None


@dataclass(frozen=True)
class Span:
    """One stretch of the source text and the ways it may be read aloud."""

    text: str
    readings: tuple[tuple[str, ...], ...]
    pause: bool = False  # punctuation follows (a sentence or clause ends): a reader may pause here

    @property
    def words(self) -> tuple[str, ...]:
        return self.readings[0]


_ABBREVIATIONS = {
    "mr": "mister",
    "mrs": "missus",
    "ms": "miz",
    "dr": "doctor",
    "prof": "professor",
    "st": "saint",
    "jr": "junior",
    "sr": "senior",
    "mt": "mount",
    "vs": "versus",
    "etc": "et cetera",
    "no": "number",
    "approx": "approximately",
    "capt": "captain",
    "sgt": "sergeant",
    "lt": "lieutenant",
    "gen": "general",
}
# Abbreviations that are also ordinary words are only expanded where they cannot be the word.
_ABBREVIATION_NEEDS = {"no": re.compile(r"\s*\d"), "st": re.compile(r"\s+[A-Z]")}
_SYMBOLS = {
    "en": {"&": "and", "%": "percent", "+": "plus", "@": "at", "=": "equals"},
    "de": {"&": "und", "%": "prozent", "+": "plus", "@": "at", "=": "gleich"},
    "fr": {"&": "et", "%": "pour cent", "+": "plus", "@": "arobase", "=": "égale"},
    "es": {"&": "y", "%": "por ciento", "+": "más", "@": "arroba", "=": "igual"},
    "it": {"&": "e", "%": "per cento", "+": "più", "@": "chiocciola", "=": "uguale"},
    "pt": {"&": "e", "%": "por cento", "+": "mais", "@": "arroba", "=": "igual"},
    "nl": {"&": "en", "%": "procent", "+": "plus", "@": "apenstaartje", "=": "is"},
}
_CURRENCY = {
    "$": ("dollar", "dollars", "cent", "cents"),
    "£": ("pound", "pounds", "penny", "pence"),
    "€": ("euro", "euros", "cent", "cents"),
    "¥": ("yen", "yen", "sen", "sen"),
}
_SCALES = ("thousand", "million", "billion", "trillion")

_TOKEN = re.compile(
    r"""
    (?P<money>[$£€¥]\s?\d[\d,]*(?:\.\d+)?(?:\s(?:thousand|million|billion|trillion)\b)?)
  | (?P<percent>\d[\d,]*(?:\.\d+)?\s?%)
  | (?P<ordinal>\d+(?:st|nd|rd|th)\b)
  | (?P<time>\d{1,2}:\d{2}(?:\s?[ap]\.?m\.?\b)?)
  | (?P<decade>\d{4}s\b|'\d0s\b)
  | (?P<number>\d+(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)
  | (?P<abbr>\b(?:Mr|Mrs|Ms|Dr|Prof|St|Jr|Sr|Mt|vs|etc|No|approx|Capt|Sgt|Lt|Gen)\.)
  | (?P<word>[^\W\d_]+(?:['’][^\W\d_]+)*)
  | (?P<symbol>[&%+@=])
    """,
    re.VERBOSE | re.IGNORECASE,
)
_PAUSE = re.compile(r"[.!?;:,\u2026\u2014]")
_SPLIT = re.compile(r"[\s,\-\u2010-\u2015]+")


def _words(phrase: str) -> tuple[str, ...]:
    """A reading as words: lower case, hyphens and commas dropped."""
    return tuple(w for w in _SPLIT.split(phrase.casefold().replace("’", "'")) if w)


def _cardinal(n: int, language: str) -> list[tuple[str, ...]]:
    from num2words import num2words

    first = _words(num2words(n, lang=language))
    if language != "en":
        return [first]
    readings = [first]
    without_and = tuple(w for w in first if w != "and")
    if without_and != first and without_and:
        readings.append(without_and)
    return readings


def _year(n: int) -> list[tuple[str, ...]]:
    """English readings of a number that may be a year, most likely first."""
    from num2words import num2words

    readings = [_words(num2words(n, to="year"))]
    if 1100 <= n <= 1999 and n % 100:
        # "nineteen hundred (and) ninety nine": how some engines read years
        readings += [(*_words(num2words(n // 100)), "hundred", *r) for r in _cardinal(n % 100, "en")]
    for reading in _cardinal(n, "en"):
        if reading not in readings:
            readings.append(reading)
    return readings


def _decimal(text: str, language: str) -> list[tuple[str, ...]]:
    from num2words import num2words

    whole, _, frac = text.replace(",", "").partition(".")
    if not frac:
        return _cardinal(int(whole), language)
    if language != "en":
        return [_words(num2words(float(f"{whole}.{frac}"), lang=language))]
    digits = tuple(w for d in frac for w in _words(num2words(int(d))))
    return [(*r, "point", *digits) for r in _cardinal(int(whole), "en")]


def _number(text: str, language: str, year_ok: bool = True) -> list[tuple[str, ...]]:
    plain = text.replace(",", "")
    if "." in plain:
        return _decimal(plain, language)
    n = int(plain)
    if language == "en" and year_ok and "," not in text and len(plain) == 4 and 1100 <= n <= 2099:
        return _year(n)
    return _cardinal(n, language)


def _ordinal(text: str, language: str) -> list[tuple[str, ...]]:
    from num2words import num2words

    return [_words(num2words(int(text[:-2]), lang=language, to="ordinal"))]


def _money(text: str, language: str) -> list[tuple[str, ...]]:
    symbol, rest = text[0], text[1:].strip()
    scale: tuple[str, ...] = ()
    for word in _SCALES:
        if rest.lower().endswith(word):
            scale, rest = (word,), rest[: -len(word)].strip()
    one, many, sub_one, sub_many = _CURRENCY[symbol]
    plain = rest.replace(",", "")
    whole, _, frac = plain.partition(".")
    if scale or not frac or len(frac) != 2:
        amounts = _decimal(plain, language) if "." in plain else _cardinal(int(plain), language)
        unit = one if plain == "1" and not scale else many
        readings = [(*a, *scale, unit) for a in amounts]
        readings += [(one, *a, *scale) for a in amounts] + [(many, *a, *scale) for a in amounts]
        return readings
    units = [(*a, one if whole == "1" else many) for a in _cardinal(int(whole), language)]
    cents = [(*a, sub_one if frac == "01" else sub_many) for a in _cardinal(int(frac), language)]
    readings = [(*u, *c) for u in units for c in cents] + [(*u, "and", *c) for u in units for c in cents]
    readings += [(*w, *f) for w in _cardinal(int(whole), language) for f in _cardinal(int(frac), language)]
    readings += [(one, *d) for d in _decimal(plain, language)]
    return readings


def _time(text: str) -> list[tuple[str, ...]]:
    from num2words import num2words

    match = re.match(r"(\d{1,2}):(\d{2})\s?([ap])?", text, re.IGNORECASE)
    assert match
    hours, minutes = int(match.group(1)), int(match.group(2))
    suffix = (match.group(3).lower(), "m") if match.group(3) else ()
    hour = _words(num2words(hours))
    if minutes == 0:
        return [(*hour, "o'clock", *suffix), (*hour, *suffix), (*hour, "hundred", *suffix)]
    if minutes < 10:
        return [(*hour, "oh", *_words(num2words(minutes)), *suffix), (*hour, *_words(num2words(minutes)), *suffix)]
    return [(*hour, *r, *suffix) for r in _cardinal(minutes, "en")]


def _decade(text: str) -> list[tuple[str, ...]]:
    from num2words import num2words

    if text.startswith("'"):
        return [(_plural(_words(num2words(int(text[1:3])))),)]
    n = int(text[:4])
    readings = _year(n)[:2] if 1100 <= n <= 1999 else _cardinal(n, "en")
    return [(*r[:-1], _plural((r[-1],))) for r in readings]


def _plural(words: tuple[str, ...]) -> str:
    last = words[-1]
    return last[:-1] + "ies" if last.endswith("y") else last + "s"


def _lookup(say: Lexicon, word: str) -> str | None:
    if say is None:
        return None
    if callable(say):
        return say(word)
    found = say.get(word)
    if found is None:
        found = next((v for k, v in say.items() if k.casefold() == word.casefold()), None)
    return found


_EDGE = "\"'“”‘’«»()[]{}<>,.;:!?¡¿…"


def _apply_lexicon(text: str, say: Lexicon) -> str:
    """Replace each written token the lexicon knows (punctuation around it aside) by its spoken form, once."""

    def spoken(match: re.Match) -> str:
        token = match.group()
        core = token.strip(_EDGE)
        if not core:
            return token
        start = token.index(core)
        found = _lookup(say, core)
        if found is None and token[start + len(core) : start + len(core) + 1] == ".":
            found = _lookup(say, core + ".")  # "Dr." as a key
            if found is not None:
                return token[:start] + found + token[start + len(core) + 1 :]
        return token if found is None else token[:start] + found + token[start + len(core) :]

    return re.sub(r"\S+", spoken, text)


def spans(text: str, language: str = "en", say: Lexicon = None) -> list[Span]:
    """``text`` as spans with every plausible reading; see the module's docstring."""
    language = (language or "en").split("-")[0].lower()
    text = unicodedata.normalize("NFKC", text).replace("’", "'").replace("‘", "'")
    if say is not None:
        text = _apply_lexicon(text, say)
    out: list[Span] = []
    matches = list(_TOKEN.finditer(text))
    for i, match in enumerate(matches):
        kind, token = match.lastgroup, match.group()
        if i and _PAUSE.search(text, matches[i - 1].end(), match.start()) and out and not out[-1].pause:
            out[-1] = Span(out[-1].text, out[-1].readings, True)
        if kind == "word":
            for part in _words(token):
                out.append(Span(part, ((part.strip("'"),),)))
            continue
        readings: list[tuple[str, ...]]
        if kind == "money" and language == "en":
            readings = _money(token, language)
        elif kind == "percent":
            word = _SYMBOLS.get(language, {}).get("%")
            readings = [(*r, *_words(word)) for r in _number(token.rstrip("% "), language, False)] if word else []
        elif kind == "ordinal":
            readings = _ordinal(token, language)
        elif kind == "time" and language == "en":
            readings = _time(token)
        elif kind == "decade" and language == "en":
            readings = _decade(token)
        elif kind == "number":
            readings = _number(token, language)
        elif kind in ("money", "time", "decade"):  # other languages: the digits, read as numbers
            readings = [w for part in re.findall(r"\d[\d,]*(?:\.\d+)?", token) for w in _number(part, language)][:1]
        elif kind == "abbr":
            key = token[:-1].lower()
            need = _ABBREVIATION_NEEDS.get(key)
            expand = need is None or need.match(text, match.end())
            readings = [_words(_ABBREVIATIONS[key] if expand and language == "en" else key)]
        else:  # symbol
            word = _SYMBOLS.get(language, {}).get(token)
            readings = [_words(word)] if word else []
        readings = [r for r in dict.fromkeys(readings) if r]
        if readings:
            out.append(Span(token, tuple(readings)))
    if out and _PAUSE.search(text, matches[-1].end()):
        out[-1] = Span(out[-1].text, out[-1].readings, True)
    return [s for s in out if s.words and all(s.readings)]


def normalize(text: str, language: str = "en", say: Lexicon = None) -> list[str]:
    """The words to compare against: each span's first reading, in order."""
    return [w for span in spans(text, language, say) for w in span.words]
