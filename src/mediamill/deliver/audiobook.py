"""The ``audiobook`` profile: the stitched M4B, judged as encoded, with one corrective pass if it misses.

The M4B is mastered at stitching (one gain for the whole book, decided on all
of it); here it is measured, and if the limiter or the AAC encoder moved the
figures past the rules, mastered once more with the measured correction.
Each chapter gets its captions, ``captions/<chapter>.vtt``.
"""

from __future__ import annotations

from pathlib import Path

from ..assemble import master_m4b
from ..media.probe import probe
from ..profiles import AUDIOBOOK
from .base import Delivery, Production, caption_rows, judge_file
from .captions import cues, write_vtt


def deliver_audiobook(p: Production, work: Path) -> Delivery:
    plan, book = p.plan, p.book
    delivery = Delivery(AUDIOBOOK.name)
    if book.m4b is None:
        delivery.problems.append("no M4B: the book has incomplete chapters or no speech rows")
        return delivery
    result = judge_file(book.m4b, AUDIOBOOK, {"chapters": len(probe(book.m4b).chapters)})
    m = result.measurement
    assert AUDIOBOOK.target_lufs is not None  # the audiobook profile sets it
    drift = AUDIOBOOK.target_lufs - m.integrated_lufs
    overshoot = m.true_peak_dbtp - (-1.0)
    if not result.ok and (abs(drift) > 0.5 or overshoot > 0):
        # The limiter or the AAC encoder moved the figures: one corrective pass over the whole book.
        chapters = [(c.title, path, probe(path).duration_s) for c, path in zip(plan.chapters, book.chapters)]
        limit = AUDIOBOOK.limit_db - (max(0.0, overshoot) + 0.5 if overshoot > 0 else 0.0)
        master_m4b(plan, chapters, book.m4b, work, adjust_db=drift if abs(drift) > 0.5 else 0.0, limit_db=limit)
        result = judge_file(book.m4b, AUDIOBOOK, {"chapters": len(probe(book.m4b).chapters)})
    delivery.files.append(result)
    # A WebVTT per chapter, in the chapter's own time (the M4B's chapters and the chapter files alike).
    for chapter, path in zip(plan.chapters, book.chapters):
        cue_list = cues(caption_rows(p, in_book=False, chapter=chapter.number))
        delivery.outputs.append(write_vtt(p.out_dir / "captions" / f"{path.stem}.vtt", cue_list))
    return delivery
