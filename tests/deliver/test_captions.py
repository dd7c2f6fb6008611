"""Captions: cue rules on their own, then real deliveries parsed back with WebVTT and SubRip parsers and checked
against where each row sits in the delivered audio."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
import srt
import webvtt

from mediamill.assemble import build_timeline
from mediamill.deliver.captions import LINE_CHARS, MAX_CUE_S, MIN_CUE_S, CaptionRow, cues, srt_text, vtt_text
from mediamill.media import probe
from mediamill.plan import validate
from mediamill.store import Store
from tests.helpers.paths import MANIFESTS

NOISELESS = '"{""noise_scale"": 0, ""noise_w_scale"": 0}"'


def _seconds(clock: str) -> float:
    h, m, s = clock.replace(",", ".").split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def test_cues_follow_caption_practice():
    long = (
        "The lamplighter walked the length of Harrow Street, and one by one the lamps came on, "
        "each a small sun against the evening; nobody thanked him, and he did not expect them to."
    )
    rows = [CaptionRow(long, 0.0, 12.0, 12.6), CaptionRow("Yes.", 12.6, 13.0, 15.0)]
    made = cues(rows)
    for cue in made:
        lines = cue.text.split("\n")
        assert len(lines) <= 2 and all(len(line) <= LINE_CHARS for line in lines), cue.text
        assert cue.end_s - cue.start_s <= MAX_CUE_S + 1e-6
    assert all(a.end_s <= b.start_s for a, b in zip(made, made[1:]))
    assert made[-1].text == "Yes." and made[-1].end_s - made[-1].start_s >= MIN_CUE_S  # stays up into the pause
    assert " ".join(c.text.replace("\n", " ") for c in made) == f"{long} Yes."  # the manifest's words, all of them
    assert made[0].start_s == 0.0 and made[-2].end_s <= 12.6


def test_word_timings_time_the_cues_and_the_text_stays_the_manifests():
    text = "He counted 12 steps. Then he stopped, because the lamp was already lit."
    spoken = [
        "he",
        "counted",
        "twelve",
        "steps",
        "then",
        "he",
        "stopped",
        "because",
        "the",
        "lamp",
        "was",
        "already",
        "lit",
    ]
    words = tuple((w, 1.0 + 0.4 * i, 1.3 + 0.4 * i) for i, w in enumerate(spoken))
    (cue,) = cues([CaptionRow(text, 1.0, 7.0, 8.0, words)])
    assert (cue.start_s, cue.end_s) == (1.0, pytest.approx(1.3 + 0.4 * 12))  # first word's start, last word's end
    assert cue.text == "He counted 12 steps. Then he stopped,\nbecause the lamp was already lit."


def test_written_captions_parse_back():
    made = cues([CaptionRow("First line of the show.", 0.5, 2.5, 3.0), CaptionRow("Second.", 3.0, 3.6, 6.0)])
    parsed = webvtt.from_string(vtt_text(made))
    assert [(_seconds(c.start), c.text) for c in parsed] == [(0.5, "First line of the show."), (3.0, "Second.")]
    subs = list(srt.parse(srt_text(made)))
    assert [s.content for s in subs] == ["First line of the show.", "Second."]
    assert subs[1].start.total_seconds() == pytest.approx(3.0)


@pytest.mark.usefixtures("prefect_api")
def test_a_podcast_and_its_chapters_get_captions_timed_to_the_rows_in_the_delivered_audio(tmp_path, monkeypatch):
    from mediamill.flows import produce

    monkeypatch.setenv("MEDIAMILL_VERIFY", "pocketsphinx")  # word timings time the cues
    shutil.copytree(MANIFESTS / "music", tmp_path / "music")
    manifest = tmp_path / "show.csv"
    manifest.write_text(
        "id,chapter,text,options,pause_after\n"
        f"s1,Part One,Welcome to the show about the people who light our cities.,{NOISELESS},0.8\n"
        f's2,,"Tonight, a lamplighter tells us about eleven years on Harrow Street.",{NOISELESS},0.8\n'
        f"s3,Part Two,Every evening he climbed forty ladders.,{NOISELESS},\n"
    )
    (tmp_path / "show.toml").write_text(
        'profiles = ["audiobook", "podcast"]\n[podcast]\nintro = "music/intro.mp3"\ncrossfade_s = 1.0\n'
    )
    out = tmp_path / "out"
    state = asyncio.run(produce(manifest=str(manifest), backend="piper", outputs=str(out), return_state=True))
    assert state.is_completed(), state.message

    plan = validate(manifest, "piper")
    entries = {j.key: Store(out).get(j.key) for j in plan.jobs}
    timeline = build_timeline(plan, entries)
    intro = probe(tmp_path / "music" / "intro.mp3").duration_s
    episode = webvtt.read(str(out / "show" / "podcast" / "show.vtt"))
    subs = list(srt.parse((out / "show" / "podcast" / "show.srt").read_text()))
    assert [c.text for c in episode] == [s.content for s in subs]
    said = " ".join(c.text.replace("\n", " ") for c in episode)
    assert said == " ".join(j.row.text for j in plan.jobs)  # the manifest's text, not the recogniser's
    texts = {j.id: j.row.text for j in plan.jobs}
    for row in (r for chapter in timeline.chapters for r in chapter.rows):
        opening = " ".join(texts[row.id].split()[:3])
        (first,) = [c for c in episode if c.text.replace("\n", " ").startswith(opening)]
        # Each row's first cue starts with its speech, in the episode's clock (after the intro, less the crossfade).
        assert _seconds(first.start) == pytest.approx(intro - 1.0 + row.book_start_s, abs=0.35)
    # A WebVTT per chapter, in the chapter's own time.
    chapter_two = webvtt.read(str(next((out / "show" / "captions").glob("02-*.vtt"))))
    assert _seconds(chapter_two.captions[0].start) < 0.35
    assert chapter_two.captions[0].text.startswith("Every evening")


def test_video_captions_come_from_the_clips_speech_and_ride_in_the_mp4(tmp_path):
    """A video's subtitle stream (mov_text) carries the same cues as its WebVTT file."""
    import av

    from mediamill.deliver.captions import write_srt
    from mediamill.media import master, run_ffmpeg

    clip = tmp_path / "clip.mp4"
    run_ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=160x120:rate=10:duration=3",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=300:duration=3",
        "-shortest",
        "-c:v",
        "libx264",
        "-c:a",
        "aac",
        clip,
    )
    subs = write_srt(tmp_path / "cut.srt", cues([CaptionRow("Hi there.", 0.2, 2.0, 3.0)]))
    dest = tmp_path / "cut.mp4"
    master.video_cut([clip], dest, None, "mix", -16.0, -2.5, tmp_path, subtitles=subs)
    with av.open(str(dest)) as container:
        (stream,) = container.streams.subtitles
        assert stream.codec_context.name == "mov_text"
        assert stream.metadata.get("language") == "eng"
    assert Path(dest).stat().st_size > 0
