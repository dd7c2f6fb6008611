"""Splitting long text into readable pieces, and judging generated durations."""

from __future__ import annotations

import wave

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mediamill.engines.reading import BadCaseError, Take, read_aloud
from mediamill.text import predicted_seconds, split_text
from mediamill.verify import DurationCheck


def test_splits_at_sentences_and_keeps_abbreviations_together():
    text = "Dr. Smith met Mr. J. R. Jones at noon. They talked! Did it rain? Yes."
    pieces = [p.text for p in split_text(text, 40)]
    assert pieces == ["Dr. Smith met Mr. J. R. Jones at noon.", "They talked! Did it rain? Yes."]


def test_long_sentences_split_at_clauses_then_words():
    text = "When the lamps were lit, the street woke, the bakers opened, and everyone came out to see the new light"
    pieces = [p.text for p in split_text(text, 30)]
    assert all(len(p) <= 30 for p in pieces)
    assert pieces[0] == "When the lamps were lit,"
    assert " ".join(pieces) == text


def test_paragraphs_get_longer_pauses_and_the_last_piece_none():
    pieces = split_text("One. Two.\n\nThree.", 6, pause_s=0.3, paragraph_pause_s=0.8)
    assert [(p.text, p.pause_after) for p in pieces] == [("One.", 0.3), ("Two.", 0.8), ("Three.", 0.0)]


def test_cjk_sentences_split_without_spaces():
    pieces = [p.text for p in split_text("他走了。我们也走了！然后呢？", 6)]
    assert pieces == ["他走了。", "我们也走了！", "然后呢？"]


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("abc xyz.,!?;\n")), min_size=1, max_size=400), st.integers(1, 80))
def test_pieces_fit_and_lose_no_characters(text, limit):
    pieces = split_text(text, limit)
    assert all(len(p.text) <= limit for p in pieces)
    assert "".join("".join(p.text.split()) for p in pieces) == "".join(text.split())


def test_prediction_scales_with_text_and_script():
    short, long = predicted_seconds("Hello there."), predicted_seconds("Hello there. " * 10)
    assert 0.5 < short < 2 and 9 * short < long < 11 * short
    assert predicted_seconds("我们也走了") > predicted_seconds("women")  # a syllable per character


def test_duration_check_flags_truncation_and_babbling():
    check = DurationCheck(low=0.35, high=3.0, slack_s=1.0, low_slack_s=0.3)
    text = "This sentence takes a few seconds to read aloud for most narrators."
    expected = predicted_seconds(text)
    assert check.judge(expected, text) is None
    assert check.judge(0.2, text).startswith("truncated")
    assert check.judge(expected * 4, text).startswith("babbling")
    assert check.judge(expected, text, hit_cap=True).startswith("babbling")
    assert check.judge(0.3, "Yes.") is None  # tiny texts are not judged on ratios


def _take(seconds: float, rate: int = 8000) -> Take:
    return Take(b"\1\0" * int(seconds * rate), rate)


def test_read_aloud_retakes_bad_pieces_and_joins_with_pauses(tmp_path):
    pieces = split_text("The first sentence is here. The second sentence follows it.", 32, pause_s=0.5)
    calls = []

    def take(text, attempt):
        calls.append((text, attempt))
        good = predicted_seconds(text)
        return _take(0.1 if (text.startswith("The second") and attempt == 0) else good)

    out = tmp_path / "out.wav"
    reading = read_aloud(pieces, take, out, DurationCheck(slack_s=0.5))
    assert calls == [(pieces[0].text, 0), (pieces[1].text, 0), (pieces[1].text, 1)]
    assert (reading.pieces, reading.generations, reading.regenerated) == (2, 3, 1)
    with wave.open(str(out)) as wav:
        seconds = wav.getnframes() / wav.getframerate()
    expected = sum(round(predicted_seconds(p.text) * 8000) / 8000 for p in pieces) + 0.5
    assert seconds == pytest.approx(expected, abs=2e-3)


def test_read_aloud_gives_up_after_its_takes_or_keeps_the_closest(tmp_path):
    pieces = split_text("A sentence that the engine keeps cutting short, every single time.", 200)
    lengths = iter([0.1, 0.4, 0.2])
    with pytest.raises(BadCaseError, match="truncated.*after 3 takes"):
        read_aloud(
            pieces, lambda t, a: _take(next(lengths)), tmp_path / "a.wav", DurationCheck(slack_s=0.1, low_slack_s=0.1)
        )
    lengths = iter([0.1, 0.4, 0.2])
    reading = read_aloud(
        pieces,
        lambda t, a: _take(next(lengths)),
        tmp_path / "b.wav",
        DurationCheck(slack_s=0.1, low_slack_s=0.1),
        keep_bad=True,
    )
    assert reading.generations == 3 and len(reading.kept_bad) == 1 and "truncated" in reading.kept_bad[0]
    assert reading.duration_s == pytest.approx(0.4, abs=1e-3)  # the take closest to the expected length
