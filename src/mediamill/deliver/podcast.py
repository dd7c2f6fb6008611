"""The ``podcast`` profile: one episode MP3 of the speech rows, with intro, ducked music bed and outro.

The episode's captions (``podcast/<name>.vtt`` and ``.srt``) are timed in the
episode: after the intro, crossfade included.
"""

from __future__ import annotations

from pathlib import Path

from ..media import master, probe
from ..media.measure import levels
from ..profiles import PODCAST
from .base import Delivery, Production, caption_rows, judge_file, resolve_file, speech_track
from .captions import cues, shifted, write_srt, write_vtt


def deliver_podcast(p: Production, work: Path) -> Delivery:
    plan, book, out_dir = p.plan, p.book, p.out_dir
    delivery = Delivery(PODCAST.name)
    cfg = plan.manifest.meta.podcast
    speech = speech_track(book, work)
    bed_path, intro, outro = resolve_file(plan, cfg.bed), resolve_file(plan, cfg.intro), resolve_file(plan, cfg.outro)
    stereo = cfg.stereo if cfg.stereo is not None else any((bed_path, intro, outro))
    bed = master.Bed(bed_path, cfg.bed_gain_db, cfg.duck_db) if bed_path else None
    mix = work / "episode-mix.flac"
    master.podcast_mix(speech, mix, stereo, intro, outro, bed, cfg.crossfade_s, levels(speech)["rms_db"])
    dest = out_dir / "podcast" / f"{plan.name}.mp3"
    dest.parent.mkdir(parents=True, exist_ok=True)
    target = PODCAST.lufs_for(2 if stereo else 1)
    assert target is not None  # the podcast profile has a target for each channel count
    master.encode_episode(mix, dest, target, PODCAST.limit_db, stereo)
    delivery.files.append(judge_file(dest, PODCAST))
    # The speech sits after the intro, less the crossfade into it.
    offset = max(0.0, probe(intro).duration_s - cfg.crossfade_s) if intro else 0.0
    cue_list = cues(shifted(caption_rows(p, in_book=True), offset))
    delivery.outputs += [write_vtt(dest.with_suffix(".vtt"), cue_list), write_srt(dest.with_suffix(".srt"), cue_list)]
    return delivery
