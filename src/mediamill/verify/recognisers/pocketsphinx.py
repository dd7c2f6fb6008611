"""pocketsphinx: the embedded, offline recogniser (English, CPU, no downloads).

Contract: ``PocketsphinxRecogniser().transcribe(path, "en", hint)`` decodes the
take against grammars built from the hint and returns the hint's words it
found (times from 10 ms frames, posterior confidences where the pass gives
them) plus ``UNKNOWN`` words over speech that no found word covers. Without a
hint it decodes freely with the bundled n-gram model (slow, and about 35 %
WER on Piper's voice: not used for verdicts).

Why grammars: pocketsphinx recognises Piper's voice poorly when free, but
aligns a known text to it well. Up to three passes, all FSG searches:

1. *strict*, always: the text as a chain of spans, each with its readings
   ("1999" as "nineteen ninety nine" or "nineteen hundred ninety nine"...),
   silence and noise fillers between words. About 100-170x real time on one
   core. A take that lacks words finds no path through it (the search must end
   on the text's last word); a take with extra speech usually does, the extra
   speech landing in fillers, where ``coverage.uncovered_speech`` finds it.
2. *gapped*, only when pass 1 finds no path: the same chain plus *skips*,
   empty arcs over one or more spans (opening a gap costs more than widening
   it; arcs to the end and from the start cost the same at any length, for
   takes cut short or missing their opening), so the take reaches the end of
   the text and the skipped spans are the missing words. If even that finds no
   path (a word cut in half at the very end), it is tried again with a loop of
   phones at the end to take up the fragment.
3. *located*, only when pass 1 leaves more than ``LOCATE_S`` of speech
   uncovered: the strict chain with loops of phones at the start, the end and
   each sentence or clause boundary, so extra speech is placed where it is
   rather than where stretching the text's words over it costs least.

Passes 2 and 3 run only on takes that fail (or nearly), so a clean take costs
one strict pass. Speech outside the found words becomes ``UNKNOWN`` words, one
per ``WORD_S`` seconds of it. Phone loops at every word boundary were
measured too: 10-50x slower and they absorbed real words (README, "Verification").

pocketsphinx's FSG search follows one empty arc per step and ``create_fsg``
adds no closure, so skips are added pairwise within ``GrammarCosts.window``
spans. The bestpath lattice (posteriors, the words' confidences) is made for
the strict pass only: on a grammar with skips or phone loops it can take
minutes, so words from passes 2 and 3 have no confidence.

A take these passes fail only for a few missing words is heard once more by
``careful``, the same passes at pocketsphinx's full settings, and judged by
that hearing (``judge.verify_take`` decides when, for any recogniser that has
one): the quick settings sometimes lose a correct take's path through a few
words.

Per thread, a strict and a gapped ``Decoder`` (also used by pass 3), made on
first use, about 0.15 s and 30 MB each (as many again once a take is heard
carefully). The extension holds the GIL while
decoding, so threads take turns: run processes to verify in parallel.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ...media.pcm import duration_s
from ...text.normalize import Span
from . import arpabet
from .base import UNKNOWN, Hint, NoMatch, RecogniserError, Transcript, Word, as_spans, take_pcm
from .coverage import speech_mask, tightened, trailing_silence_s, uncovered_speech

FRAME_S = 0.01
MAX_SPANS = 400  # a verified row is a sentence or a paragraph; longer texts are refused
_PHONES = sorted(arpabet.PHONES)
_PHONE_WORDS = [f"+phone+{p.lower()}" for p in _PHONES]  # one-phone words, for phone loops
LOCATE_S = 0.3  # uncovered speech after pass 1 that is worth locating (pass 3)
WORD_S = 0.32  # typical length of a spoken word, to count the words in uncovered speech


@dataclass(frozen=True)
class GrammarCosts:
    """Penalties on the arcs of passes 2 and 3, in nats of log-probability.

    pocketsphinx scales a grammar arc's log-probability by its language weight
    (``lw``) and drops empty arcs below its word beam (``wbeam``), so the
    probabilities given to the decoder are ``exp(-nats / lw)`` and the gapped
    decoder's word beam is widened to admit the dearest skip.
    """

    skip_open: float = 15.0  # leaving out one span
    skip_extend: float = 1.5  # each further span in the same gap
    skip_edge: float = 30.0  # from the start, or to the end, over any number of spans
    window: int = 20  # longest gap in the middle of the text, in spans
    tail_phone: float = 4.0  # each phone of the loop that takes up a word cut off at the end
    garbage_enter: float = 10.0  # starting speech the text does not cover, at a sentence or clause boundary
    garbage_phone: float = 2.0  # each phone of it
    silence: float = 0.005  # entering a silence between words (pocketsphinx's silprob)
    filler: float = 1e-8  # entering a noise or [SPEECH] filler (fillprob)

    def dearest(self) -> float:
        return max(self.skip_edge, self.skip_open + self.skip_extend * (self.window - 1))


@dataclass(frozen=True)
class DecoderSettings:
    """pocketsphinx options: accuracy for speed (measured: README, "Verification")."""

    ds: int = 2  # score the Gaussians of every 2nd frame
    topn: int = 2  # Gaussians per mixture
    beam: float = 1e-40
    wbeam: float = 1e-30
    pbeam: float = 1e-40
    lw: float = 6.5  # the language weight that scales grammar costs
    maxhmmpf: int = 5000

    def kwargs(self) -> dict:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


# pocketsphinx's own defaults: every frame, 4 Gaussians, wide beams. 1.5-3x slower than the quick settings;
# used to hear again a take the quick settings fail for a few missing words (``careful``).
CAREFUL = DecoderSettings(ds=1, topn=4, beam=1e-48, wbeam=7e-29, pbeam=1e-48, maxhmmpf=30000)


class PocketsphinxRecogniser:
    name = "pocketsphinx"
    languages = frozenset({"en"})

    def __init__(self, costs: GrammarCosts | None = None, settings: DecoderSettings | None = None) -> None:
        try:
            import pocketsphinx  # noqa: F401
        except ImportError:
            raise RecogniserError("the pocketsphinx recogniser needs: pip install pocketsphinx") from None
        self.costs = costs or GrammarCosts()
        self.settings = settings or DecoderSettings()
        self._local = threading.local()
        self._guessed: dict[str, tuple[str, ...]] = {}  # words the dictionary lacks -> letter-to-sound phones
        self.load_s = 0.0  # seconds spent making decoders, all threads
        self._careful: PocketsphinxRecogniser | None = None
        self._careful_lock = threading.Lock()

    @property
    def careful(self) -> PocketsphinxRecogniser | None:
        """The same recogniser at pocketsphinx's full settings (``CAREFUL``), made on first use; None when these
        are those. The quick settings prune the search hard, and on some correct takes lose the path through a
        few words (Moby-Dick, "his countenance yet had a something": 5 of 5 takes failed quick, passed careful)."""
        if self.settings == CAREFUL:
            return None
        with self._careful_lock:
            if self._careful is None:
                self._careful = PocketsphinxRecogniser(self.costs, CAREFUL)
            return self._careful

    # -- decoders -------------------------------------------------------------
    def _decoder(self, kind: str):
        """This thread's decoder: "strict" (with posteriors), "gapped", or "free" (n-gram)."""
        decoders = getattr(self._local, "decoders", None)
        if decoders is None:
            decoders = self._local.decoders = {}
        if kind not in decoders:
            from pocketsphinx import Decoder

            started = time.perf_counter()
            if kind == "free":
                decoders[kind] = Decoder(loglevel="FATAL")
            else:
                options = self.settings.kwargs()
                if kind == "gapped":
                    c = self.costs
                    options.update(silprob=c.silence, fillprob=c.filler)
                    options["wbeam"] = min(options["wbeam"], math.exp(-(c.dearest() + 20.0)))
                decoder = decoders[kind] = Decoder(loglevel="FATAL", lm=None, bestpath=kind == "strict", **options)
                for i, (word, phone) in enumerate(zip(_PHONE_WORDS, _PHONES)):  # the last add rebuilds once
                    decoder.add_word(word, phone, update=i == len(_PHONES) - 1)
            self.load_s += time.perf_counter() - started
        return decoders[kind]

    def _known(self, decoder, word: str, notes: list[str]) -> str | None:
        """``word`` once it is in ``decoder``'s dictionary (a letter-to-sound guess if need be); None if unsayable."""
        guessed = self._guessed.get(word)
        if guessed is None and decoder.lookup_word(word) is not None:
            return word
        if guessed is None:
            guessed = self._guessed[word] = arpabet.guess(word) or ()
        if not guessed:
            notes.append(f"no pronunciation for '{word}'")
            return None
        if decoder.lookup_word(word) is None:  # each thread's decoders learn it once
            decoder.add_word(word, " ".join(guessed), update=True)
        notes.append(f"letter-to-sound: {word} = {' '.join(guessed)}")
        return word

    # -- grammars -------------------------------------------------------------
    def _chain(self, decoder, spans: Sequence[Span], notes: list[str]) -> tuple[list[tuple], int]:
        """Word arcs for every reading of every span: state k is the boundary before span k."""
        n = len(spans)
        state = n + 1
        trans: list[tuple] = []
        for k, span in enumerate(spans):
            sayable = False
            for reading in span.readings:
                words = [self._known(decoder, w, notes) for w in reading]
                if any(w is None for w in words):
                    continue
                sayable = True
                prev = k
                for i, w in enumerate(words):
                    nxt = k + 1 if i == len(words) - 1 else state
                    state += nxt == state
                    trans.append((prev, nxt, 1.0, w))
                    prev = nxt
            if not sayable:  # no pronunciation at all: an empty arc; the judge excuses the speech there
                trans.append((k, k + 1, 1.0))
        return trans, state

    def _skips(self, n: int, free_state: int, tail_loop: bool) -> list[tuple]:
        c = self.costs
        lw = self.settings.lw

        def prob(nats: float) -> float:
            return math.exp(-nats / lw)

        trans: list[tuple] = []
        for i in range(n):
            for j in range(i + 1, min(n, i + c.window) + 1):
                trans.append((i, j, prob(c.skip_open + c.skip_extend * (j - i - 1))))
            if i + c.window < n:
                trans.append((i, n, prob(c.skip_edge)))
        trans += [(0, j, prob(c.skip_edge)) for j in range(c.window + 1, n)]
        if not tail_loop:
            return trans
        # A phone loop at the end takes up the part of a word a cut leaves, so a path always ends;
        # the end is reachable from everywhere, so the loop is always active: 3-10x slower, kept for retries.
        loop = free_state
        for phone in _PHONE_WORDS:
            trans.append((n, loop, prob(c.tail_phone), phone))
            trans.append((loop, loop, prob(c.tail_phone), phone))
        trans.append((loop, n, 1.0))
        return trans

    def _decode(self, decoder, grammar, pcm: bytes) -> list | None:
        decoder.add_fsg("reading", grammar)
        decoder.activate_search("reading")
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        if decoder.hyp() is None:  # no path reached the end of the text
            return None
        return list(decoder.seg())

    def _garbage(self, spans: Sequence[Span], free_state: int) -> list[tuple]:
        """Phone loops at the start, the end and every sentence or clause boundary."""
        c = self.costs
        lw = self.settings.lw
        n = len(spans)
        at = [0, n] + [k for k in range(1, n) if spans[k - 1].pause]
        trans: list[tuple] = []
        for b in sorted(set(at)):
            loop = free_state
            free_state += 1
            for phone in _PHONE_WORDS:
                trans.append((b, loop, math.exp(-c.garbage_enter / lw), phone))
                trans.append((loop, loop, math.exp(-c.garbage_phone / lw), phone))
            trans.append((loop, b, 1.0))
        return trans

    # -- the passes -----------------------------------------------------------
    def _strict(self, spans: Sequence[Span], pcm: bytes, notes: list[str]) -> list[Word] | None:
        """Pass 1: the text's words in order, nothing left out; None if no path fits the take."""
        decoder = self._decoder("strict")
        chain, _ = self._chain(decoder, spans, notes)
        segs = self._decode(decoder, decoder.create_fsg("reading", 0, len(spans), chain), pcm)
        return None if segs is None else _words(segs, confident=True)

    def _gapped(self, spans: Sequence[Span], pcm: bytes, notes: list[str]) -> list[Word]:
        """Pass 2: the text's words with skips, so missing words are left out; a phone loop at the end if need be."""
        decoder = self._decoder("gapped")
        chain, free_state = self._chain(decoder, spans, [])
        for tail_loop in (False, True):
            skips = self._skips(len(spans), free_state, tail_loop)
            segs = self._decode(decoder, decoder.create_fsg("reading", 0, len(spans), chain + skips), pcm)
            if segs is not None:
                return _words(segs, confident=False)
            notes.append("gapped grammar found no path" + ("" if tail_loop else "; again with a phone loop at the end"))
        raise NoMatch("no path through the gapped grammar: none of the text can be heard in the take")

    def _locate(self, spans: Sequence[Span], pcm: bytes) -> list[Word] | None:
        """Pass 3: every word of the text, with phone loops where extra speech may sit; None if no path."""
        decoder = self._decoder("gapped")
        chain, free_state = self._chain(decoder, spans, [])
        grammar = decoder.create_fsg("reading", 0, len(spans), chain + self._garbage(spans, free_state))
        segs = self._decode(decoder, grammar, pcm)
        return None if segs is None else _words(segs, confident=False)

    # -- the protocol ---------------------------------------------------------
    def transcribe(self, audio_path: str | Path, language: str = "en", hint: Hint = None) -> Transcript:
        if (language or "en").split("-")[0].lower() not in self.languages:
            raise RecogniserError(f"pocketsphinx hears English only, not '{language}'")
        started = time.perf_counter()
        pcm = take_pcm(audio_path)
        spans = as_spans(hint)
        if not spans:
            return self._free(pcm, started)
        if len(spans) > MAX_SPANS:
            raise RecogniserError(f"text too long to verify in one piece ({len(spans)} spans; at most {MAX_SPANS})")
        notes: list[str] = []
        mask = speech_mask(pcm)
        words = self._strict(spans, pcm, notes)
        if words is None:
            notes.append("strict alignment found no path")
            words = self._gapped(spans, pcm, notes)
        elif any(s >= LOCATE_S for _, _, s in uncovered_speech(pcm, _times(words), mask)):
            # The strict pass puts extra speech where it costs least, often stretching words over it;
            # phone loops at sentence and clause boundaries put it where it is.
            located = self._locate(spans, pcm)
            if located is not None:
                notes.append("extra speech located with phone loops")
                words = located
        heard = [w.text for w in words]
        extra = _unknown(uncovered_speech(pcm, _times(words), mask))
        words = sorted(tightened(words, mask) + extra, key=lambda w: w.start_s)
        unchecked = sorted({n.split("'")[1] for n in notes if n.startswith("no pronunciation for")})
        return Transcript(
            self.name,
            words,
            duration_s(pcm),
            _reading(spans, heard),
            time.perf_counter() - started,
            notes,
            trailing_silence_s(mask),
            unchecked,
        )

    def _free(self, pcm: bytes, started: float) -> Transcript:
        """Free decoding with the bundled language model (no hint)."""
        lm = self._decoder("free")
        lm.start_utt()
        lm.process_raw(pcm, full_utt=True)
        lm.end_utt()
        return Transcript(
            self.name, _words(list(lm.seg()), confident=True), duration_s(pcm), None, time.perf_counter() - started
        )


def _words(segs: list, confident: bool) -> list[Word]:
    """Real words of a segmentation (fillers, silences and empty arcs dropped)."""
    out = []
    for seg in segs:
        word = seg.word
        if word.startswith(("<", "[", "(", "+phone+")):  # <sil>, [NOISE], (NULL), the end's phone loop
            continue
        out.append(
            Word(
                word.split("(")[0],  # "every(2)": an alternative pronunciation
                round(seg.start_frame * FRAME_S, 3),
                round((seg.end_frame + 1) * FRAME_S, 3),
                _probability(seg.prob) if confident else None,
            )
        )
    return out


def _probability(posterior: float) -> float:
    """A word's posterior as a probability: pocketsphinx sums in integer logs of base 1.0001, so a certain
    word can come out one step above 1 (1.0001), depending on the lattice the earlier utterances left."""
    return round(min(1.0, max(0.0, float(posterior))), 4)


def _times(words: list[Word]) -> list[tuple[float, float]]:
    return [(w.start_s, w.end_s) for w in words]


def _unknown(regions: list[tuple[float, float, float]]) -> list[Word]:
    """Uncovered speech as UNKNOWN words, about one per ``WORD_S`` seconds of speech."""
    out: list[Word] = []
    for start, end, speech in regions:
        count = max(1, round(speech / WORD_S))
        step = (end - start) / count
        out += [Word(UNKNOWN, round(start + i * step, 3), round(start + (i + 1) * step, 3), None) for i in range(count)]
    return out


def _reading(spans: Sequence[Span], heard: list[str]) -> list[str]:
    """The hint's words along the grammar path that produced ``heard``.

    Each span was either read (one of its readings, word for word) or skipped;
    a skipped span contributes its first reading. ``heard`` is a path of the
    grammar, so a depth-first search over (span, heard word) pairs finds it.
    """
    n, m = len(spans), len(heard)
    back: dict[tuple[int, int], tuple[int, int, tuple[str, ...] | None]] = {}
    stack = [(0, 0)]
    seen = {(0, 0)}
    while stack:
        k, p = stack.pop()
        if k == n:
            continue
        moves: list[tuple[int, int, tuple[str, ...] | None]] = [(k + 1, p, None)]
        moves += [(k + 1, p + len(r), r) for r in spans[k].readings if tuple(heard[p : p + len(r)]) == r]
        for move in moves:
            if move[:2] not in seen:
                seen.add(move[:2])
                back[move[:2]] = (k, p, move[2])
                stack.append(move[:2])
    if (n, m) not in seen:  # not a path of the grammar: compare against the first readings
        return [w for s in spans for w in s.words]
    chosen: list[tuple[str, ...]] = []
    at = (n, m)
    while at != (0, 0):
        k, p, reading = back[at]
        chosen.append(reading if reading is not None else spans[k].words)
        at = (k, p)
    return [w for r in reversed(chosen) for w in r]
