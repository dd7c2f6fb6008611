"""Text prepared for reading: what an engine is given, so that it says what the manuscript means.

Contract:

- ``prepare(text, style) -> str``: ``text`` as an engine of ``style`` should be
  given it. Pure, deterministic and linear in the text's length (every pattern
  here is bounded), so a row's spoken text, and with it its content key, is a
  function of its manuscript text and the style alone.
- ``STYLES``: ``"plain"`` (nothing changed), ``"layout"`` (what no reader
  should voice: scene-break marks, dash and punctuation clusters, ellipses
  run into the next word: for neural engines, which read the rest well) and
  ``"espeak"`` (layout, plus what espeak-ng's front end misreads: Piper reads
  through it, so "No. 7" would be "no seven", "p. 42" "P forty two",
  "1850–1860" two cardinals, "£5" "pound five", "Henry VIII" "Henry roman
  eight", "5s. 6d." "five z six D", "1/2" "one slash two").

Applied after the lexicon (a producer's entries win: they are written against
the manuscript) and never inside a Piper phoneme block (``[[ … ]]``). The
spoken text decides the content key and is what verification expects to hear;
captions and the read-along keep the manuscript's text.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from num2words import num2words

STYLES = ("plain", "layout", "espeak")

Rule = tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]

_DASH = "\u2014\u2015\u2013"  # em dash, horizontal bar, en dash
_PHONEMES = re.compile(r"(\[\[.*?\]\])")

# -- layout: for every engine ------------------------------------------------
# Scene breaks and ornaments are pauses, not words ("* * *" would be "asterisk asterisk asterisk").
_SCENE_BREAK = re.compile(r"(?:(?<=\s)|^)(?:[*\u2217\u2042\u2022#~]\s*){2,}(?=\s|$)|\u2042")
# A dash between words or clauses: "--" in plain-text books, an em dash or a spaced en dash elsewhere.
_DASH_RUN = re.compile(r"\s*(?:-{2,}|[\u2014\u2015]+|(?<=\s)\u2013(?=\s))\s*")
# Ellipses: espeak runs "wait…and" (and "wait... and") together into one word.
_ELLIPSIS = re.compile(r"\s*(?:\u2026|\.(?:\s?\.){2,})\s*")
_QUOTES = "\"'\u201c\u201d\u2018\u2019\u00ab\u00bb"
# Note markers ("*Since the above…", "OCTAVOES.*", "†") and heading marks ("# PRICES"): never words.
_MARKS = re.compile(r"[*\u2020\u2021\u00a7](?!\d)|^#+\s+")
# A spaced slash ("Guilders / mark", a line break quoted in prose) is a pause.
_SPACED_SLASH = re.compile(r"\s+/\s+")


def _dash(m: re.Match[str]) -> str:
    """A dash reads as a pause: a comma between words, nothing beside stronger punctuation."""
    text = m.string
    before = text[m.start() - 1] if m.start() else ""
    after = text[m.end()] if m.end() < len(text) else ""
    if not before or not after or before in ".!?;:,(" or after in ".!?;:,)":
        return " "
    if after in _QUOTES and (m.end() + 1 >= len(text) or not text[m.end() + 1].isalnum()):
        return " "  # a closing quote after the dash: the speech just breaks off
    return ", "


def _ellipsis(m: re.Match[str]) -> str:
    text = m.string
    after = text[m.end()] if m.end() < len(text) else ""
    before = text[m.start() - 1] if m.start() else ""
    if not after or after in ".!?,;:" + _QUOTES or not before or before in "([" + _QUOTES:
        return " " if before and after else ""
    return ", "


# Punctuation glued to a word ("Father!—chiefly" after the dash is gone: "Father!chiefly") reads as
# its name; clusters ("?!", "!;") keep their first, strongest mark.
_CLUSTER = re.compile(r"([.!?;:,])(?:\s*[.!?;:,](?![.\d]))+")


def _cluster(m: re.Match[str]) -> str:
    """Keep one mark: the first, unless it is an abbreviation's full stop before a clause mark ("III., the")."""
    marks = [c for c in m.group(0) if not c.isspace()]
    if marks[0] == "." and marks[1] in ",;:":
        return marks[1]
    return marks[0]


_GLUED = re.compile(r"(?<=\w)([!?;:,])(?=[^\W\d_])")
_SPACES = re.compile(r"[ \t]{2,}")
_SPACE_BEFORE = re.compile(r"\s+([.!?;:,])(?=\s|$)")

_LAYOUT: list[Rule] = [
    (_SCENE_BREAK, " "),
    (_MARKS, ""),
    (_SPACED_SLASH, ", "),
    (_ELLIPSIS, _ellipsis),
    (_DASH_RUN, _dash),
    (_CLUSTER, _cluster),
    (_GLUED, r"\1 "),
]

# -- espeak: what espeak-ng's front end misreads -------------------------------

_ROMAN = re.compile(r"^M{0,3}(CM|CD|D?C{0,3})(XC|XL|L?X{0,3})(IX|IV|V?I{0,3})$")


def roman(value: str) -> int | None:
    """The value of a Roman numeral in capitals ("XIV" -> 14), None if ``value`` is not one."""
    if not value or not _ROMAN.match(value):
        return None
    total, last = 0, 0
    for ch in reversed(value):
        n = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100, "D": 500, "M": 1000}[ch]
        total += -n if n < last else n
        last = max(last, n)
    return total


def _words(n: int | str, to: str = "cardinal") -> str:
    return num2words(int(n), to=to).replace("-", " ").replace(",", "")


def _number(text: str) -> str:
    """A number as written ("1,000", "3.5") in words."""
    text = text.replace(",", "")
    if "." in text:
        whole, frac = text.split(".", 1)
        return f"{_words(whole)} point {' '.join(_words(d) for d in frac)}"
    return _words(text)


# Words that title a numbered part: "Chapter IV" -> "Chapter four", "Ch. 4" -> "Chapter four".
_PARTS = {
    "chapter": "Chapter",
    "ch": "Chapter",
    "chap": "Chapter",
    "book": "Book",
    "bk": "Book",
    "part": "Part",
    "pt": "Part",
    "volume": "Volume",
    "vol": "Volume",
    "act": "Act",
    "scene": "Scene",
    "sc": "Scene",
    "section": "Section",
    "sect": "Section",
    "sec": "Section",
    "canto": "Canto",
    "stave": "Stave",
    "letter": "Letter",
    "psalm": "Psalm",
    "article": "Article",
    "art": "Article",
    "appendix": "Appendix",
    "figure": "Figure",
    "fig": "Figure",
    "plate": "Plate",
    "table": "Table",
    "number": "Number",
    "no": "Number",
    "nos": "Numbers",
    "page": "Page",
    "p": "page",
    "pp": "pages",
    "line": "Line",
    "l": "line",
    "ll": "lines",
    "verse": "Verse",
    "v": "verse",
    "vv": "verses",
    "column": "Column",
    "col": "Column",
    "note": "Note",
    "n": "note",
}
# Only these abbreviations need their full stop; the rest are words that stand alone too.
_ABBREVIATED_PARTS = {
    "ch",
    "chap",
    "bk",
    "pt",
    "vol",
    "sc",
    "sect",
    "sec",
    "art",
    "fig",
    "no",
    "nos",
    "p",
    "pp",
    "l",
    "ll",
    "v",
    "vv",
    "col",
    "n",
}
_NUMERAL = r"(?:\d+|[IVXLCDM]+\b|[ivxlc]+\b)"
_PART = re.compile(
    r"\b(?P<word>[A-Za-z]+)(?:(?P<dot>\.)\s*|\s+)(?P<num>"
    + _NUMERAL
    + r")(?:\s*(?P<dash>[-\u2013]|to|and)\s*(?P<num2>"
    + _NUMERAL
    + r"))?(?![\w,.]\d)"
)


def _numeral(value: str, lower_ok: bool) -> int | None:
    if value.isdigit():
        return int(value)
    if value.islower() and not lower_ok:
        return None
    return roman(value.upper())


# Parts whose number may be "I": elsewhere "I" after the word is the pronoun ("the book I bought").
_PARTS_NUMBERED_ONE = {
    "chapter",
    "ch",
    "chap",
    "book",
    "bk",
    "part",
    "pt",
    "volume",
    "vol",
    "act",
    "scene",
    "sc",
    "canto",
    "stave",
    "psalm",
    "appendix",
}


def _part(m: re.Match[str]) -> str:
    word, numeral, key = m.group("word"), m.group("num"), m.group("word").lower()
    if key not in _PARTS or (key in _ABBREVIATED_PARTS and not m.group("dot")):
        return m.group(0)  # "No", "p" or "v" without a full stop are words or letters
    if not numeral.isdigit():
        if key in {"no", "nos", "l", "ll", "n", "v", "vv"}:
            return m.group(0)  # "No. I" is not a number; "v. X" is a name's initial
        if numeral.isupper() and word.islower() and not m.group("dot"):
            return m.group(0)  # "the act I performed": a Roman number follows a capitalised part name
        if numeral in ("I", "i") and (key not in _PARTS_NUMBERED_ONE or re.match(r"\s+[a-z]", m.string[m.end() :])):
            return m.group(0)  # "the Book I bought": the pronoun
        if numeral.islower() and not re.search(r"\s", m.group(0)[len(word) :]):
            return m.group(0)  # "p.m.", "v.i": not a page in small Roman numerals
    lower_ok = key in {"p", "pp", "page"}  # prefaces are numbered in small Roman numerals
    first = _numeral(numeral, lower_ok)
    if first is None:
        return m.group(0)
    name = _PARTS[key]
    name = name.lower() if word[0].islower() else name.upper() if word.isupper() and len(word) > 1 else name
    if not m.group("num2"):
        return f"{name} {_words(first)}"
    second = _numeral(m.group("num2"), lower_ok)
    if second is None:
        return m.group(0)
    if m.group("dash") == "and":
        return f"{name} {_words(first)} and {_words(second)}"
    if name.lower() in {"page", "line", "verse"}:  # "p. 10-20": pages ten to twenty
        name += "s"
    return f"{name} {_words(first)} to {_words(second)}"


# Regnal and ordinal names: "Henry VIII" -> "Henry the Eighth". Only after a capitalised name, and "I"
# only after a known monarch's name (it is the pronoun everywhere else).
_MONARCHS = {
    "Adrian",
    "Albert",
    "Alexander",
    "Alexius",
    "Alfonso",
    "Alphonso",
    "Amadeus",
    "Anne",
    "Antiochus",
    "Augustus",
    "Basil",
    "Benedict",
    "Boniface",
    "Canute",
    "Carlos",
    "Casimir",
    "Catherine",
    "Celestine",
    "Charles",
    "Christian",
    "Clement",
    "Conrad",
    "Constantine",
    "Cosimo",
    "Cyrus",
    "Darius",
    "David",
    "Duncan",
    "Edmund",
    "Edward",
    "Elizabeth",
    "Eric",
    "Erik",
    "Ernest",
    "Felipe",
    "Ferdinand",
    "Fernando",
    "Francis",
    "Franz",
    "Frederic",
    "Frederick",
    "Friedrich",
    "George",
    "Gregory",
    "Gustav",
    "Gustavus",
    "Haakon",
    "Hadrian",
    "Harald",
    "Harold",
    "Henri",
    "Henry",
    "Honorius",
    "Innocent",
    "Isabel",
    "Isabella",
    "Ivan",
    "Jaime",
    "James",
    "Joanna",
    "John",
    "Joseph",
    "Juan",
    "Julius",
    "Justinian",
    "Kenneth",
    "Leo",
    "Leopold",
    "Lothair",
    "Louis",
    "Ludwig",
    "Magnus",
    "Malcolm",
    "Manuel",
    "Mary",
    "Maximilian",
    "Michael",
    "Napoleon",
    "Nicholas",
    "Olaf",
    "Otto",
    "Paul",
    "Pedro",
    "Peter",
    "Philip",
    "Pius",
    "Ptolemy",
    "Rameses",
    "Ramesses",
    "Richard",
    "Robert",
    "Rudolf",
    "Sancho",
    "Sigismund",
    "Sixtus",
    "Stephen",
    "Theodosius",
    "Umberto",
    "Urban",
    "Valentinian",
    "Victor",
    "Vittorio",
    "Wenceslaus",
    "Wilhelm",
    "William",
    "Xerxes",
}
_REGNAL = re.compile(r"\b(?P<name>[A-Z][a-z]+)\s+(?:the\s+)?(?P<num>[IVXL]{1,6})\b(?!['\u2019]\w|\.\w)")
# A Roman numeral standing alone as a list mark or in brackets: "[VIII]", "II., the BLACK FISH", "(iv)".
_LONE_NUMERAL = re.compile(
    r"(?:(?<=[\[(])(?P<a>[IVXLC]{1,7}|[ivxlc]{1,7})(?=[\])])"
    r"|(?<![\w'\u2019])(?P<b>[IVX]{2,7}|[IVXLC]{3,7}|I(?=\.[,;:]))(?=\.?[,;:)\]]|\.\s|\.$))"
)


def _lone_numeral(m: re.Match[str]) -> str:
    value = roman((m.group("a") or m.group("b")).upper())
    return m.group(0) if value is None else _words(value)


def _regnal(m: re.Match[str]) -> str:
    """A monarch's or pope's number is an ordinal ("Henry the Eighth"); any other name's a cardinal
    ("World War II": "World War two"), and "I" after another name is the pronoun."""
    name, numeral = m.group("name"), m.group("num")
    value = roman(numeral)
    if value is None or value > 50:
        return m.group(0)
    if name in _MONARCHS:
        return f"{name} the {_words(value, 'ordinal').title()}"
    if value < 2 or " the " in m.group(0):
        return m.group(0)
    return f"{name} {_words(value)}"


# A Roman numeral that opens a heading row ("IV. The Spouter-Inn", "XII"): a number.
# One letter only as I, V or X ("L. of G." is a title's initials), and followed by a capital or nothing:
# no sentence opens with the pronoun and a full stop ("I. A Fast-Fish belongs…" is rule one).
_HEADING_NUMERAL = re.compile(r"^(?P<num>[IVX]|[IVXLC]{2,7})(?P<end>[.:]\s+(?=[A-Z\u201c\"'])(?![A-Z]\.)|\s*$)")


def _heading_numeral(m: re.Match[str]) -> str:
    value = roman(m.group("num"))
    if value is None:
        return m.group(0)
    return f"{_words(value).capitalize()}{'. ' if m.group('end').strip() else ''}"


# Money. Old British sums ("5s. 6d.", "10l.", "£1 10s. 6d."), then currency signs ("£5", "$1,000").
_AMOUNT = r"\d{1,3}(?:,\d{3})+|\d+"
# Pence, with a farthing's fraction as a sign or a written fraction ("7 1/3d.", "1/3d.", "6½d.").
_PENCE = r"\d{1,3}\s\d/\d{1,2}|\d/\d{1,2}|\d{1,3}(?:\s?[\u00bc\u00bd\u00be])?"


def _pluralise(n: str, one: str, many: str) -> str:
    return f"{_number(n)} {one if n.replace(',', '') == '1' else many}"


_LSD = re.compile(
    r"£\s?(?P<cpounds>" + _AMOUNT + r"):(?P<csh>\d{1,2})(?:s\b\.?|:\s?(?P<cd>" + _PENCE + r")(?![\d/]))"
    r"|(?:£\s?(?P<pounds>" + _AMOUNT + r")|(?P<lpounds>" + _AMOUNT + r")\s?l\.)"
    r"(?:,?\s*(?P<sh>\d{1,2})\s?s\.)?(?:,?\s*(?P<d>" + _PENCE + r")\s?d\.)?"
    r"|(?<![\w./])(?P<sh2>\d{1,3})\s?s\.(?:,?\s*(?P<d2>" + _PENCE + r")\s?d\.)?"
    r"|(?<![\w./])(?P<d3>" + _PENCE + r")\s?d\.(?=\s|$|[,;:)])"
)


def _pence(value: str) -> str:
    written = re.fullmatch(r"(?:(\d+)\s)?(\d)/(\d+)", value)
    if written:
        whole, num, den = written.groups()
        part = _fraction_words(int(num), int(den))
        if not whole or whole == "0":
            return f"{part} of a penny"
        return f"{_words(whole)} and {part} pence"
    frac = ""
    for sign, said in (("\u00bc", " and a farthing"), ("\u00bd", " halfpenny"), ("\u00be", " and three farthings")):
        if sign in value:
            value, frac = value.replace(sign, "").strip(), said
    if frac == " halfpenny":
        return f"{_number(value)} pence halfpenny" if value != "1" else "three halfpence"
    return _pluralise(value, "penny", "pence") + frac


def _lsd(m: re.Match[str]) -> str:
    parts = []
    pounds = m.group("pounds") or m.group("lpounds") or m.group("cpounds")
    if pounds:
        parts.append(_pluralise(pounds, "pound", "pounds"))
    shillings = m.group("sh") or m.group("sh2") or m.group("csh")
    if shillings:
        parts.append(_pluralise(shillings, "shilling", "shillings"))
    pence = m.group("d") or m.group("d2") or m.group("d3") or m.group("cd")
    if pence:
        parts.append(_pence(pence))
    spoken = " and ".join(parts) if len(parts) < 3 else f"{parts[0]}, {parts[1]} and {parts[2]}"
    return spoken + (
        " " if m.group(0).endswith(".") and m.end() < len(m.string) and m.string[m.end()].isupper() else ""
    )


_CURRENCIES = {
    "$": ("dollar", "dollars", "cent", "cents"),
    "€": ("euro", "euros", "cent", "cents"),
    "¥": ("yen", "yen", "sen", "sen"),
}
_MONEY = re.compile(
    r"(?P<sign>[$€¥])\s?(?P<amount>" + _AMOUNT + r")(?:\.(?P<cents>\d{2}))?(?!\d)"
    r"(?:\s(?P<scale>thousand|million|billion|trillion)\b)?"
)


def _money(m: re.Match[str]) -> str:
    one, many, cent, cents = _CURRENCIES[m.group("sign")]
    amount, scale = m.group("amount"), m.group("scale")
    if scale:
        return f"{_number(amount)} {scale} {many}"
    spoken = _pluralise(amount, one, many)
    if m.group("cents") and int(m.group("cents")):
        spoken += f" and {_pluralise(str(int(m.group('cents'))), cent, cents)}"
    return spoken


# Fractions: "1/2" is "one slash two" to espeak, "3 1/2" "three one slash two".
_VULGAR = {
    "\u00bd": (1, 2),
    "\u00bc": (1, 4),
    "\u00be": (3, 4),
    "\u2153": (1, 3),
    "\u2154": (2, 3),
    "\u215b": (1, 8),
    "\u215c": (3, 8),
    "\u215d": (5, 8),
    "\u215e": (7, 8),
    "\u2155": (1, 5),
}
_FRACTION = re.compile(
    r"(?<![\d/])(?:(?P<whole>\d+)(?:\s+|-)?)?(?:(?P<num>\d{1,3})\s?/\s?(?P<den>\d{1,3})(?:ths|th|ds|d|nds|nd|rds|rd)?(?![\d/\w])"
    r"|(?P<vulgar>[" + "".join(_VULGAR) + r"]))"
    r"|(?<![\d/])(?P<snum>\d{1,3})-(?P<sden>\d{1,3})(?:ths|th|ds|nds|nd|rds|rd|st)\b"
)


def _fraction_words(num: int, den: int) -> str:
    if den == 2:
        return "a half" if num == 1 else f"{_words(num)} halves"
    if den == 4:
        return "a quarter" if num == 1 else f"{_words(num)} quarters"
    ordinal = _words(den, "ordinal")
    return f"{'one' if num == 1 else _words(num)} {ordinal if num == 1 else ordinal + 's'}"


def _fraction(m: re.Match[str]) -> str:
    if m.group("snum"):
        return _fraction_words(int(m.group("snum")), int(m.group("sden")))
    if m.group("vulgar"):
        num, den = _VULGAR[m.group("vulgar")]
    else:
        num, den = int(m.group("num")), int(m.group("den"))
        if den == 0 or num >= den * 4 or den > 100:
            return m.group(0)  # not a fraction (a date, a score, a ratio): leave it
    spoken = _fraction_words(num, den)
    whole = m.group("whole")
    if whole:
        return f"{_words(whole)} and {spoken}"
    return spoken if not spoken.startswith("a ") or m.start() == 0 or m.string[m.start() - 1] == " " else spoken


# Years: espeak reads "1850" as "one thousand eight hundred fifty". A four-digit number from 1100 to 1999
# is a year unless a counted noun follows ("1500 men", "1200 pounds"), or a sign or comma says amount.
_YEAR = re.compile(r"(?<![\d,.$£€¥#/])(?P<year>1[1-9]\d\d)(?P<s>['\u2019]?s)?(?![\d,]\d|[./]\d|%)")
_COUNTED = re.compile(
    r"\s+(?:[a-z]+s\b(?<!\bwas)(?<!\bis)(?<!\bhas)(?<!\bas)(?<!\bhis)(?<!\bits)(?<!\bthis)"
    r"(?<!\bthus)(?<!\bus)(?<!\byes)|[a-z]*men\b|of\b|head\b|feet\b|foot\b|people\b|sheep\b|"
    r"deer\b|fish\b|cattle\b|quarters\b|per\b)"
)


def _year(m: re.Match[str]) -> str:
    if not m.group("s") and _COUNTED.match(m.string, m.end()):
        return m.group(0)
    year = int(m.group("year"))
    if m.group("s"):
        spoken = num2words(year, to="year")
        spoken = spoken[:-1] + "ies" if spoken.endswith("y") else spoken + "s"
        return spoken.replace("-", " ")
    return num2words(year, to="year").replace("-", " ")


# Ranges: "1850–1860", "10-20", "pp. 10–20" -> "... to ...".
_RANGE = re.compile(r"(?<![\d,.\-/])(?P<a>\d{1,4})\s?[-\u2013\u2014]\s?(?P<b>\d{1,4})(?![\d,]\d|[-/]\d)")


def _range(m: re.Match[str]) -> str:
    a, b = m.group("a"), m.group("b")
    if len(b) < len(a) and len(a) == 4:  # "1850-60"
        b = a[: len(a) - len(b)] + b
    if int(b) <= int(a):
        return m.group(0)  # not a range (a score, a reference): leave it
    return f"{a} to {b}"


# Ordinals: in the old style ("2d", "3d", "22d") espeak says "two D"; round ones ("1000th") "one thousand th".
_OLD_ORDINAL = re.compile(r"\b(?P<n>\d*[23])d\b|\b(?P<m>\d{1,3}(?:,\d{3})+|\d+)(?:st|nd|rd|th)\b")


def _old_ordinal(m: re.Match[str]) -> str:
    if m.group("m"):
        return _words(m.group("m").replace(",", ""), "ordinal")
    n = int(m.group("n"))
    if n % 100 in (12, 13):
        return m.group(0)
    return _words(n, "ordinal")


# Abbreviations espeak reads letter by letter, as another word or with a sentence break after them.
_ABBREVIATIONS: list[tuple[str, str]] = [
    (r"&c\.?", "et cetera"),
    (r"\betc\.", "et cetera"),
    (r"\bi\.\s?e\.", "that is"),
    (r"\bviz\.", "namely"),
    (r"\bcf\.", "compare"),
    (r"\bvs\.", "versus"),
    (r"\bca\.(?=\s*\d)", "circa"),
    (r"\bc\.(?=\s*1\d{3}\b)", "circa"),
    (r"\bMr\.", "Mister"),
    (r"\bMrs\.", "Missus"),
    (r"\bMessrs\.", "Messieurs"),
    (r"\bDr\.(?=\s*[A-Z])", "Doctor"),
    (r"\bProf\.", "Professor"),
    (r"\bCapt\.", "Captain"),
    (r"\bCol\.(?=\s*[A-Z])", "Colonel"),
    (r"\bGen\.(?=\s*[A-Z])", "General"),
    (r"\bLieut\.", "Lieutenant"),
    (r"\bSgt\.", "Sergeant"),
    (r"\bRev\.(?=\s*[A-Z])", "Reverend"),
    (r"\bHon\.(?=\s*[A-Z])", "Honourable"),
    (r"\bGov\.(?=\s*[A-Z])", "Governor"),
    (r"\bMt\.(?=\s*[A-Z])", "Mount"),
    (r"\bMme\.?(?=\s*[A-Z])", "Madame"),
    (r"\bMlle\.?(?=\s*[A-Z])", "Mademoiselle"),
    (r"\bSt\.(?=\s*[A-Z])", "Saint"),
    (r"(?<=[A-Z][a-z]\s|[a-z]{2}\s)St\.", "Street"),
    (r"\bAve\.", "Avenue"),
    (r"\bJr\.(?=,|\s+[a-z])", "Junior"),
    (r"\bSr\.(?=,|\s+[a-z])", "Senior"),
    (r"\bEsq\.", "Esquire"),
    (r"\bCo\.(?=,|\s+[a-z]|$)", "Company"),
    (r"\bDept\.", "Department"),
    (r"\bapprox\.", "approximately"),
    (r"\bibid\.", "ibidem"),
    (r"\bop\.\s?cit\.", "opere citato"),
    (r"\bet al\.", "et al"),
]
_ABBREVIATION_RULES: list[Rule] = [(re.compile(p), s) for p, s in _ABBREVIATIONS]

# Initials: "J. R. R. Tolkien" — a full stop after each letter makes espeak end a sentence there.
_INITIAL = re.compile(r"\b(?P<letter>[A-HJ-Z])\.(?=\s*(?:[A-Z]\.|[A-Z][a-z]))")  # not "I.": a numeral or the pronoun
# Words in capitals inside lower-case text are emphasis ("I will NOT go"); espeak spells out the ones
# it does not know ("HUMPH" -> "H U M P H"). Lower them, keeping short ones (acronyms: "BBC", "USA").
_SHOUT = re.compile(r"\b[A-Z][A-Z'\u2019]{3,}\b")
# A run of words in capitals ("THE WHALE NEVER FIGURED IN ANY GRAND IMPOSING WAY?") is a phrase, not
# acronyms: its short words are lowered too (a lone "BBC" keeps its letters).
_SHOUTED_RUN = re.compile(r"\b[A-Z][A-Z'\u2019]*(?:[ \t]+[A-Z][A-Z'\u2019]*)+\b")
_LOWER_WORD = re.compile(r"\b[a-z]{2,}\b")
_UNDERSCORES = re.compile(r"(?<!\w)_+|_+(?!\w)")  # _emphasis_ in plain-text books
_SLASH = re.compile(r"(?<=[^\W\d_])/(?=[^\W\d_])")  # "and/or" -> "and or"


def _shout(m: re.Match[str]) -> str:
    return m.group(0).lower()


_ESPEAK: list[Rule] = [
    (_UNDERSCORES, ""),
    (_LSD, _lsd),
    (_MONEY, _money),
    (_PART, _part),
    *_ABBREVIATION_RULES,
    (_FRACTION, _fraction),
    (_RANGE, _range),
    (_YEAR, _year),
    (_OLD_ORDINAL, _old_ordinal),
    (_REGNAL, _regnal),
    (_LONE_NUMERAL, _lone_numeral),
    (_INITIAL, r"\g<letter>"),
    (_SLASH, " or "),
]


def _apply(text: str, rules: list[Rule]) -> str:
    for pattern, replacement in rules:
        text = pattern.sub(replacement, text)
    return text


def _espeak(text: str) -> str:
    text = _HEADING_NUMERAL.sub(_heading_numeral, text, count=1)
    text = _apply(text, _ESPEAK)
    if _LOWER_WORD.search(text):  # a heading in capitals is read as words already; emphasis inside prose is not
        text = _SHOUTED_RUN.sub(lambda m: m.group(0).lower() if len(_SHOUT.findall(m.group(0))) else m.group(0), text)
        text = _SHOUT.sub(_shout, text)
    return text


def _tidy(text: str) -> str:
    text = _SPACE_BEFORE.sub(r"\1", text)
    text = _SPACES.sub(" ", text)
    return text.strip()


def prepare(text: str, style: str = "layout") -> str:
    """``text`` as an engine of ``style`` should be given it; see the module's contract."""
    if style == "plain" or not text:
        return text
    if style not in STYLES:
        raise ValueError(f"unknown reading style '{style}' (known: {', '.join(STYLES)})")
    pieces = _PHONEMES.split(text)
    out = []
    for i, piece in enumerate(pieces):
        if i % 2:  # a phoneme block from the lexicon: the engine's own notation, untouched
            out.append(piece)
            continue
        piece = _apply(piece, _LAYOUT)
        if style == "espeak":
            piece = _espeak(piece)
            piece = _apply(piece, [(_CLUSTER, _cluster), (_GLUED, r"\1 ")])
        out.append(piece)
    prepared = _tidy("".join(out))
    return prepared
