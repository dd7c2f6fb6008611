"""The judge on constructed transcripts: WER, missing and extra runs, timings, verdicts."""

from __future__ import annotations

import json

import pytest

from mediamill.verify.judge import THRESHOLDS, Thresholds, judge
from mediamill.verify.recognisers.base import UNKNOWN, Transcript, Word

TEXT = "The quick brown fox jumps over the lazy dog."
WORDS = "the quick brown fox jumps over the lazy dog".split()
STRICT = Thresholds(
    max_missing_run=1, max_missing_share=0.25, max_extra_s=0.6, max_wer=1.0, min_trailing_silence_s=0.02
)


def timed(words, start=0.2, step=0.3):
    return [Word(w, round(start + i * step, 3), round(start + i * step + 0.25, 3), 0.9) for i, w in enumerate(words)]


def grammar_transcript(words, duration=3.5, reading=None, tail=0.3):
    """What a grammar engine (pocketsphinx) returns: the text's words it found, UNKNOWN for other speech."""
    found = reading if reading is not None else WORDS
    return Transcript("pocketsphinx", words, duration, list(found), 0.01, [], tail)


def test_perfect_take_passes_with_zero_error_and_every_timing():
    v = judge(TEXT, grammar_transcript(timed(WORDS)), thresholds=STRICT)
    assert v.verdict == "pass" and v.passed and v.reasons == []
    assert v.wer == 0.0 and v.cer == 0.0 and v.missing == [] and v.extra == []
    assert [t.word for t in v.timings] == WORDS
    assert [t.start_s for t in v.timings] == [round(0.2 + 0.3 * i, 3) for i in range(9)]
    assert all(t.confidence == 0.9 for t in v.timings)


def test_missing_run_is_found_with_where_it_is():
    heard = timed(WORDS[:2], 0.2) + timed(WORDS[5:], 1.6)  # "brown fox jumps" left out
    v = judge(TEXT, grammar_transcript(heard), thresholds=STRICT)
    assert v.verdict == "fail"
    (run,) = v.missing
    assert run.words == ["brown", "fox", "jumps"] and run.index == 2
    assert run.start_s == pytest.approx(0.75) and run.end_s == pytest.approx(1.6)  # between "quick" and "over"
    assert v.wer == pytest.approx(3 / 9, abs=1e-4)
    assert "missing 3 words at 0.75 s" in v.reasons[0]
    assert [t.start_s is None for t in v.timings] == [False, False, True, True, True, False, False, False, False]


def test_one_missing_word_is_within_the_limit():
    heard = timed(WORDS[:6]) + timed(WORDS[7:], 2.1)  # "the" before "lazy" swallowed
    v = judge(TEXT, grammar_transcript(heard), thresholds=STRICT)
    assert v.verdict == "pass"
    assert [r.words for r in v.missing] == [["the"]]


def test_a_missing_tail_ends_at_the_end_of_the_audio():
    v = judge(TEXT, grammar_transcript(timed(WORDS[:4]), duration=1.5, tail=0.0), thresholds=STRICT)
    (run,) = v.missing
    assert run.words == WORDS[4:] and run.start_s == 1.35 and run.end_s == 1.5  # from the last word heard to the end
    assert any("ends mid-speech" in r for r in v.reasons)
    assert any("5 of 9 words missing" in r for r in v.reasons)


def test_extra_speech_is_a_timed_run_of_unknown_words():
    unknown = [Word(UNKNOWN, 3.0 + 0.32 * i, 3.32 + 0.32 * i) for i in range(5)]
    v = judge(TEXT, grammar_transcript(timed(WORDS) + unknown, duration=5.0), thresholds=STRICT)
    assert v.verdict == "fail" and v.missing == []
    (run,) = v.extra
    assert run.words == [UNKNOWN] * 5 and run.start_s == 3.0 and run.seconds == pytest.approx(1.6)
    assert run.index == 9  # after the last expected word
    assert v.wer == pytest.approx(5 / 9, abs=1e-4)
    assert "1.60 s of speech not in the text at 3.00-4.60 s" in v.reasons[0]


def test_short_extra_speech_passes():
    v = judge(TEXT, grammar_transcript(timed(WORDS) + [Word(UNKNOWN, 3.0, 3.3)], duration=4.0), thresholds=STRICT)
    assert v.verdict == "pass" and len(v.extra) == 1


def test_unknown_speech_in_place_of_words_is_both_missing_and_extra():
    heard = timed(WORDS[:3]) + [Word(UNKNOWN, 1.1, 1.4), Word(UNKNOWN, 1.4, 1.7)] + timed(WORDS[5:], 1.8)
    v = judge(TEXT, grammar_transcript(heard), thresholds=STRICT)
    assert [r.words for r in v.missing] == [["fox", "jumps"]]
    assert [r.words for r in v.extra] == [[UNKNOWN, UNKNOWN]]
    assert v.verdict == "fail"


def test_nothing_heard_means_everything_missing():
    v = judge(TEXT, grammar_transcript([], duration=2.0), thresholds=STRICT)
    assert v.verdict == "fail" and v.wer == 1.0 and v.missing[0].words == WORDS


def test_text_without_words():
    quiet = Transcript("pocketsphinx", [], 1.0, [], 0.0, [], 1.0)
    assert judge("...", quiet).verdict == "pass"
    noisy = Transcript("pocketsphinx", [Word(UNKNOWN, 0.1, 0.5)], 1.0, [], 0.0, [], 0.2)
    assert judge("...", noisy).verdict == "fail"


def test_grammar_engine_reading_is_the_reference():
    """A grammar engine says which reading of "1999" it followed; the judge compares against that one."""
    reading = "in nineteen hundred ninety nine".split()
    v = judge("In 1999.", grammar_transcript(timed(reading), reading=reading), thresholds=STRICT)
    assert v.wer == 0.0 and [t.word for t in v.timings] == reading


def test_free_engine_words_are_normalised_and_readings_chosen():
    """Whisper writes "320" and "$45"; they match the text's readings, and their time is shared out."""
    heard = [
        Word("He", 0.0, 0.2),
        Word("sold", 0.2, 0.5),
        Word("320", 0.5, 1.4),
        Word("apples,", 1.4, 1.8),
        Word("for", 1.8, 2.0),
        Word("$45.", 2.0, 2.6),
    ]
    t = Transcript("whisper", heard, 3.0, None, 0.1, [], 0.3)
    v = judge("He sold three hundred twenty apples for 45 dollars.", t)
    assert v.verdict == "pass"
    assert [x.word for x in v.timings][2:5] == ["three", "hundred", "twenty"]
    assert v.timings[2].start_s == 0.5 and v.timings[4].end_s == pytest.approx(1.4)
    assert v.wer == 0.0


def test_free_engine_misheard_word_is_tolerated_but_a_high_wer_is_not():
    good = Transcript("whisper", timed("the quick brown box jumps over the lazy dog".split()), 3.5, None, 0.0, [], 0.3)
    assert judge(TEXT, good).verdict == "pass"
    bad = Transcript("whisper", timed("a quick round box jumped over a hazy log".split()), 3.5, None, 0.0, [], 0.3)
    v = judge(TEXT, bad)
    assert v.verdict == "fail" and any(r.startswith("WER") for r in v.reasons)


def test_thresholds_live_in_one_table_per_engine():
    assert set(THRESHOLDS) >= {"pocketsphinx", "whisper"}
    assert THRESHOLDS["pocketsphinx"].note and THRESHOLDS["whisper"].note == "not measured"


def test_verdict_serialises_for_the_store():
    v = judge(TEXT, grammar_transcript(timed(WORDS[:4]), duration=1.3, tail=0.0), thresholds=STRICT)
    doc = json.loads(json.dumps(v.to_json()))
    assert doc["verdict"] == "fail" and doc["timings"][0] == {
        "word": "the",
        "start_s": 0.2,
        "end_s": 0.45,
        "confidence": 0.9,
    }
    assert doc["missing"][0]["words"] == WORDS[4:]


def test_words_the_engine_could_not_listen_for_are_excused():
    """No pronunciation for "xiomara": the unknown speech in its place is that word, not a defect."""
    words = "xiomara kept a notebook".split()
    heard = [Word(UNKNOWN, 0.1, 0.4), Word(UNKNOWN, 0.4, 0.7), Word(UNKNOWN, 0.7, 0.95)] + timed(words[1:], 1.0)
    t = Transcript("pocketsphinx", heard, 2.0, words, 0.0, [], 0.3, unchecked=["xiomara"])
    v = judge("Xiomara kept a notebook.", t, thresholds=STRICT)
    assert v.verdict == "pass" and v.missing == [] and v.extra == [] and v.wer == 0.0
    assert (v.timings[0].start_s, v.timings[0].end_s, v.timings[0].confidence) == (0.1, 0.95, None)
    # Without the excuse the same transcript fails, and far more speech than a word is never excused.
    assert (
        judge(
            "Xiomara kept a notebook.", Transcript("pocketsphinx", heard, 2.0, words, 0.0, [], 0.3), thresholds=STRICT
        ).verdict
        == "fail"
    )
    long = [Word(UNKNOWN, 0.1 + 0.32 * i, 0.42 + 0.32 * i) for i in range(6)] + timed(words[1:], 2.2)
    t = Transcript("pocketsphinx", long, 3.5, words, 0.0, [], 0.3, unchecked=["xiomara"])
    assert judge("Xiomara kept a notebook.", t, thresholds=STRICT).verdict == "fail"


LONG = (
    "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of "
    "foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the season of Light."
)
LONG_WORDS = [w.strip(",.").lower() for w in LONG.split()]


class _Hearing:
    """A recogniser that hears ``words`` of LONG, with ``extra_s`` of unknown speech at the end; ``careful``,
    another one or None."""

    name = "pocketsphinx"
    languages = frozenset({"en"})

    def __init__(self, words, careful=None, extra_s=0.0):
        self.words, self.careful, self.extra_s, self.calls = words, careful, extra_s, 0

    def transcribe(self, audio_path, language="en", hint=None):
        self.calls += 1
        words = timed(self.words)
        if self.extra_s:
            end = words[-1].end_s
            words.append(Word(UNKNOWN, end + 0.05, round(end + 0.05 + self.extra_s, 3)))
        return Transcript("pocketsphinx", words, words[-1].end_s + 0.5, list(LONG_WORDS), 0.01, [], 0.3)


def _without(*drop):
    return [w for i, w in enumerate(LONG_WORDS) if i not in drop]


def test_a_take_the_quick_hearing_fails_for_a_few_words_is_judged_by_the_careful_hearing():
    from mediamill.verify.judge import verify_take

    careful = _Hearing(LONG_WORDS)
    v = verify_take("take.wav", LONG, _Hearing(_without(20, 21, 22), careful), thresholds=STRICT)
    assert v.verdict == "pass" and careful.calls == 1
    assert v.notes[0].startswith("heard again carefully: the quick hearing missed missing 3 words")
    # both hearings missing the words: it fails, with the careful hearing's reasons
    v = verify_take("take.wav", LONG, _Hearing(_without(20, 21, 22), _Hearing(_without(21, 22))), thresholds=STRICT)
    assert v.verdict == "fail" and v.reasons[0].startswith("missing 2 words")


def test_only_a_few_missing_words_are_heard_again():
    """A wider search fits a text onto other speech: a take missing many words, or with speech the text
    lacks, keeps the quick hearing's verdict; a passing take is heard once."""
    from mediamill.verify.judge import verify_take

    for quick in (
        _Hearing(_without(*range(5, 12)), _Hearing(LONG_WORDS)),  # 7 of 42 words: a sentence gone
        _Hearing(LONG_WORDS, _Hearing(LONG_WORDS), extra_s=2.0),  # extra speech
        _Hearing(_without(3, 4), _Hearing(LONG_WORDS), extra_s=2.0),
    ):  # both
        assert verify_take("take.wav", LONG, quick, thresholds=STRICT).verdict == "fail"
        assert quick.careful.calls == 0
    careful = _Hearing(_without(3, 4))
    assert verify_take("take.wav", LONG, _Hearing(LONG_WORDS, careful), thresholds=STRICT).verdict == "pass"
    assert careful.calls == 0
    assert verify_take("take.wav", LONG, _Hearing(_without(3, 4)), thresholds=STRICT).verdict == "fail"  # none to ask
