"""The ``video`` profile: the clips in row order as one H.264/AAC MP4, with narration or a song mixed in or instead."""

from __future__ import annotations

from pathlib import Path

from ..media import master
from ..media.probe import probe
from ..profiles import VIDEO
from .base import Delivery, Production, judge_file, speech_track

def deliver_video(p: Production, work: Path) -> Delivery:
    plan, book, entries, out_dir = p.plan, p.book, p.entries, p.out_dir
    delivery = Delivery(VIDEO.name)
    clips = [entries[j.key].path for j in plan.jobs if j.kind == "video" and j.key in entries]
    missing = [j.id for j in plan.jobs if j.kind == "video" and j.key not in entries]
    if missing:
        delivery.problems.append(f"clips missing (failed rows): {', '.join(missing)}")
        return delivery
    cfg = plan.manifest.meta.video
    track = None
    if cfg.track == "speech":
        if not book.chapters:
            delivery.problems.append("video.track = 'speech' but no chapter was stitched")
            return delivery
        track = speech_track(book, work)
    elif cfg.track:
        job = next(j for j in plan.jobs if j.id == cfg.track)
        if job.key not in entries:
            delivery.problems.append(f"video.track: song row '{cfg.track}' failed")
            return delivery
        track = entries[job.key].path
    dest = out_dir / "video" / f"{plan.name}.mp4"
    dest.parent.mkdir(parents=True, exist_ok=True)
    master.video_cut(clips, dest, track, cfg.mode, VIDEO.target_lufs, VIDEO.limit_db, work)  # type: ignore[arg-type]
    info = probe(dest)
    delivery.files.append(judge_file(dest, VIDEO, {"has_video": int(bool(info.video_codec)), "has_audio": int(bool(info.audio_codec))}))
    return delivery
