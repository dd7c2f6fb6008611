"""The ``video`` profile: the clips in row order as one H.264/AAC MP4, with narration or a song mixed in or instead.

Captions (``video/<name>.vtt``, ``.srt`` and a subtitle stream in the MP4)
are the narration's rows when the speech rows make the sound track, else what
each clip's prompt has its people say (``<S>...<E>``), over that clip.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..media import master
from ..media.probe import probe
from ..profiles import VIDEO
from .base import Delivery, Production, caption_rows, judge_file, speech_track
from .captions import CaptionRow, Cue, cues, write_srt, write_vtt

_SPOKEN = re.compile(r"<S>(.*?)<E>", re.S)


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
    cue_list = _video_cues(p, clips, narrated=cfg.track == "speech")
    vtt, subtitles = dest.with_suffix(".vtt"), dest.with_suffix(".srt")
    write_srt(subtitles, cue_list)
    assert VIDEO.target_lufs is not None  # the video profile sets it
    master.video_cut(
        clips,
        dest,
        track,
        cfg.mode,
        VIDEO.target_lufs,
        VIDEO.limit_db,
        work,
        subtitles=subtitles if cue_list else None,
    )
    delivery.outputs += [write_vtt(vtt, cue_list), subtitles]
    info = probe(dest)
    delivery.files.append(
        judge_file(dest, VIDEO, {"has_video": int(bool(info.video_codec)), "has_audio": int(bool(info.audio_codec))})
    )
    return delivery


def _video_cues(p: Production, clips: list[Path], narrated: bool) -> list[Cue]:
    if narrated:
        return cues(caption_rows(p, in_book=True))
    rows, at = [], 0.0
    videos = [j for j in p.plan.jobs if j.kind == "video" and j.key in p.entries]
    for job, clip in zip(videos, clips):
        length = probe(clip).duration_s
        said = " ".join(part.strip() for part in _SPOKEN.findall(getattr(job.row, "prompt", "") or ""))
        if said:
            rows.append(CaptionRow(said, at, at + length, at + length))
        at += length
    return cues(rows)
