"""Decoding takes to 16 kHz mono PCM, and letter-to-sound."""

from __future__ import annotations

import wave

import numpy as np
import pytest

from mediamill.media.pcm import AudioError, duration_s, pcm16k
from mediamill.verify.recognisers.arpabet import guess, ipa_to_arpabet


def _wav(path, rate, channels, seconds=1.0):
    t = np.arange(int(rate * seconds)) / rate
    tone = (0.5 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2")
    data = np.repeat(tone[:, None], channels, axis=1) if channels > 1 else tone
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(data.tobytes())


@pytest.mark.parametrize(("rate", "channels"), [(22050, 1), (44100, 2), (16000, 1)])
def test_wav_to_16k_mono(tmp_path, rate, channels):
    _wav(tmp_path / "a.wav", rate, channels)
    pcm = pcm16k(tmp_path / "a.wav")
    assert duration_s(pcm) == pytest.approx(1.0, abs=0.01)
    x = np.frombuffer(pcm, dtype="<i2").astype(float)
    assert 0.3 * 32767 < np.abs(x).max() < 0.6 * 32767  # level kept, channels averaged not summed
    spectrum = np.abs(np.fft.rfft(x))
    assert np.argmax(spectrum) * 16000 / len(x) == pytest.approx(440, abs=3)


def test_compressed_audio_decodes_the_same(takes):
    wav, mp3 = pcm16k(takes.clean), pcm16k(takes.mp3_64)
    assert abs(duration_s(wav) - duration_s(mp3)) < 0.1


def test_unreadable_files(tmp_path):
    with pytest.raises(AudioError, match="no such file"):
        pcm16k(tmp_path / "absent.wav")
    (tmp_path / "junk.mp3").write_bytes(b"not audio at all" * 100)
    with pytest.raises(AudioError):
        pcm16k(tmp_path / "junk.mp3")


def test_ipa_to_arpabet():
    assert ipa_to_arpabet("həlˈoʊ wˈɜːld") == "HH AH L OW W ER L D".split()
    assert ipa_to_arpabet("tʃˈɑːɹdʒ") == "CH AA R JH".split()


def test_letter_to_sound_guesses_unknown_names():
    assert guess("okafor") == ("AA", "K", "AE", "F", "ER")
    assert guess("zorblatt")[:2] == ("Z", "AO")
