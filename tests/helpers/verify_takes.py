"""Verification fixtures: a handful of real Piper takes with known defects, and a tiny Whisper model.

The takes are made once per session (about 10 s on two cores) with the same
recipes as the benchmark corpus (``tests/helpers/verify_corpus.py``), but fixed rather than
random, so each test knows exactly what a take lacks or adds. Piper's noise
is not seedable, so the takes are made without it (``noise_scale=0``,
``noise_w=0``): the same audio on every run. The benchmark measures takes made
with Piper's default noise.
"""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path

import pytest

LONG = (
    "The lighthouse keeper climbed the stairs at dusk.",
    "He counted every step, as his father had done before him.",
    "At the top, the lamp waited, cold and patient.",
)
OTHER = (
    "Margaret opened the letter with trembling hands.",
    "It was from her brother, who had been missing for twelve years.",
)
EXTRA = "The kettle began to whistle in the kitchen."


@dataclass
class Takes:
    folder: Path
    text: str  # what every take below is judged against (LONG)
    clean: Path
    mp3_64: Path
    mp3_32: Path
    noise: Path
    cut: Path  # the first 55 % of the clean take
    missing: Path  # LONG without its second sentence
    extra: Path  # LONG with EXTRA between its first and second sentences
    swapped: Path  # OTHER's clean take
    gaps: list[tuple[float, float]]  # the silences Piper's sentence joins left in the clean take, seconds


def _seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as w:
        return w.getnframes() / w.getframerate()


@pytest.fixture(scope="session")
def takes(tmp_path_factory) -> Takes:
    import numpy as np

    from . import verify_corpus as corpus

    out = tmp_path_factory.mktemp("takes")
    synth = corpus.Synth()

    def say(name: str, text: str) -> Path:
        pcm, _ = synth.say(text, noise_scale=0.0, noise_w=0.0)
        path = out / f"{name}.wav"
        corpus.write_wav(path, pcm, synth.rate)
        return path

    text = " ".join(LONG)
    clean = say("clean", text)
    for rate in (64, 32):
        corpus.ffmpeg("-i", clean, "-c:a", "libmp3lame", "-b:a", f"{rate}k", out / f"mp3_{rate}.mp3")
    with wave.open(str(clean), "rb") as w:
        pcm = w.readframes(w.getnframes())
    corpus.write_wav(out / "noise.wav", corpus.add_noise(pcm, 20.0, np.random.default_rng(1)), synth.rate)
    corpus.ffmpeg("-i", clean, "-t", f"{_seconds(clean) * 0.55:.3f}", out / "cut.wav")
    return Takes(
        folder=out,
        text=text,
        clean=clean,
        mp3_64=out / "mp3_64.mp3",
        mp3_32=out / "mp3_32.mp3",
        noise=out / "noise.wav",
        cut=out / "cut.wav",
        missing=say("missing", " ".join((LONG[0], LONG[2]))),
        extra=say("extra", " ".join((LONG[0], EXTRA, LONG[1], LONG[2]))),
        swapped=say("other", " ".join(OTHER)),
        gaps=corpus.sentence_gaps(clean),
    )


@pytest.fixture(scope="session")
def sphinx():
    from mediamill.verify.recognisers.pocketsphinx import PocketsphinxRecogniser

    return PocketsphinxRecogniser()


@pytest.fixture(scope="session")
def tiny_whisper(tmp_path_factory) -> Path:
    from .tiny_whisper import build

    return build(tmp_path_factory.mktemp("whisper"))
