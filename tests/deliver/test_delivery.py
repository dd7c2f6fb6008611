"""Mastering, delivery profiles and the QC report, measured on real encoded files."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pyarrow.parquet as pq
import pytest

from mediamill.assemble import BookOutputs
from mediamill.deliver import Production, deliver_acx
from mediamill.flows import produce
from mediamill.media import master
from mediamill.media.ffmpeg import ffmpeg_exe, run_ffmpeg
from mediamill.media.measure import levels, measure
from mediamill.media.probe import probe
from mediamill.profiles import ACX
from tests.helpers.fakes import write_speechlike_wav

SPEECHLIKE = "tests.helpers.fakes:SpeechlikeBackend"


def lavfi(dest: Path, source: str, *extra: str) -> Path:
    run_ffmpeg("-f", "lavfi", "-i", source, *extra, dest)
    return dest


def ffmpeg_astats(path: Path) -> dict[str, float]:
    """ffmpeg's own astats figures for the whole file (the reference our measurements must match)."""
    cmd = [
        ffmpeg_exe(),
        "-hide_banner",
        "-nostats",
        "-i",
        str(path),
        "-af",
        "astats=measure_perchannel=none",
        "-f",
        "null",
        "-",
    ]
    err = subprocess.run(cmd, capture_output=True, text=True).stderr
    found = {}
    for key, label in (("rms_db", "RMS level dB"), ("peak_db", "Peak level dB")):
        m = re.findall(rf"{label}: (-?[\d.]+|-inf)", err)
        found[key] = float(m[-1]) if m and m[-1] != "-inf" else -120.0
    return found


def ffmpeg_loudnorm_input(path: Path) -> dict[str, float]:
    m = master._loudnorm_measure(["-i", str(path)], -16, -1)
    return {"integrated_lufs": float(m["input_i"]), "true_peak_dbtp": float(m["input_tp"])}


@pytest.mark.parametrize(
    "source,extra",
    [
        ("sine=frequency=1000:duration=6:sample_rate=44100", ["-af", "volume=-8dB"]),
        ("anoisesrc=color=pink:amplitude=0.2:duration=6:sample_rate=48000:seed=3", []),
        ("sine=frequency=440:duration=6:sample_rate=22050", ["-af", "volume=-20dB", "-ac", "2"]),
    ],
)
def test_measurements_match_ffmpeg_within_half_a_db(tmp_path, source, extra):
    path = lavfi(tmp_path / "signal.wav", source, *extra)
    ours = measure(path)
    astats, loud = ffmpeg_astats(path), ffmpeg_loudnorm_input(path)
    assert ours.rms_db == pytest.approx(astats["rms_db"], abs=0.5)
    assert ours.peak_db == pytest.approx(astats["peak_db"], abs=0.5)
    assert ours.integrated_lufs == pytest.approx(loud["integrated_lufs"], abs=0.5)
    assert ours.true_peak_dbtp == pytest.approx(loud["true_peak_dbtp"], abs=0.5)
    assert ours.duration_s == pytest.approx(6.0, abs=0.05)


def test_noise_floor_and_silences_are_found(tmp_path):
    # 1 s silence, 3 s tone, 2 s of noise at a known level, 1.5 s silence.
    tone = lavfi(tmp_path / "tone.wav", "sine=frequency=300:duration=3:sample_rate=16000")
    noise = lavfi(tmp_path / "noise.wav", "anoisesrc=color=white:amplitude=0.01:duration=2:sample_rate=16000:seed=1")
    silence1 = lavfi(tmp_path / "s1.wav", "anullsrc=r=16000:cl=mono", "-t", "1")
    silence2 = lavfi(tmp_path / "s2.wav", "anullsrc=r=16000:cl=mono", "-t", "1.5")
    whole = tmp_path / "whole.wav"
    run_ffmpeg(*master.concat_args([silence1, tone, noise, silence2], tmp_path), "-c:a", "pcm_s16le", whole)
    lv = levels(whole)
    noise_rms = ffmpeg_astats(noise)["rms_db"]
    assert lv["head_silence_s"] == pytest.approx(1.0, abs=0.06)
    assert lv["tail_silence_s"] == pytest.approx(1.5, abs=0.06)
    # The quietest half second that is not digital silence... is the digital silence at the ends.
    assert lv["noise_floor_db"] == -120.0
    lv_noise = levels(noise)
    assert lv_noise["noise_floor_db"] == pytest.approx(noise_rms, abs=0.5)


def test_profile_rules_name_what_fails(tmp_path):
    good = lavfi(
        tmp_path / "good.mp3",
        "sine=frequency=300:duration=3:sample_rate=44100",
        "-af",
        "volume=4dB,adelay=750:all=1,apad=pad_dur=2",
        "-ac",
        "1",
        "-c:a",
        "libmp3lame",
        "-b:a",
        "192k",
    )
    quiet = lavfi(
        tmp_path / "quiet.mp3",
        "sine=frequency=300:duration=3:sample_rate=44100",
        "-af",
        "volume=-10dB,adelay=750:all=1,apad=pad_dur=2",
        "-ac",
        "1",
        "-c:a",
        "libmp3lame",
        "-b:a",
        "192k",
    )
    clipping = lavfi(
        tmp_path / "clip.mp3",
        "sine=frequency=300:duration=3:sample_rate=44100",
        "-af",
        "volume=18dB,adelay=750:all=1,apad=pad_dur=2",
        "-ac",
        "1",
        "-c:a",
        "libmp3lame",
        "-b:a",
        "192k",
    )
    noisy = lavfi(
        tmp_path / "noisy.mp3",
        "anoisesrc=color=white:amplitude=0.03:duration=6:sample_rate=44100",
        "-af",
        "volume=0dB",
        "-ac",
        "1",
        "-c:a",
        "libmp3lame",
        "-b:a",
        "128k",
    )

    def failing(path):
        m = measure(path)
        return {v.rule for v in ACX.judge(m, {"duration_min": m.duration_s / 60}) if not v.ok}

    assert failing(good) == set()
    assert "RMS level" in failing(quiet)
    assert "peak level" in failing(clipping)
    assert {"noise floor", "bitrate (CBR)"} <= failing(noisy)


def test_acx_refuses_an_over_long_chapter_by_name(tmp_path):
    long_chapter = lavfi(tmp_path / "long.flac", "anullsrc=r=8000:cl=mono", "-t", str(121 * 60))
    short = write_speechlike_wav(tmp_path / "short.wav", 4.0)
    plan = SimpleNamespace(
        chapters=[SimpleNamespace(number=1, title="The Long Night"), SimpleNamespace(number=2, title="Dawn")]
    )
    delivery = deliver_acx(
        Production(plan, BookOutputs(chapters=[long_chapter, short]), {}, tmp_path / "out"), tmp_path
    )  # type: ignore[arg-type]
    assert not delivery.ok
    assert any("The Long Night" in p and "121.0 min" in p for p in delivery.problems)
    assert [f.path.name for f in delivery.files] == ["02-dawn.mp3"] and delivery.files[0].ok


def test_acx_limits_peaks_at_the_delivery_rate_not_the_source_rate(tmp_path):
    # A tone at a quarter of 22.05 kHz, sampled 45 degrees off its crests: every source sample sits
    # 3 dB under the waveform's real peak, which upsampling to 44.1 kHz brings back.
    tone = lavfi(tmp_path / "tone.wav", "aevalsrc=0.9*sin(2*PI*5512.5*t+PI/4):s=22050:d=4", "-ac", "1")
    assert levels(tone)["peak_db"] < -3.5
    dest = tmp_path / "tone.mp3"
    master.acx_chapter(tone, dest, gain_db=0.0, limit_db=ACX.limit_db, head_silence=0.0, tail_silence=0.0)
    assert measure(dest, timeline=False).peak_db <= -3.0


@pytest.mark.usefixtures("prefect_api")
def test_audiobook_and_acx_deliveries_pass_and_read_back(write_manifest, tmp_path, monkeypatch):
    from tests.helpers.paths import MANIFESTS

    cover = MANIFESTS / "images" / "lighthouse.png"
    monkeypatch.setenv("MEDIAMILL_ASSET_ROOTS", str(cover.parent))  # a shared artwork folder
    manifest = write_manifest(
        """
id,chapter,text,options
a,The First,The lamps came on one by one along the street.,
b,,A quieter line follows the first one here.,"{""level_db"": -30}"
c,The Second,Then the second chapter begins with a louder voice.,"{""level_db"": -10}"
""",
        sidecar=f'title = "Lamps"\nauthor = "A. Writer"\nnarrator = "N. Reader"\ncover = "{cover}"\nprofiles = ["audiobook", "acx"]\n',
    )
    out = tmp_path / "out"
    state = asyncio.run(produce(manifest=str(manifest), backend=SPEECHLIKE, outputs=str(out), return_state=True))
    assert state.is_completed(), state.message
    book = probe(out / "book" / "book.m4b")
    assert [c.title for c in book.chapters] == ["The First", "The Second"]
    assert book.tags["title"] == "Lamps" and book.tags["artist"] == "A. Writer" and book.tags["composer"] == "N. Reader"
    assert book.video_codec == "mjpeg"  # the cover, as an attached picture
    qc = json.loads((out / "book" / "qc.json").read_text())
    assert qc["ok"] and set(qc["profiles"]) == {"audiobook", "acx"}
    acx_files = qc["profiles"]["acx"]["files"]
    assert [f["path"] for f in acx_files] == ["acx/01-the-first.mp3", "acx/02-the-second.mp3"]
    for f in acx_files:
        m = f["measurements"]
        assert -23 <= m["rms_db"] <= -18 and m["peak_db"] <= -3 and m["sample_rate"] == 44100 and m["channels"] == 1
        assert 0.5 <= m["head_silence_s"] <= 1.0 and 1.0 <= m["tail_silence_s"] <= 5.0
        assert (out / "book" / f["plot"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The whole book got one gain: chapters keep their loudness relative to each other.
    m4b = qc["profiles"]["audiobook"]["files"][0]["measurements"]
    assert -20.5 <= m4b["integrated_lufs"] <= -17.5 and m4b["true_peak_dbtp"] <= -1.0
    assert "## acx: pass" in (out / "book" / "qc.md").read_text()

    # A rerun masters and measures nothing again.
    mtimes = {p: p.stat().st_mtime_ns for p in (out / "book" / "acx").iterdir()}
    state = asyncio.run(produce(manifest=str(manifest), backend=SPEECHLIKE, outputs=str(out), return_state=True))
    assert state.is_completed() and {p: p.stat().st_mtime_ns for p in (out / "book" / "acx").iterdir()} == mtimes


@pytest.mark.usefixtures("prefect_api")
def test_a_failing_delivery_fails_the_run_and_keeps_the_files(write_manifest, tmp_path):
    # Recorded 55 dB too quiet: mastering will not lift it past its 30 dB cap, so ACX's RMS rule fails.
    manifest = write_manifest(
        'id,text,options\na,A line recorded far too quietly to rescue.,"{""level_db"": -75}"\n',
        sidecar='profiles = ["acx"]\n',
    )
    out = tmp_path / "out"
    state = asyncio.run(produce(manifest=str(manifest), backend=SPEECHLIKE, outputs=str(out), return_state=True))
    assert state.is_failed() and "delivery failed: acx: 01-book.mp3: RMS level" in state.message
    assert (out / "book" / "acx" / "01-book.mp3").is_file() and (out / "book" / "book.m4b").is_file()
    assert json.loads((out / "book" / "qc.json").read_text())["ok"] is False


def test_ducking_lowers_the_bed_under_speech(tmp_path):
    # Speech: a 1 kHz tone for 2 s, silence for 2 s, three times. Bed: a steady 150 Hz tone.
    burst = lavfi(tmp_path / "burst.wav", "sine=frequency=1000:duration=2:sample_rate=44100", "-af", "volume=-6dB")
    gap = lavfi(tmp_path / "gap.wav", "anullsrc=r=44100:cl=mono", "-t", "2")
    speech = tmp_path / "speech.wav"
    run_ffmpeg(*master.concat_args([burst, gap] * 3, tmp_path), "-c:a", "pcm_s16le", speech)
    bed = lavfi(tmp_path / "bed.wav", "sine=frequency=150:duration=5:sample_rate=44100")
    mix = tmp_path / "mix.flac"
    master.podcast_mix(
        speech, mix, False, None, None, master.Bed(bed, gain_db=-6, duck_db=12), 0.5, levels(speech)["rms_db"]
    )
    # Keep only the bed's band and measure it while the voice speaks and while it is silent.
    only_bed = tmp_path / "bed-band.wav"
    run_ffmpeg("-i", mix, "-af", "lowpass=f=300,lowpass=f=300,lowpass=f=300", only_bed)

    def band_rms(start: float) -> float:
        part = tmp_path / f"part-{start}.wav"
        run_ffmpeg("-ss", str(start), "-t", "1", "-i", only_bed, part)
        return levels(part)["rms_db"]

    under_speech = [band_rms(s) for s in (0.6, 4.6, 8.6)]
    alone = [band_rms(s) for s in (2.8, 6.8, 10.8)]
    assert min(alone) - max(under_speech) >= 12


def test_video_clips_are_joined_with_a_narration_track(tmp_path):
    clips = []
    for n, (size, seconds) in enumerate([("320x240", 2.0), ("640x360", 1.5)]):
        clips.append(
            lavfi(
                tmp_path / f"clip{n}.mp4",
                f"testsrc=size={size}:rate=24:duration={seconds}",
                "-f",
                "lavfi",
                "-i",
                f"sine=frequency={300 + 200 * n}:duration={seconds}",
                "-c:v",
                "libx264",
                "-pix_fmt",
                "yuv420p",
                "-c:a",
                "aac",
                "-shortest",
            )
        )
    narration = write_speechlike_wav(tmp_path / "narration.wav", 2.5)
    for mode in ("mix", "replace"):
        dest = tmp_path / f"cut-{mode}.mp4"
        master.video_cut(clips, dest, narration, mode, -16.0, -1.5, tmp_path)
        info = probe(dest)
        assert info.video_codec == "h264" and info.audio_codec == "aac"
        assert (info.width, info.height) == (320, 240)
        assert info.duration_s == pytest.approx(3.5, abs=0.1)
        assert measure(dest).true_peak_dbtp <= -1.0


@pytest.mark.usefixtures("prefect_api")
def test_the_podcast_example_is_delivered_with_music(tmp_path):
    import shutil

    from tests.helpers.paths import MANIFESTS

    shutil.copytree(MANIFESTS, tmp_path / "m")
    out = tmp_path / "out"
    state = asyncio.run(produce(manifest=str(tmp_path / "m" / "podcast.csv"), outputs=str(out), return_state=True))
    assert state.is_completed(), state.message
    qc = json.loads((out / "podcast" / "qc.json").read_text())
    (episode,) = qc["profiles"]["podcast"]["files"]
    m = episode["measurements"]
    assert episode["path"] == "podcast/podcast.mp3" and m["channels"] == 2
    assert -17 <= m["integrated_lufs"] <= -15 and m["true_peak_dbtp"] <= -1.0
    speech = sum(r["audio_s"] for r in pq.read_table(out / "podcast" / "results.parquet").to_pylist())
    assert m["duration_s"] > speech + 3  # intro and outro around the lines (less their crossfades)


def test_row_checks_flag_truncation_and_long_silences(tmp_path):
    from mediamill.verify import row_flags

    text = "A sentence long enough that reading it aloud takes a good few seconds."
    short = write_speechlike_wav(tmp_path / "short.wav", 0.5)
    assert row_flags("tts", text, short).startswith("speech rate: truncated")
    speech, gap = (
        write_speechlike_wav(tmp_path / "a.wav", 2.0),
        lavfi(tmp_path / "gap.wav", "anullsrc=r=16000:cl=mono", "-t", "3"),
    )
    gapped = tmp_path / "gapped.wav"
    run_ffmpeg(*master.concat_args([speech, gap, speech], tmp_path), "-c:a", "pcm_s16le", gapped)
    flags = row_flags("tts", "Two short bursts of speech with a long pause between them, read slowly.", gapped)
    assert flags is not None and "silence of 3.3 s inside" in flags
    assert row_flags("tts", "Two short bursts.", write_speechlike_wav(tmp_path / "ok.wav", 1.6)) is None
    assert row_flags("song", None, short) is None
