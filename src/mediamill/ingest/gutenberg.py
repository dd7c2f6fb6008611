"""Project Gutenberg's wrapper around a book, shared by the text and HTML readers.

- ``START`` / ``END``: the "*** START OF THE PROJECT GUTENBERG EBOOK ..." and
  "*** END OF ..." lines; what lies outside them is the header and licence.
- ``header_fields(text)``: ``title``, ``author`` and ``language`` from the
  header's "Title:", "Author:" and "Language:" lines (a value may continue on
  indented lines); ``language`` is a language tag (see ``language_tag``).
- ``language_tag(value)``: a BCP 47 tag from a tag ("en", "en_US") or an
  English language name ("English", "English, French": the first), else None,
  so a sidecar never gets a language that verification cannot use.
- ``is_credit(text)``: the producers' lines that follow the start marker
  ("Produced by ...", "E-text prepared by ...", a transcriber's note): the
  edition's apparatus, not the book. Readers take only short ones
  (``CREDIT_WORDS``) and only right after the marker.
"""

from __future__ import annotations

import re

START = re.compile(r"\*\*\*\s*START OF (?:THE|THIS) PROJECT GUTENBERG", re.I)
END = re.compile(r"\*\*\*\s*END OF (?:THE|THIS) PROJECT GUTENBERG", re.I)

CREDIT_WORDS = 150  # a credit or a transcriber's note; more is the book itself, run together
_FIELD = re.compile(r"^[ \t]*(Title|Author|Language):[ \t]*(\S.*)((?:\n[ \t]+\S.*)*)", re.I | re.M)
_TAG = re.compile(r"^[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})*$")
# The languages Project Gutenberg's catalogue names most, by their English names.
_LANGUAGES = {
    "afrikaans": "af",
    "arabic": "ar",
    "bulgarian": "bg",
    "catalan": "ca",
    "chinese": "zh",
    "czech": "cs",
    "danish": "da",
    "dutch": "nl",
    "english": "en",
    "esperanto": "eo",
    "estonian": "et",
    "finnish": "fi",
    "french": "fr",
    "galician": "gl",
    "german": "de",
    "greek": "el",
    "hebrew": "he",
    "hungarian": "hu",
    "icelandic": "is",
    "irish": "ga",
    "italian": "it",
    "japanese": "ja",
    "korean": "ko",
    "latin": "la",
    "norwegian": "no",
    "polish": "pl",
    "portuguese": "pt",
    "romanian": "ro",
    "russian": "ru",
    "serbian": "sr",
    "slovenian": "sl",
    "spanish": "es",
    "swedish": "sv",
    "tagalog": "tl",
    "turkish": "tr",
    "ukrainian": "uk",
    "welsh": "cy",
}
_CREDIT = re.compile(
    r"^(?:produced by|prepared by|proofread by|digiti[sz]ed by|html version by|scanned (?:and \w+ )?by"
    r"|transcribed (?:from .{0,120}?)?by|(?:this )?e-?(?:text|book)s? (?:was |were )?"
    r"(?:produced|prepared|created|transcribed|scanned) (?:\w+ )?by|note: project gutenberg also has"
    r"|images of the original pages|transcriber[\u2019']?s? notes?\b)",
    re.I,
)


def language_tag(value: str | None) -> str | None:
    if not value:
        return None
    first = re.split(r"[,;/]| and ", value.strip(), maxsplit=1)[0].strip()
    candidate = first.replace("_", "-")
    if _TAG.match(candidate):
        return candidate
    return _LANGUAGES.get(first.casefold())


def header_fields(text: str) -> dict[str, str]:
    """The header's title, author and language (only those it gives)."""
    fields: dict[str, str] = {}
    for match in _FIELD.finditer(text.replace("\r\n", "\n").replace("\r", "\n")):
        key = match.group(1).lower()
        if key in fields:
            continue
        value = " ".join((match.group(2) + match.group(3)).split())
        if key == "language":
            tag = language_tag(value)
            if tag:
                fields[key] = tag
        elif value:
            fields[key] = value
    return fields


def is_credit(text: str) -> bool:
    return bool(_CREDIT.match(" ".join(text.split())))
