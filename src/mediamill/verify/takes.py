"""Checking a row's take in the pipeline: which recogniser hears its language, and what is kept of the verdict.

``TakeVerifier(engine).check(audio, text, language)`` returns a ``TakeCheck``:
``pass`` or ``fail`` with the judge's verdict, ``skipped`` (no recogniser
for the row's language, or verification off) or ``error`` (the audio could
not be decoded, the engine failed). ``summary()`` is what the store's record
and the results table keep (verdict, WER, the missing words and extra speech
with where they are); ``words()`` the word timings the store keeps beside the
take for captions and the read-along. A long text read in pieces is checked
piece by piece and the checks joined (``join``), each shifted to where its
piece sits in the row's audio.

Verification competes with generation for the CPU, so each process checks at
most ``MEDIAMILL_VERIFY_CONCURRENCY`` takes at once, whichever path asks.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from .judge import Run, Verdict, verify_take
from .recognisers import NoMatch, RecogniserError, make

DEFAULT_LANGUAGE = "en"
# A fault a retake repeated is "the same" when its extra speech starts within this of the last one's.
SAME_PLACE_S = 0.5
# Extra speech this short (each run, and all of a take's together) is a sound to listen to, not a misreading.
MINOR_EXTRA_S = 1.0
MINOR_EXTRA_TOTAL_S = 1.5
_ENGINE_PACKAGES = {"pocketsphinx": "pocketsphinx", "whisper": "faster-whisper"}


@dataclass(frozen=True)
class TakeCheck:
    status: str  # "pass", "fail", "skipped", "error"
    engine: str | None = None  # e.g. "pocketsphinx 5.1.1"
    reason: str | None = None
    verdict: Verdict | None = None
    pieces: tuple[tuple[float, Verdict], ...] = field(default=(), compare=False)  # (offset, verdict) when joined
    unheard: tuple[float, ...] = ()  # where joined pieces start of which nothing at all was heard

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    @property
    def judged(self) -> bool:
        return self.status in ("pass", "fail", "flagged")

    def minor(self) -> bool:
        """A failing take whose only fault is a short extra sound: worth a listen, not worth failing a book.

        Missing words, a take cut short and a take of other words (nothing of the text heard) are never
        minor.
        """
        if self.status not in ("fail", "flagged") or not self._verdicts() or self.unheard or self.missing_runs():
            return False
        extra = self.extra_runs()
        return (
            bool(extra)
            and all(r.seconds <= MINOR_EXTRA_S for r in extra)
            and (sum(r.seconds for r in extra) <= MINOR_EXTRA_TOTAL_S)
        )

    def repeats(self, other: TakeCheck) -> bool:
        """Whether this failing take fails where ``other`` did: the same words missing, or extra speech
        at the same places (within ``SAME_PLACE_S``), or nothing heard twice. A retake of the same fault
        is the engine reading the text that way: another take will not mend it.
        """
        if self.passed or other.passed or not self.judged or not other.judged:
            return False
        if not self._verdicts() or not other._verdicts():
            return not self._verdicts() and not other._verdicts()
        if self.unheard != other.unheard:
            return False
        ours = [(r.index, tuple(r.words)) for r in self.missing_runs()]
        theirs = [(r.index, tuple(r.words)) for r in other.missing_runs()]
        if ours != theirs:
            return False
        a, b = self.extra_runs(), other.extra_runs()
        return len(a) == len(b) and all(abs(x.start_s - y.start_s) <= SAME_PLACE_S for x, y in zip(a, b))

    def _verdicts(self) -> list[tuple[float, Verdict]]:
        if self.pieces:
            return list(self.pieces)
        return [(0.0, self.verdict)] if self.verdict is not None else []

    def missing_runs(self) -> list[Run]:
        return [
            dataclasses.replace(r, start_s=r.start_s + at, end_s=r.end_s + at)
            for at, v in self._verdicts()
            for r in v.missing
        ]

    def extra_runs(self) -> list[Run]:
        return [
            dataclasses.replace(r, start_s=r.start_s + at, end_s=r.end_s + at)
            for at, v in self._verdicts()
            for r in v.extra
        ]

    def badness(self) -> tuple[float, float, float]:
        """How far a take is from saying its text (lower is better), to keep the best of several takes."""
        if (self.status == "fail" and not self._verdicts()) or self.unheard:
            return (1.0, float("inf"), float("inf"))  # nothing of (a piece of) the text heard at all
        missing = sum(len(r.words) for r in self.missing_runs())
        extra = sum(r.seconds for r in self.extra_runs())
        return (0.0 if self.passed else 1.0, float(missing), extra)

    def summary(self) -> dict[str, Any]:
        """What the store's record and the results table keep of the check."""
        wer = None
        if self._verdicts():
            words = [(len(v.timings) or 1, v.wer) for _, v in self._verdicts()]
            wer = round(sum(n * w for n, w in words) / sum(n for n, _ in words), 4)
        missing = "; ".join(f"'{' '.join(r.words)}' at {r.start_s:.1f} s" for r in self.missing_runs())
        if self.status == "fail" and not self._verdicts():
            missing = "all of the text"
        missing = "; ".join([missing] * bool(missing) + [f"all of the piece at {at:.1f} s" for at in self.unheard])
        extra = "; ".join(f"{r.seconds:.1f} s at {r.start_s:.1f} s" for r in self.extra_runs())
        return {
            "verified": self.status,
            "wer": wer,
            "missing": missing or None,
            "extra": extra or None,
            "verify_engine": self.engine,
            "verify_reason": self.reason,
        }

    def words(self) -> list[dict[str, Any]]:
        """Word timings (seconds from the take's start) for every expected word the recogniser placed."""
        out = []
        for at, verdict in self._verdicts():
            for t in verdict.timings:
                if t.start_s is not None and t.end_s is not None:
                    out.append(
                        {
                            "word": t.word,
                            "start_s": round(at + t.start_s, 3),
                            "end_s": round(at + t.end_s, 3),
                            "confidence": t.confidence,
                        }
                    )
        return out

    def detail(self) -> dict[str, Any]:
        """The whole check, for ``<key>.verify.json`` beside the take."""
        return {
            **self.summary(),
            "pieces": [{"offset_s": at, **v.to_json()} for at, v in self._verdicts()],
            "unheard_pieces_s": list(self.unheard),
        }


def join(checks: list[tuple[float, TakeCheck]]) -> TakeCheck:
    """One check for a row read in pieces: it passes when every piece passes; offsets are the pieces' starts."""
    judged = [(at, c.verdict) for at, c in checks if c.verdict is not None]
    if not checks:
        return TakeCheck("skipped", reason="nothing to check")
    if any(c.status == "error" for _, c in checks):
        first = next(c for _, c in checks if c.status == "error")
        return TakeCheck("error", first.engine, first.reason)
    if not judged and not any(c.status == "fail" for _, c in checks):
        return checks[0][1]
    failing = [c for _, c in checks if c.status == "fail"]
    status = "fail" if failing else "pass"
    reason = failing[0].reason if failing else None
    unheard = tuple(at for at, c in checks if c.status == "fail" and c.verdict is None)
    engine = next((c.engine for _, c in checks if c.engine), None)
    return TakeCheck(status, engine, reason, None, tuple(judged), unheard)


def _engine_label(engine: str) -> str:
    try:
        return f"{engine} {version(_ENGINE_PACKAGES.get(engine, engine))}"
    except PackageNotFoundError:
        return engine


class TakeVerifier:
    """One recogniser for the process, made on first use, and the bound on checks at once."""

    def __init__(self, engine: str, concurrency: int = 1):
        self.engine = engine
        self.label = _engine_label(engine)
        self._recogniser: Any = None
        self._error: str | None = None
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(concurrency)
        # Recognisers keep decoders per thread (pocketsphinx: about 30 MB each): checks run on these threads,
        # as many as may check at once and always the same ones, rather than on whichever thread is free.
        self.threads = ThreadPoolExecutor(concurrency, thread_name_prefix="verify")

    def _get(self) -> Any:
        with self._lock:
            if self._recogniser is None and self._error is None:
                try:
                    self._recogniser = make(self.engine)
                except (RecogniserError, ImportError) as exc:
                    self._error = f"{self.engine} cannot run here: {exc}"
            return self._recogniser

    def languages(self) -> frozenset[str] | None:
        recogniser = self._get()
        return recogniser.languages if recogniser is not None else None

    def check(self, audio: Path, text: str, language: str | None) -> TakeCheck:
        language = (language or DEFAULT_LANGUAGE).split("-")[0].lower()
        recogniser = self._get()
        if recogniser is None:
            return TakeCheck("skipped", self.label, self._error)
        if language not in recogniser.languages:
            return TakeCheck("skipped", self.label, f"{self.engine} does not hear '{language}'")
        with self._slots:
            try:
                verdict = verify_take(audio, text, recogniser, language)
            except NoMatch:
                return TakeCheck("fail", self.label, "none of the text could be heard in the take")
            except Exception as exc:  # noqa: BLE001 - a take that cannot be judged is said to be so, not fatal
                return TakeCheck("error", self.label, f"could not verify: {exc}")
        return TakeCheck(verdict.verdict, self.label, verdict.reasons[0] if verdict.reasons else None, verdict)


_verifiers: dict[tuple[str, int], TakeVerifier] = {}
_verifiers_lock = threading.Lock()


def verifier(engine: str, concurrency: int = 1) -> TakeVerifier:
    """The process-wide verifier for an engine (recognisers load models: once, not per take)."""
    with _verifiers_lock:
        found = _verifiers.get((engine, concurrency))
        if found is None:
            found = _verifiers[(engine, concurrency)] = TakeVerifier(engine, concurrency)
        return found


# Engines that read a row in pieces check each piece as it is made, so only the bad piece is read again:
# the generate stage hands them a check of this shape (a piece's audio file and its text) with the job.
PieceCheck = Callable[[Path, str], TakeCheck]
