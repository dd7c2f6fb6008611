"""The verdict on one take: does it say what its row says?

Contract: ``judge(expected, transcript, language="en")`` compares the
expected text (a string, or spans from ``text_normalize.spans``) with what a
recogniser heard and returns a ``Verdict``: ``pass``/``fail`` with reasons,
WER and CER (jiwer), runs of missing words and runs of extra words (each with
where it is in the audio, seconds), and a start/end (or None) for every
expected word. ``verify_take(audio, text, recogniser)`` runs a recogniser and
judges its result. Thresholds are per engine, here and only here
(``THRESHOLDS``); bench/verify.py measured the values (README, "Verification").

How it compares: the reference is the expected text read the way the take
read it (a grammar engine reports the readings it followed; for a free
engine, each number takes the reading closest to the transcript), aligned
word for word with the heard words (jiwer's edit-distance alignment). A
*missing run* is a stretch of expected words that were deleted or replaced; an
*extra run* a stretch of heard words that were inserted or replace expected
ones, ``UNKNOWN`` words included. A take fails when a missing run is longer
than the engine's limit, too large a share of words is missing, an extra run
is longer (in seconds) than the limit, the WER is above the limit, or the
audio ends in speech rather than quiet (a take cut short; generated speech
ends in silence, so this holds only for takes as the engine made them, not
for takes trimmed afterwards).

With a grammar engine (pocketsphinx) words can only be missing or unknown,
never misheard as other words: its WER counts skipped words and uncovered
speech, about one word per 0.32 s.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import jiwer

from ..text.normalize import Lexicon, Span, spans
from .recognisers.base import UNKNOWN, Recogniser, Transcript, Word


@dataclass(frozen=True)
class Thresholds:
    """Limits beyond which a take fails. Equal to a limit still passes."""

    max_missing_run: int  # expected words in one missing run
    max_missing_share: float  # share of all expected words missing
    max_extra_s: float  # seconds of one extra run
    max_wer: float  # word error rate
    min_trailing_silence_s: float = 0.0  # quiet that must end a take (generated speech ends in silence)
    note: str = ""  # where the values come from


# pocketsphinx: calibrated on half of the Piper corpus (bench/verify.py, seed 7) and checked on the other
# half; README ("Verification") has the rates behind them. The trailing-silence limit is a property of the audio, so the
# same value serves every engine.
THRESHOLDS: dict[str, Thresholds] = {
    "pocketsphinx": Thresholds(
        max_missing_run=1,
        max_missing_share=0.25,
        max_extra_s=0.2,
        max_wer=1.0,
        min_trailing_silence_s=0.03,
        note="calibrated on Piper takes (bench/verify.py --seed 7): see README, Verification",
    ),
    # Not measured: no Whisper weights can be had here. Conservative values for a free engine,
    # which also mishears single words: runs of several words, or a high WER, fail.
    "whisper": Thresholds(
        max_missing_run=3,
        max_missing_share=0.3,
        max_extra_s=1.5,
        max_wer=0.35,
        min_trailing_silence_s=0.03,
        note="not measured",
    ),
}
UNCHECKED_WORD_S = 1.0  # speech that may stand for one word the engine could not listen for
DEFAULT = Thresholds(
    max_missing_run=3, max_missing_share=0.3, max_extra_s=1.5, max_wer=0.35, note="default, not measured"
)


@dataclass
class Run:
    """Consecutive missing (expected) or extra (heard) words, and where they are in the audio.

    A missing run's ``start_s``/``end_s`` is the gap between the heard words around it (for a take cut
    short: from the last word heard to the end); ``seconds`` is that gap. An extra run spans its heard
    words, and ``seconds`` is how long they last together (pauses between them not counted).
    """

    words: list[str]
    start_s: float
    end_s: float
    index: int  # first expected word at or after the run
    seconds: float


@dataclass
class Timing:
    word: str
    start_s: float | None
    end_s: float | None
    confidence: float | None = None


@dataclass
class Verdict:
    verdict: str  # "pass" or "fail"
    reasons: list[str]
    wer: float
    cer: float
    missing: list[Run]
    extra: list[Run]
    timings: list[Timing]
    engine: str
    duration_s: float
    elapsed_s: float = 0.0
    notes: list[str] = field(default_factory=list)
    thresholds: dict = field(default_factory=dict)  # the limits it was judged by

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    def to_json(self) -> dict:
        """For the store, beside the take: every field, word timings included."""
        return asdict(self)


def _choose_readings(expected: list[Span], heard: list[str]) -> list[str]:
    """Each span's reading that shares most words with what was heard (a free engine's reference)."""
    bag = Counter(heard)
    out: list[str] = []
    for span in expected:
        best = max(span.readings, key=lambda r: sum(min(bag[w], c) for w, c in Counter[str](r).items()) - 0.01 * len(r))
        out += best
    return out


def _heard_words(transcript: Transcript, language: str, expected: list[Span]) -> list[Word]:
    """Heard words, normalised like the text ("320" -> three hundred twenty), times shared out.

    Where a heard word has several readings, the one closest to the expected
    text's words is taken, so "320" heard and "three hundred twenty" written agree.
    """
    if transcript.reading is not None:  # a grammar engine's words are already the text's words
        return list(transcript.words)
    bag = Counter(w for span in expected for reading in span.readings for w in reading)
    out: list[Word] = []
    for word in transcript.words:
        if word.text == UNKNOWN:
            parts = [UNKNOWN]
        else:
            parts = _choose_readings(spans(word.text, language), list(bag.elements()))
        step = (word.end_s - word.start_s) / max(1, len(parts))
        out += [
            Word(p, round(word.start_s + i * step, 3), round(word.start_s + (i + 1) * step, 3), word.confidence)
            for i, p in enumerate(parts)
        ]
    return out


def _blocks(ref: list[str], hyp: list[str]) -> list[tuple[str, range, range]]:
    """jiwer's alignment with neighbouring differences merged: ("equal" | "differ", ref range, hyp range).

    jiwer may split one stretch of difference into a substitution and an
    insertion; a run of missing or extra words is the whole stretch.
    """
    out: list[tuple[str, range, range]] = []
    for chunk in jiwer.process_words(" ".join(ref), " ".join(hyp)).alignments[0]:
        kind = "equal" if chunk.type == "equal" else "differ"
        refs, hyps = range(chunk.ref_start_idx, chunk.ref_end_idx), range(chunk.hyp_start_idx, chunk.hyp_end_idx)
        if out and kind == "differ" and out[-1][0] == "differ":
            _, r0, h0 = out.pop()
            refs, hyps = range(r0.start, refs.stop), range(h0.start, hyps.stop)
        out.append((kind, refs, hyps))
    return out


def _excuse(ref: list[str], heard: list[Word], unchecked: set[str]) -> list[Word]:
    """Heard words with the speech where an unchecked word should be put back as that word.

    An engine that could not listen for a word (no pronunciation) hears unknown
    speech, or nothing, in its place; up to ``UNCHECKED_WORD_S`` seconds of it per word
    is taken to be the word, neither missing nor extra.
    """
    if not unchecked or not heard or not ref:
        return heard
    fixed: list[Word] = []
    done = 0
    for kind, refs, hyps in _blocks(ref, [w.text for w in heard]):
        said = [heard[h] for h in hyps]
        if (
            kind == "differ"
            and refs
            and {ref[r] for r in refs} <= unchecked
            and all(w.text == UNKNOWN for w in said)
            and sum(w.end_s - w.start_s for w in said) <= UNCHECKED_WORD_S * len(refs)
        ):
            fixed += heard[done : hyps.start]
            start = said[0].start_s if said else (heard[hyps.start - 1].end_s if hyps.start else 0.0)
            step = ((said[-1].end_s if said else start) - start) / len(refs)
            fixed += [
                Word(ref[r], round(start + i * step, 3), round(start + (i + 1) * step, 3)) for i, r in enumerate(refs)
            ]
            done = hyps.stop
    return fixed + heard[done:]


def _compare(ref: list[str], heard: list[Word], end: float):
    """Align the reference with what was heard: (timings, missing runs, extra runs, WER, CER)."""
    timings = [Timing(w, None, None) for w in ref]
    hyp = [w.text for w in heard]
    if not hyp:
        return timings, [Run(list(ref), 0.0, end, 0, round(end, 3))], [], 1.0, 1.0
    missing: list[Run] = []
    extra: list[Run] = []
    for kind, refs, hyps in _blocks(ref, hyp):
        if kind == "equal":
            for r, h in zip(refs, hyps):
                timings[r] = Timing(ref[r], heard[h].start_s, heard[h].end_s, heard[h].confidence)
            continue
        before = heard[hyps.start - 1].end_s if hyps.start > 0 else 0.0
        after = heard[hyps.stop].start_s if hyps.stop < len(heard) else end
        if refs:  # deleted or replaced: expected words not heard
            gap = (round(before, 3), round(max(before, after), 3))
            missing.append(Run([ref[r] for r in refs], *gap, refs.start, round(gap[1] - gap[0], 3)))
        if hyps:  # inserted or replacing: heard words not expected
            span = [heard[h] for h in hyps]
            speech = round(sum(w.end_s - w.start_s for w in span), 3)
            extra.append(Run([w.text for w in span], span[0].start_s, span[-1].end_s, refs.start, speech))
    out = jiwer.process_words(" ".join(ref), " ".join(hyp))
    return timings, missing, extra, float(out.wer), float(jiwer.cer(" ".join(ref), " ".join(hyp)))


def _reasons(limits: Thresholds, ref, missing, extra, wer, trailing_silence_s) -> list[str]:
    reasons: list[str] = []
    longest = max(missing, key=lambda r: len(r.words), default=None)
    if longest is not None and len(longest.words) > limits.max_missing_run:
        reasons.append(f"missing {len(longest.words)} words at {longest.start_s:.2f} s: '{_excerpt(longest.words)}'")
    missing_count = sum(len(r.words) for r in missing)
    if ref and missing_count / len(ref) > limits.max_missing_share:
        reasons.append(f"{missing_count} of {len(ref)} words missing")
    worst = max(extra, key=lambda r: r.seconds, default=None)
    if worst is not None and worst.seconds > limits.max_extra_s:
        reasons.append(f"{worst.seconds:.2f} s of speech not in the text at {worst.start_s:.2f}-{worst.end_s:.2f} s")
    if wer > limits.max_wer:
        reasons.append(f"WER {wer:.2f} above {limits.max_wer:.2f}")
    if trailing_silence_s is not None and trailing_silence_s < limits.min_trailing_silence_s:
        reasons.append(f"the audio ends mid-speech ({trailing_silence_s:.2f} s of quiet at the end): cut short?")
    return reasons


def judge(
    expected: str | list[Span],
    transcript: Transcript,
    language: str = "en",
    thresholds: Thresholds | None = None,
    say: Lexicon = None,
) -> Verdict:
    """The verdict on ``transcript`` for the expected text (see the module's docstring)."""
    limits = thresholds or THRESHOLDS.get(transcript.engine, DEFAULT)
    expected_spans = spans(expected, language, say) if isinstance(expected, str) else list(expected)
    heard = _heard_words(transcript, language, expected_spans)
    if transcript.reading is not None:
        ref = list(transcript.reading)
    else:
        ref = _choose_readings(expected_spans, [w.text for w in heard])
    end = transcript.duration_s
    heard = _excuse(ref, heard, set(transcript.unchecked))
    if ref:
        timings, missing, extra, wer, cer = _compare(ref, heard, end)
    else:  # a text with nothing to say: any speech is extra
        speech = round(sum(w.end_s - w.start_s for w in heard), 3)
        extra = [Run([w.text for w in heard], heard[0].start_s, heard[-1].end_s, 0, speech)] if heard else []
        timings, missing, wer, cer = [], [], float(bool(heard)), float(bool(heard))
    reasons = _reasons(limits, ref, missing, extra, wer, transcript.trailing_silence_s)
    if not ref and heard:
        reasons.insert(0, "speech where the text has no words to say")
    return Verdict(
        "fail" if reasons else "pass",
        reasons,
        round(wer, 4),
        round(cer, 4),
        missing,
        extra,
        timings,
        transcript.engine,
        end,
        transcript.elapsed_s,
        list(transcript.notes),
        asdict(limits),
    )


# The careful hearing may overturn a failed quick one only when all it found wrong is a few missing words
# (at most this share of the text) in a take otherwise heard word for word: a wider search also fits a text
# onto speech that is not it (in bench/verify.py another row's take of the same length passed it).
CAREFUL_MAX_MISSING_SHARE = 0.1


def verify_take(
    audio_path: str | Path,
    text: str,
    recogniser: Recogniser,
    language: str = "en",
    say: Lexicon = None,
    thresholds: Thresholds | None = None,
) -> Verdict:
    """Recognise ``audio_path`` with ``text`` as the hint, and judge it.

    A take that fails only for a few missing words (``CAREFUL_MAX_MISSING_SHARE``) is heard again by the
    recogniser's ``careful`` hearing, when it has one (a slower search that loses fewer correct words), and
    that hearing's verdict is the take's."""
    expected = spans(text, language, say)
    verdict = judge(expected, recogniser.transcribe(audio_path, language, expected), language, thresholds)
    careful: Recogniser | None = getattr(recogniser, "careful", None)
    if verdict.verdict == "pass" or careful is None or not _a_few_words_missing(verdict):
        return verdict
    second = judge(expected, careful.transcribe(audio_path, language, expected), language, thresholds)
    second.elapsed_s += verdict.elapsed_s
    second.notes.insert(0, "heard again carefully: the quick hearing missed " + verdict.reasons[0])
    return second


def _a_few_words_missing(v: Verdict) -> bool:
    """Is all that failed ``v`` missing words, at most ``CAREFUL_MAX_MISSING_SHARE`` of them?"""
    limits = Thresholds(**v.thresholds)
    missing = sum(len(r.words) for r in v.missing)
    return (
        bool(v.timings)
        and 0 < missing <= CAREFUL_MAX_MISSING_SHARE * len(v.timings)
        and all(r.seconds <= limits.max_extra_s for r in v.extra)
        and not any(r.startswith("the audio ends mid-speech") for r in v.reasons)
        and v.wer <= limits.max_wer
    )


def _excerpt(words: list[str], width: int = 8) -> str:
    return " ".join(words[:width]) + (" ..." if len(words) > width else "")
