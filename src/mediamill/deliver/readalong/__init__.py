"""The ``readalong`` delivery profile: an EPUB 3 with Media Overlays, text highlighted as the narration plays.

``build_readalong(dest, book)`` writes ``dest`` from a ``ReadalongBook``: the
source EPUB with overlays added when the manifest was imported from one (rows
carry ``source`` anchors), else a book made from the manifest's own text.
Audio is MP3 inside the package; sync is per row, or per word where word
timings are given.
"""

from .build import build_readalong
from .clock import parse_clock
from .model import ReadalongBook, ReadalongChapter, ReadalongError, ReadalongRow

__all__ = ["ReadalongBook", "ReadalongChapter", "ReadalongError", "ReadalongRow", "build_readalong", "parse_clock"]
