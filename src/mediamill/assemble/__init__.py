"""Assembly: stored segments into chapter files and the M4B, and the timeline of every row's offset.

Stitching is skipped when nothing that decides its output changed.
"""

from .book import BookOutputs, book_meta, chapter_path, master_m4b, stitch_book
from .timeline import ChapterSpan, RowSpan, Timeline, build_timeline

__all__ = [
    "BookOutputs",
    "ChapterSpan",
    "RowSpan",
    "Timeline",
    "book_meta",
    "build_timeline",
    "chapter_path",
    "master_m4b",
    "stitch_book",
]
