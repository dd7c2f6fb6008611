"""Stitching and probing with real ffmpeg."""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor

import pytest

from mediamill.media.ffmpeg import MediaError, run_ffmpeg
from mediamill.media.probe import probe
from mediamill.media.stitch import BookMeta, Piece, assemble_chapter, build_m4b, chapters_metadata
from tests.helpers.fakes import write_tone_wav


def test_assemble_mixes_formats_and_inserts_exact_pauses(tmp_path):
    a = write_tone_wav(tmp_path / "a.wav", 1.0, rate=22_050)
    b = write_tone_wav(tmp_path / "b.wav", 0.5, rate=22_050)
    c = write_tone_wav(tmp_path / "c.wav", 0.75, rate=48_000)  # the odd one out is converted
    mp3 = tmp_path / "d.mp3"
    run_ffmpeg("-f", "lavfi", "-i", "sine=frequency=300:duration=0.6:sample_rate=44100", "-ac", "2", mp3)
    pieces = [Piece(a, 0.25), Piece(b, 0.0), Piece(c, 1.0), Piece(mp3, 0.5)]
    dest = tmp_path / "chapter.flac"
    duration = assemble_chapter(pieces, dest, tmp_path / "work")
    info = probe(dest)
    assert (info.audio_codec, info.sample_rate, info.channels) == ("flac", 22_050, 1)
    mp3_s = probe(mp3).duration_s
    assert duration == pytest.approx(1.0 + 0.25 + 0.5 + 0.75 + 1.0 + mp3_s + 0.5, abs=0.03)


def test_chapter_metadata_escapes_and_accumulates(tmp_path):
    text = chapters_metadata(BookMeta("A = B; #1", "Ann", "Ned"), [("One\\Two", 1.0004), ("Three", 2.0004)])
    assert "title=A \\= B\\; \\#1" in text
    assert "title=One\\\\Two" in text
    assert "START=1000\nEND=3001" in text  # cumulative rounding, no drift
    assert "composer=Ned" in text


def test_m4b_has_chapters_and_tags(tmp_path):
    ch = []
    for n, seconds in enumerate((1.5, 2.5), start=1):
        src = write_tone_wav(tmp_path / f"s{n}.wav", seconds)
        ch.append(
            (
                f"Part {n}",
                tmp_path / f"c{n}.flac",
                assemble_chapter([Piece(src, 0)], tmp_path / f"c{n}.flac", tmp_path / "w"),
            )
        )
    build_m4b(ch, BookMeta("Title", "Author"), tmp_path / "b.m4b", tmp_path / "w")
    info = probe(tmp_path / "b.m4b")
    assert [c.title for c in info.chapters] == ["Part 1", "Part 2"]
    assert info.chapters[1].start_s == pytest.approx(1.5, abs=0.01)
    assert info.duration_s == pytest.approx(4.0, abs=0.06)
    assert info.tags["artist"] == "Author"


def test_ffmpeg_failure_is_a_media_error_with_its_message(tmp_path):
    with pytest.raises(MediaError, match="exited with"):
        run_ffmpeg("-i", tmp_path / "missing.wav", tmp_path / "out.wav")
    with pytest.raises(MediaError, match="cannot read media file"):
        probe(tmp_path / "missing.wav")


def test_a_failed_stitch_leaves_no_partial_output(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF....WAVEfmt garbage")
    with pytest.raises(MediaError):
        assemble_chapter([Piece(bad, 0.0)], tmp_path / "out.flac", tmp_path / "w")
    assert list(tmp_path.glob("*.flac")) == [] and list(tmp_path.glob(".*partial*")) == []


# -- which ffmpeg: one on PATH that is too old or lacks what mediamill uses gives way to the bundled build ------


@pytest.fixture
def resolve_afresh(monkeypatch):
    """ffmpeg_exe() resolved again under this test's PATH, and again after it (it is cached per process)."""
    from mediamill.media import ffmpeg

    monkeypatch.delenv("MEDIAMILL_FFMPEG", raising=False)
    ffmpeg._resolve.cache_clear()
    yield ffmpeg
    ffmpeg._resolve.cache_clear()


def _fake_ffmpeg(folder, version: str, delegate: bool = True, drop: str | None = None):
    """An ``ffmpeg`` that claims ``version`` and otherwise is the bundled build (or nothing), minus ``drop``."""
    import imageio_ffmpeg

    folder.mkdir(parents=True, exist_ok=True)
    real = imageio_ffmpeg.get_ffmpeg_exe()
    rest = f'"{real}" "$@"' if delegate else "true"
    if drop:
        rest += f" | grep -v ' {drop} '"
    script = folder / "ffmpeg"
    script.write_text(
        f'#!/bin/sh\nif [ "$1" = "-version" ]; then echo "ffmpeg version {version} Copyright (c)"; exit 0; fi\n{rest}\n'
    )
    script.chmod(0o755)
    return script


def _bundled() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def test_an_old_ffmpeg_on_path_gives_way_to_the_bundled_one_saying_so(tmp_path, monkeypatch, resolve_afresh, caplog):
    _fake_ffmpeg(tmp_path / "bin", "4.4.2-0ubuntu0.22.04.1")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    with caplog.at_level(logging.WARNING, logger="mediamill.media.ffmpeg"), ThreadPoolExecutor(4) as threads:
        chosen = list(threads.map(lambda _: resolve_afresh.ffmpeg_exe(), range(4)))  # a server's first streams
        assert chosen == [_bundled()] * 4 and resolve_afresh.ffmpeg_exe() == _bundled()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings  # once per process
    assert "4.4.2" in warnings[0] and _bundled() in warnings[0] and str(tmp_path / "bin" / "ffmpeg") in warnings[0]


def test_an_ffmpeg_on_path_without_a_feature_mediamill_uses_gives_way(tmp_path, monkeypatch, resolve_afresh, caplog):
    _fake_ffmpeg(tmp_path / "bin", "9.0.2", drop="libmp3lame")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    with caplog.at_level(logging.WARNING, logger="mediamill.media.ffmpeg"):
        assert resolve_afresh.ffmpeg_exe() == _bundled()
    assert "libmp3lame" in caplog.text


def test_a_recent_complete_ffmpeg_on_path_is_used(tmp_path, monkeypatch, resolve_afresh, caplog):
    script = _fake_ffmpeg(tmp_path / "bin", "n9.0.2-17-g2a571b6068-20260930")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    with caplog.at_level(logging.WARNING, logger="mediamill.media.ffmpeg"):
        assert resolve_afresh.ffmpeg_exe() == str(script)
    assert not caplog.records


def test_an_explicit_ffmpeg_is_respected_even_when_old(tmp_path, monkeypatch, resolve_afresh, caplog):
    script = _fake_ffmpeg(tmp_path / "bin", "4.4.2")
    monkeypatch.setenv("MEDIAMILL_FFMPEG", str(script))
    with caplog.at_level(logging.WARNING, logger="mediamill.media.ffmpeg"):
        assert resolve_afresh.ffmpeg_exe() == str(script)
    assert "4.4.2" in caplog.text and "MEDIAMILL_FFMPEG" in caplog.text
