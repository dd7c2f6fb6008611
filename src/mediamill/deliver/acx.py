"""The ``acx`` profile: one MP3 per chapter, mastered to ACX's rules and corrected until they hold.

Each chapter is mastered in scratch (room tone, gain, limiter, 44.1 kHz mono
CBR), measured, corrected a bounded number of times, then moved into place:
a kill between passes never leaves an uncorrected file under the delivered name.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..core.files import commit_file
from ..core.ids import slug
from ..media import master
from ..media.measure import levels
from ..media.probe import probe
from ..profiles import ACX
from .base import Delivery, Production, judge_file

ACX_CORRECTIONS = 3


def deliver_acx(p: Production, work: Path) -> Delivery:
    plan, book, out_dir = p.plan, p.book, p.out_dir
    delivery = Delivery(ACX.name)
    folder = out_dir / "acx"
    folder.mkdir(parents=True, exist_ok=True)
    wanted = []
    assert ACX.target_rms_db is not None  # the ACX profile sets it
    for chapter, source in zip(plan.chapters, book.chapters):
        duration = probe(source).duration_s
        if duration > 120 * 60:
            delivery.problems.append(
                f"chapter {chapter.number} '{chapter.title}' is {duration / 60:.1f} min; ACX allows 120 per file: split it"
            )
            continue
        dest = folder / f"{chapter.number:02d}-{slug(chapter.title)}.mp3"
        wanted.append(dest)
        lv = levels(source)
        gain = ACX.target_rms_db - lv["rms_db"]
        limit = ACX.limit_db
        # Mastered and corrected in scratch, then moved into place: a kill between passes must
        # not leave an uncorrected file under the delivered name.
        draft = work / f"acx-{chapter.number:02d}.mp3"
        master.acx_chapter(source, draft, gain, limit, lv["head_silence_s"], lv["tail_silence_s"])
        result = judge_file(draft, ACX)
        # Corrective passes (bounded) when encoding moved a figure: the limiter took more level
        # than expected, or the encoder pushed peaks past the ceiling.
        for _ in range(ACX_CORRECTIONS):
            drift = ACX.target_rms_db - result.measurement.rms_db
            overshoot = result.measurement.peak_db - (ACX.limit_db + 1.0)
            if abs(drift) <= 1.0 and overshoot <= 0:
                break
            limit -= max(0.0, overshoot) + (0.5 if overshoot > 0 else 0.0)
            gain += drift
            master.acx_chapter(source, draft, gain, limit, lv["head_silence_s"], lv["tail_silence_s"])
            result = judge_file(draft, ACX)
        commit_file(draft, dest)
        delivery.files.append(dataclasses.replace(result, path=dest))
    for stale in folder.glob("*.mp3"):
        # Hidden files are writes in progress (another worker's, perhaps): the sweep judges those.
        if stale not in wanted and not stale.name.startswith("."):
            stale.unlink()
    return delivery
