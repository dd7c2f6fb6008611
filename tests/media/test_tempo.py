"""Tempo changes with real ffmpeg: lengths follow the ratio, pitch stays, streams match files."""

from __future__ import annotations

import threading
import time
import wave

import numpy as np
import psutil
import pytest

from mediamill.media.ffmpeg import MediaError, run_ffmpeg
from mediamill.media.pipe import pipe_pcm
from mediamill.media.probe import probe
from mediamill.media.tempo import change_tempo, tempo_factors, tempo_filter, tempo_stream
from tests.helpers.fakes import write_speechlike_wav, write_tone_wav

RATE = 22_050


def pcm_of(path) -> bytes:
    with wave.open(str(path)) as wav:
        return wav.readframes(wav.getnframes())


def pitch_hz(pcm: bytes, rate: int = RATE) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(float)
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[spectrum.argmax()])


@pytest.mark.parametrize(
    "ratio,factors",
    [
        (1.0, []),
        (1.5, [1.5]),
        (0.5, [0.5]),
        (3.0, [2.0, 1.5]),
        (4.0, [2.0, 2.0]),
        (0.25, [0.5, 0.5]),
        (0.3, [0.5, 0.6]),
    ],
)
def test_ratios_beyond_one_stage_are_chained_within_its_best_range(ratio, factors):
    assert tempo_factors(ratio) == pytest.approx(factors)
    assert all(0.5 <= f <= 2.0 for f in tempo_factors(ratio))


@pytest.mark.parametrize("ratio", [0.0, -1.0, float("nan"), float("inf"), 1000.0])
def test_nonsense_ratios_are_refused(ratio):
    with pytest.raises(ValueError):
        tempo_filter(ratio)


@pytest.mark.parametrize("ratio", [0.25, 0.5, 0.8, 1.25, 2.0, 3.0, 4.0])
def test_a_file_lasts_its_length_over_the_ratio_at_the_same_pitch_and_format(tmp_path, ratio):
    src = write_speechlike_wav(tmp_path / "speech.wav", 4.0, rate=RATE)
    out = change_tempo(src, tmp_path / "out.wav", ratio)
    info = probe(out)
    assert (info.audio_codec, info.sample_rate, info.channels) == ("pcm_s16le", RATE, 1)
    assert info.duration_s == pytest.approx(4.0 / ratio, abs=1 / RATE)  # to the sample
    tone = write_tone_wav(tmp_path / "tone.wav", 2.0, rate=RATE)  # 440 Hz
    assert pitch_hz(pcm_of(change_tempo(tone, tmp_path / "tone-out.wav", ratio))) == pytest.approx(440, abs=3)


def test_a_lossy_take_is_encoded_again_in_its_own_format(tmp_path):
    mp3 = tmp_path / "take.mp3"
    run_ffmpeg("-i", write_speechlike_wav(tmp_path / "speech.wav", 3.0), "-c:a", "libmp3lame", mp3)
    out = probe(change_tempo(mp3, tmp_path / "fast.mp3", 1.5))
    assert out.audio_codec == "mp3float" and out.duration_s == pytest.approx(probe(mp3).duration_s / 1.5, rel=0.03)


def test_a_lossy_take_written_as_wav_becomes_pcm(tmp_path):
    mp3 = tmp_path / "take.bin"  # a download whose name says nothing
    run_ffmpeg("-i", write_speechlike_wav(tmp_path / "speech.wav", 3.0), "-c:a", "libmp3lame", "-f", "mp3", mp3)
    assert probe(change_tempo(mp3, tmp_path / "fast.wav", 1.5)).audio_codec == "pcm_s16le"


def test_what_is_not_audio_fails_as_a_media_error(tmp_path):
    junk = tmp_path / "take.wav"
    junk.write_bytes(b"RIFF....WAVEnot audio at all")
    with pytest.raises(MediaError):
        change_tempo(junk, tmp_path / "out.wav", 2.0)
    assert not (tmp_path / "out.wav").exists()


def _chunks(pcm: bytes, size: int = 4410, delay_s: float = 0.0):
    for start in range(0, len(pcm), size):
        if delay_s:
            time.sleep(delay_s)
        yield pcm[start : start + size]


def test_a_stream_is_re_timed_as_it_arrives_like_the_whole_file(tmp_path):
    src = write_speechlike_wav(tmp_path / "speech.wav", 4.0, rate=RATE)
    pcm = pcm_of(src)
    started = time.monotonic()
    blocks, first_at = [], None
    for block in tempo_stream(_chunks(pcm, delay_s=0.02), RATE, 2.0):  # 2 s of input at 0.02 s a chunk
        first_at = first_at or time.monotonic() - started
        blocks.append(block)
    streamed = b"".join(blocks)
    whole = pcm_of(change_tempo(src, tmp_path / "fast.wav", 2.0))
    assert len(streamed) == len(whole) and len(blocks) > 5
    assert first_at < 0.5  # audio comes back while the source is still producing (it takes about 0.8 s)


def test_a_stream_closed_early_ends_ffmpeg_and_closes_its_source(tmp_path):
    closed = threading.Event()
    pcm = pcm_of(write_speechlike_wav(tmp_path / "speech.wav", 4.0, rate=RATE))

    def source():
        try:
            yield from _chunks(pcm)
        finally:
            closed.set()

    children = set(psutil.Process().children())
    stream = tempo_stream(source(), RATE, 2.0)
    next(stream)
    ffmpeg = [p for p in psutil.Process().children() if p not in children]
    stream.close()
    assert closed.is_set() and ffmpeg and not any(p.is_running() and p.status() != "zombie" for p in ffmpeg)


def test_a_failing_pipe_raises_with_ffmpegs_message():
    with pytest.raises(MediaError, match="ffmpeg exited"):
        list(pipe_pcm(iter([b"\0\0" * 1000]), RATE, ["-c:a", "no-such-codec", "-f", "s16le"]))
