"""Turn a plan's stored segments into deliverables: chapter files and the M4B.

Stitching is skipped when nothing that decides its output changed since the
last successful stitch, so a rerun of a finished manifest does no work.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..core.files import scratch_dir, write_json_atomic
from ..core.ids import slug
from ..media import master
from ..media.stitch import BookMeta, Piece, assemble_chapter, build_m4b
from ..plan import Chapter, Plan
from ..profiles import AUDIOBOOK
from ..store import Entry

STITCH_VERSION = 2  # 2: the M4B is mastered (one gain for the whole book) and may carry a cover


@dataclass
class BookOutputs:
    chapters: list[Path] = field(default_factory=list)
    m4b: Path | None = None
    incomplete: list[str] = field(default_factory=list)  # chapter titles left out for failed rows
    reused: bool = False


def chapter_path(out_dir: Path, chapter: Chapter) -> Path:
    return out_dir / "chapters" / f"{chapter.number:02d}-{slug(chapter.title)}.flac"


def book_meta(plan: Plan) -> BookMeta:
    meta = plan.manifest.meta
    return BookMeta(title=plan.manifest.title, author=meta.author, narrator=meta.narrator)


def _fingerprint(plan: Plan) -> str:
    doc = {
        "v": STITCH_VERSION,
        "meta": book_meta(plan).__dict__,
        "cover": _cover_stamp(plan),
        "chapters": [[c.title, [[s.job.key, s.pause_after] for s in c.segments]] for c in plan.chapters],
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def _cover(plan: Plan) -> Path | None:
    cover = plan.manifest.meta.cover
    if not cover:
        return None
    return Path(cover) if Path(cover).is_absolute() else plan.manifest.base_dir / cover


def _cover_stamp(plan: Plan) -> list | None:
    cover = _cover(plan)
    return [str(cover), cover.stat().st_size, cover.stat().st_mtime_ns] if cover and cover.is_file() else None


def master_m4b(
    plan: Plan,
    chapters: list[tuple[str, Path, float]],
    m4b: Path,
    work: Path,
    adjust_db: float = 0.0,
    limit_db: float = AUDIOBOOK.limit_db,
) -> None:
    """The M4B with one gain for the whole book, decided on all of it, so chapters keep their relative loudness."""
    book_lufs = master.integrated_lufs([path for _, path, _ in chapters], work)
    assert AUDIOBOOK.target_lufs is not None  # the audiobook profile sets it
    gain = AUDIOBOOK.target_lufs - book_lufs if book_lufs > -70 else 0.0
    mastering = master.gain_chain(gain + adjust_db, limit_db)
    build_m4b(chapters, book_meta(plan), m4b, work, audio_filter=mastering, cover=_cover(plan))


def stitch_book(plan: Plan, entries: dict[str, Entry], out_dir: Path, scratch: Path) -> BookOutputs:
    """Write a FLAC per complete chapter and, if every chapter is complete, the M4B."""
    if not plan.chapters:
        return BookOutputs()  # nothing to read aloud: songs or clips only
    m4b = out_dir / f"{plan.name}.m4b"
    wanted = [chapter_path(out_dir, c) for c in plan.chapters]
    state_file = out_dir / ".stitch.json"
    fingerprint = _fingerprint(plan)
    try:
        previous = json.loads(state_file.read_text()).get("fingerprint")
    except (OSError, ValueError):
        previous = None
    if previous == fingerprint and m4b.is_file() and all(p.is_file() for p in wanted):
        return BookOutputs(chapters=wanted, m4b=m4b, reused=True)

    # Chapter files of an earlier version of the manifest would mislead; they are ours to remove.
    chapter_dir = out_dir / "chapters"
    if chapter_dir.is_dir():
        for stale in chapter_dir.glob("*.flac"):
            # Hidden files are writes in progress (another worker's, perhaps): the sweep judges those.
            if stale not in wanted and not stale.name.startswith("."):
                stale.unlink()

    outputs = BookOutputs()
    done: list[tuple[str, Path, float]] = []
    scratch.mkdir(parents=True, exist_ok=True)
    with scratch_dir(scratch, "stitch-") as work:
        for chapter, dest in zip(plan.chapters, wanted):
            if not all(s.job.key in entries for s in chapter.segments):
                outputs.incomplete.append(chapter.title)
                continue
            pieces = [Piece(entries[s.job.key].path, s.pause_after) for s in chapter.segments]
            duration = assemble_chapter(pieces, dest, Path(work) / f"ch{chapter.number:03d}")
            done.append((chapter.title, dest, duration))
            outputs.chapters.append(dest)
        if not outputs.incomplete:
            master_m4b(plan, done, m4b, Path(work))
            outputs.m4b = m4b
            write_json_atomic(state_file, {"fingerprint": fingerprint})
        else:
            # An M4B from an earlier version of the manifest no longer matches it.
            state_file.unlink(missing_ok=True)
            m4b.unlink(missing_ok=True)
    return outputs
