"""Whisper through faster-whisper (CTranslate2): a free, multilingual recogniser.

Contract: ``WhisperRecogniser().transcribe(path, language, hint)`` transcribes
the take with word timestamps and returns its words (text as Whisper writes
it, e.g. "320," or " Hello"; the judge normalises them), times in seconds and
Whisper's word probability as confidence. ``languages`` is every Whisper
language for a multilingual model, ``{"en"}`` for an English-only one.

Settings (environment; ``mediamill.config.Settings`` fields after the move):

- ``MEDIAMILL_WHISPER_MODEL``: a local folder holding a CTranslate2 Whisper
  model (``model.bin``, ``config.json``, ``vocabulary.json``, ``tokenizer.json``,
  ``preprocessor_config.json``), e.g. one made by ``ct2-transformers-converter``.
  Required: nothing is downloaded (faster-whisper would fetch a model or a
  tokenizer from a hub for a name or a folder without ``tokenizer.json``; both are
  refused here).
- ``MEDIAMILL_WHISPER_DEVICE``: ``cpu``, ``cuda`` or ``auto`` (default ``auto``).
- ``MEDIAMILL_WHISPER_COMPUTE_TYPE``: CTranslate2's ``compute_type`` (``int8``,
  ``float16``, ``int8_float16``, ``default``...; default ``default``).

The hint is not given to Whisper by default: decoding that starts from the
expected text as preceding context makes Whisper likelier to "hear" that text
in audio that lacks it, which is the defect being looked for
(``hint_as_context=True`` passes it as faster-whisper's initial text).
The model is loaded once per recogniser, on first use, and shared by threads
(CTranslate2 runs ``num_workers`` transcriptions at once).

Accuracy on Piper takes: not measured (no Whisper weights can be had here);
the tests drive this code on a tiny random model.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from ...config import settings
from ...media.pcm import duration_s
from .base import Hint, RecogniserError, Transcript, Word, as_spans, take_pcm
from .coverage import speech_mask, trailing_silence_s

REQUIRED_FILES = ("model.bin", "config.json", "tokenizer.json")


def settings_from_env() -> dict:
    cfg = settings()
    return {
        "model_path": cfg.whisper_model or None,
        "device": cfg.whisper_device,
        "compute_type": cfg.whisper_compute_type,
    }


class WhisperRecogniser:
    name = "whisper"

    def __init__(
        self,
        model_path: str | Path | None = None,
        device: str | None = None,
        compute_type: str | None = None,
        beam_size: int = 5,
        temperature: float | tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0),
        max_new_tokens: int | None = None,
        num_workers: int = 1,
        hint_as_context: bool = False,
    ) -> None:
        env = settings_from_env()
        model_path = model_path or env["model_path"]
        if not model_path:
            raise RecogniserError(
                "the whisper recogniser needs MEDIAMILL_WHISPER_MODEL: a local CTranslate2 Whisper model folder"
            )
        self.model_path = Path(model_path)
        if not self.model_path.is_dir():
            raise RecogniserError(
                f"MEDIAMILL_WHISPER_MODEL={self.model_path} is not a folder (models are never downloaded)"
            )
        absent = [f for f in REQUIRED_FILES if not (self.model_path / f).is_file()]
        if absent:
            raise RecogniserError(f"{self.model_path} is not a CTranslate2 Whisper model: missing {', '.join(absent)}")
        try:
            import faster_whisper  # noqa: F401
        except ImportError:
            raise RecogniserError("the whisper recogniser needs: pip install faster-whisper") from None
        self.device = device or env["device"]
        self.compute_type = compute_type or env["compute_type"]
        self.beam_size = beam_size
        self.temperature = temperature
        self.max_new_tokens = max_new_tokens
        self.num_workers = num_workers
        self.hint_as_context = hint_as_context
        self._model = None
        self._lock = threading.Lock()
        self.load_s = 0.0

    def _load(self):
        with self._lock:
            if self._model is None:
                from faster_whisper import WhisperModel

                started = time.perf_counter()
                try:
                    self._model = WhisperModel(
                        str(self.model_path),
                        device=self.device,
                        compute_type=self.compute_type,
                        num_workers=self.num_workers,
                        local_files_only=True,
                    )
                except (RuntimeError, ValueError, OSError) as exc:
                    raise RecogniserError(f"cannot load the Whisper model in {self.model_path}: {exc}") from exc
                self.load_s = time.perf_counter() - started
            return self._model

    @property
    def languages(self) -> frozenset[str]:
        return frozenset(self._load().supported_languages)

    def transcribe(self, audio_path: str | Path, language: str, hint: Hint = None) -> Transcript:
        model = self._load()
        code = (language or "").split("-")[0].lower() or None
        if code is not None and code not in self.languages:
            raise RecogniserError(f"this Whisper model does not hear '{language}'")
        started = time.perf_counter()
        pcm = take_pcm(audio_path)
        audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        context = " ".join(s.text for s in as_spans(hint)) if self.hint_as_context and hint else None
        options = {"max_new_tokens": self.max_new_tokens} if self.max_new_tokens else {}
        try:
            segments, _info = model.transcribe(
                audio,
                language=code,
                task="transcribe",
                beam_size=self.beam_size,
                temperature=self.temperature,
                word_timestamps=True,
                initial_prompt=context,
                condition_on_previous_text=False,
                vad_filter=False,
                **options,
            )
            words = [
                Word(w.word.strip(), round(float(w.start), 3), round(float(w.end), 3), round(float(w.probability), 4))
                for segment in segments
                for w in (segment.words or [])
                if w.word.strip()
            ]
        except (RuntimeError, ValueError) as exc:
            raise RecogniserError(f"whisper failed on {audio_path}: {exc}") from exc
        return Transcript(
            self.name,
            words,
            duration_s(pcm),
            None,
            time.perf_counter() - started,
            [],
            trailing_silence_s(speech_mask(pcm)),
        )
