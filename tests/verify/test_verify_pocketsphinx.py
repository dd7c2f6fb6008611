"""Real pocketsphinx on real Piper takes: defects flagged, clean takes passed, word timings sane."""

from __future__ import annotations

import wave

import numpy as np
import pytest

from mediamill.text.normalize import normalize
from mediamill.verify.judge import THRESHOLDS, verify_take
from mediamill.verify.recognisers.base import UNKNOWN, Recogniser, RecogniserError


def test_it_is_a_recogniser(sphinx):
    assert isinstance(sphinx, Recogniser)
    assert sphinx.name == "pocketsphinx" and sphinx.languages == {"en"}


@pytest.mark.parametrize("kind", ["clean", "mp3_64", "mp3_32", "noise"])
def test_clean_takes_pass(takes, sphinx, kind):
    v = verify_take(getattr(takes, kind), takes.text, sphinx)
    assert v.verdict == "pass", v.reasons
    assert v.engine == "pocketsphinx" and v.wer <= 0.1
    assert sum(t.start_s is not None for t in v.timings) >= len(v.timings) - 1


def test_cut_short_take_fails_with_the_tail_missing(takes, sphinx):
    v = verify_take(takes.cut, takes.text, sphinx)
    assert v.verdict == "fail"
    longest = max(v.missing, key=lambda r: len(r.words))
    assert longest.words[-3:] == ["cold", "and", "patient"]  # the end of the text is what is gone
    assert longest.end_s == pytest.approx(v.duration_s, abs=0.05)


def test_take_missing_a_sentence_fails_and_says_which_words(takes, sphinx):
    v = verify_take(takes.missing, takes.text, sphinx)
    assert v.verdict == "fail"
    missing = {w for r in v.missing for w in r.words}
    assert {"counted", "every", "step", "father", "before"} <= missing
    assert not missing & {"lighthouse", "keeper", "lamp", "patient"}
    (gap,) = [r for r in v.missing if "counted" in r.words]
    assert 1.5 < gap.start_s < 4.0  # after the first sentence


def test_another_rows_take_fails(takes, sphinx):
    v = verify_take(takes.swapped, takes.text, sphinx)
    assert v.verdict == "fail"
    assert v.wer > 0.5


def test_take_with_an_extra_sentence_fails_and_says_where(takes, sphinx):
    v = verify_take(takes.extra, takes.text, sphinx)
    assert v.verdict == "fail"
    assert all(t.start_s is not None for t in v.timings)  # every expected word is there
    worst = max(v.extra, key=lambda r: r.seconds)
    assert worst.seconds > 1.0 and set(worst.words) == {UNKNOWN}
    dusk = next(t for t in v.timings if t.word == "dusk")
    counted = next(t for t in v.timings if t.word == "counted")
    assert dusk.end_s - 0.3 <= worst.start_s and worst.end_s <= counted.start_s + 0.3  # between the sentences


def test_word_timings_are_monotonic_inside_the_audio_and_on_the_words(takes, sphinx):
    v = verify_take(takes.clean, takes.text, sphinx)
    times = [(t.start_s, t.end_s) for t in v.timings]
    assert all(s is not None for s, _ in times)
    assert all(0.0 <= s < e <= v.duration_s + 1e-6 for s, e in times)
    assert all(e1 <= s2 + 1e-6 for (_, e1), (s2, _) in zip(times, times[1:]))
    # Piper joins sentences with silence: sentence ends and starts must sit at those silences.
    assert len(takes.gaps) == 2
    ends = [
        len(normalize(s))
        for s in (
            "The lighthouse keeper climbed the stairs at dusk.",
            "He counted every step, as his father had done before him.",
        )
    ]
    boundaries = [ends[0], ends[0] + ends[1]]
    for gap, index in zip(takes.gaps, boundaries):
        last, first = v.timings[index - 1], v.timings[index]
        assert abs(last.end_s - gap[0]) < 0.12, (last, gap)
        assert abs(first.start_s - gap[1]) < 0.12, (first, gap)
    assert all(t.confidence is not None and 0.0 <= t.confidence <= 1.0 for t in v.timings)


def test_word_edges_sit_on_the_speech_not_in_the_silence_around_it(takes, sphinx):
    """The aligner gives the first and last words the quiet before and after them; captions and the
    read-along need where the speech is (here: 10 ms frames within 35 dB of the take's loudest)."""
    with wave.open(str(takes.clean), "rb") as w:
        rate = w.getframerate()
        x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
    n = rate // 100
    frames = x[: len(x) // n * n].reshape(-1, n)
    level = 20 * np.log10(np.sqrt((frames**2).mean(axis=1)) + 1e-9)
    loud = np.flatnonzero(level > level.max() - 35.0)
    speech_start, speech_end = loud[0] * 0.01, (loud[-1] + 1) * 0.01
    assert speech_end < len(x) / rate - 0.1  # the take ends in quiet the words must not take
    v = verify_take(takes.clean, takes.text, sphinx)
    assert v.timings[0].start_s == pytest.approx(speech_start, abs=0.05)
    assert v.timings[-1].end_s == pytest.approx(speech_end, abs=0.05)


def test_words_missing_from_the_dictionary_get_a_pronunciation(takes, sphinx):
    """ "Zorblatt" is in no dictionary: letter-to-sound makes it sayable, and a take without it fails."""
    v = verify_take(takes.clean, "Zorblatt the lighthouse keeper climbed the stairs at dusk.", sphinx)
    assert any(n.startswith("letter-to-sound: zorblatt = ") for n in v.notes)
    assert v.verdict == "fail"  # the take neither says "Zorblatt" nor stops after "dusk"


def test_english_only(takes, sphinx):
    with pytest.raises(RecogniserError, match="English only"):
        sphinx.transcribe(takes.clean, "de", ["hallo"])


def test_without_a_hint_it_decodes_freely(takes, sphinx):
    t = sphinx.transcribe(takes.clean, "en")
    assert t.reading is None and len(t.words) > 10
    assert {"lighthouse", "stairs", "father"} & {w.text for w in t.words}


def test_shipped_thresholds_are_the_measured_ones():
    t = THRESHOLDS["pocketsphinx"]
    assert t.max_missing_run >= 1 and t.max_extra_s > 0.0 and "calibrat" in t.note


def test_engines_are_made_by_name():
    from mediamill.verify.recognisers import make

    assert make("pocketsphinx").name == "pocketsphinx"
    with pytest.raises(RecogniserError, match="unknown recogniser 'vosk'"):
        make("vosk")


def test_a_posterior_one_log_step_above_certain_is_a_probability_of_one():
    from mediamill.verify.recognisers.pocketsphinx import _probability

    assert _probability(1.0001) == 1.0 and _probability(-0.0) == 0.0 and _probability(0.81234) == 0.8123


@pytest.mark.parametrize("kind", ["cut", "missing", "extra", "swapped"])
def test_a_take_with_more_wrong_than_a_few_words_is_not_heard_again(takes, sphinx, kind):
    v = verify_take(getattr(takes, kind), takes.text, sphinx)
    assert v.verdict == "fail"
    assert not any(n.startswith("heard again") for n in v.notes)


def test_the_careful_hearing_is_pocketsphinx_at_its_own_settings(takes, sphinx):
    careful = sphinx.careful
    assert careful.settings.ds == 1 and careful.settings.topn == 4 and careful.careful is None  # no third hearing
    assert verify_take(takes.clean, takes.text, careful).verdict == "pass"
    assert verify_take(takes.missing, takes.text, careful).verdict == "fail"
