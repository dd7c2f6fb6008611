"""The faster-whisper engine's code path, on a tiny random Whisper model built offline.

The model's transcripts are random tokens, so these tests check what the code
does with them (shapes, times, settings, errors), not accuracy.
"""

from __future__ import annotations

import shutil

import pytest

from mediamill.verify.judge import judge, verify_take
from mediamill.verify.recognisers.base import Recogniser, RecogniserError


@pytest.fixture(scope="module")
def whisper(tiny_whisper):
    from mediamill.verify.recognisers.whisper import WhisperRecogniser

    # Greedy, one temperature and a short token budget: a random model never stops by itself.
    return WhisperRecogniser(
        tiny_whisper, device="cpu", compute_type="int8", beam_size=1, temperature=0.0, max_new_tokens=16
    )


def test_it_is_a_multilingual_recogniser(whisper):
    assert isinstance(whisper, Recogniser)
    assert whisper.name == "whisper"
    assert {"en", "de", "fr", "ja"} <= whisper.languages


def test_transcribe_returns_timed_words_inside_the_audio(whisper, takes):
    t = whisper.transcribe(takes.clean, "en")
    assert t.engine == "whisper" and t.reading is None
    assert t.words, "a random model still emits tokens"
    assert all(w.text and w.text == w.text.strip() for w in t.words)
    assert all(0.0 <= w.start_s <= w.end_s <= t.duration_s + 0.05 for w in t.words)
    assert all(a.start_s <= b.start_s for a, b in zip(t.words, t.words[1:]))
    assert all(w.confidence is not None and 0.0 <= w.confidence <= 1.0 for w in t.words)
    assert t.duration_s == pytest.approx(9.0, abs=3.0) and t.trailing_silence_s is not None


def test_compressed_input_and_another_language(whisper, takes):
    t = whisper.transcribe(takes.mp3_32, "de-DE")
    assert t.duration_s > 5.0 and t.words


def test_its_transcript_is_judged_and_fails(whisper, takes):
    v = verify_take(takes.clean, takes.text, whisper)
    assert v.engine == "whisper" and v.verdict == "fail"  # random words do not say the text
    assert v.wer >= 0.9 and len(v.timings) == 28 and v.missing


def test_judge_reads_its_words_with_the_whisper_thresholds(whisper, takes):
    t = whisper.transcribe(takes.clean, "en")
    assert judge(" ".join(w.text for w in t.words), t).wer < 0.5  # its own words, read back, mostly match


def test_unknown_language_is_refused(whisper, takes):
    with pytest.raises(RecogniserError, match="does not hear 'xx'"):
        whisper.transcribe(takes.clean, "xx")


def test_model_setting_from_the_environment(monkeypatch, tiny_whisper, takes):
    from mediamill.verify.recognisers.whisper import WhisperRecogniser

    monkeypatch.setenv("MEDIAMILL_WHISPER_MODEL", str(tiny_whisper))
    monkeypatch.setenv("MEDIAMILL_WHISPER_DEVICE", "cpu")
    monkeypatch.setenv("MEDIAMILL_WHISPER_COMPUTE_TYPE", "float32")
    r = WhisperRecogniser(beam_size=1, temperature=0.0, max_new_tokens=4)
    assert (r.model_path, r.device, r.compute_type) == (tiny_whisper, "cpu", "float32")
    assert r.transcribe(takes.clean, "en").words


def test_no_model_no_download(monkeypatch, tmp_path, tiny_whisper):
    from mediamill.verify.recognisers.whisper import WhisperRecogniser

    monkeypatch.delenv("MEDIAMILL_WHISPER_MODEL", raising=False)
    with pytest.raises(RecogniserError, match="needs MEDIAMILL_WHISPER_MODEL"):
        WhisperRecogniser()
    with pytest.raises(RecogniserError, match="is not a folder"):
        WhisperRecogniser("tiny.en")  # a model name: faster-whisper would download it; refused
    partial = tmp_path / "partial"
    shutil.copytree(tiny_whisper, partial)
    (partial / "tokenizer.json").unlink()  # faster-whisper would fetch a tokenizer from a hub
    with pytest.raises(RecogniserError, match="missing tokenizer.json"):
        WhisperRecogniser(partial)


def test_a_broken_model_is_a_recogniser_error(tmp_path, tiny_whisper, takes):
    from mediamill.verify.recognisers.whisper import WhisperRecogniser

    broken = tmp_path / "broken"
    shutil.copytree(tiny_whisper, broken)
    (broken / "model.bin").write_bytes(b"\0" * 64)
    r = WhisperRecogniser(broken, device="cpu")
    with pytest.raises(RecogniserError, match="cannot load the Whisper model"):
        r.transcribe(takes.clean, "en")
