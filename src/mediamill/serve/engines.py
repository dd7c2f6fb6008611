"""The engines ``mediamill serve`` speaks with: local VoxCPM (its model pool) or Piper.

An engine turns one request into 16-bit mono PCM, as an iterator of byte
chunks, checking a cancel event between chunks. ``read`` is the careful path
(long text in pieces, bad-case retakes); ``stream`` yields audio as soon as
the model produces it. Neither knows HTTP. ``voice_design`` says whether the
engine follows ``instructions``; the speed of speech is no engine's concern
(the service changes the tempo of what an engine makes).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..backends import piper as piper_backend
from ..backends.reading import Reading, read_pieces, silence
from ..backends.voxcpm_local import default_seed, installed
from ..backends.voxcpm_pool import INSTALL_HINT, Knobs, VoxcpmSettings, Voicing, get_pool, model_identity
from ..text.split import split_text
from ..verify.duration import DurationCheck
from ..voices import Voice


class Cancelled(Exception):
    """The request was cancelled while generating."""


class RequestProblem(ValueError):
    """A request this engine cannot serve, with the field to blame."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(message)


@dataclass(frozen=True)
class Speech:
    """One request, with its voice already resolved to files."""

    text: str
    voice: Voice | None = None  # a registry voice or a prompt file, as a Voice
    style: str | None = None
    cfg_value: float = 2.0
    inference_timesteps: int = 10
    max_length: int = 2048
    seed: int | None = None
    engine_voice: str | None = None  # a voice the engine itself knows (Piper's voices)


class VoxcpmEngine:
    name = "voxcpm"
    voice_design = True

    def __init__(self) -> None:
        if not installed():
            raise RuntimeError(INSTALL_HINT)
        self.settings = VoxcpmSettings()
        self.pool = get_pool(self.settings)
        self.model = model_identity(self.settings.model, self.settings.local_files_only)
        self.sample_rate = 0

    def start(self) -> None:
        with self.pool.replica() as replica:  # load now, not on the first request
            self.sample_rate = replica.sample_rate

    def devices(self) -> list[str]:
        return self.pool.devices

    def native_voices(self) -> list[str]:
        return []

    def _voicing(self, speech: Speech):
        voice = speech.voice
        if voice is None:
            return Voicing(style=speech.style)
        if voice.transcript:
            return Voicing(prompt_wav=voice.audio, prompt_text=voice.transcript, style=speech.style)
        return Voicing(reference_wav=voice.audio, style=speech.style)

    def check(self, speech: Speech) -> None:
        if speech.engine_voice:
            raise RequestProblem("voice", f"unknown voice '{speech.engine_voice}'")

    def read(self, speech: Speech, cancel: threading.Event, reading: Reading) -> Iterator[bytes]:
        cfg = self.settings
        check = DurationCheck(low=cfg.min_ratio, high=cfg.max_ratio)
        voicing = self._voicing(speech)
        knobs = Knobs(speech.cfg_value, speech.inference_timesteps)
        seed = speech.seed if speech.seed is not None else default_seed(speech.text)
        pieces = split_text(speech.text, cfg.max_chars, cfg.piece_pause_s, cfg.paragraph_pause_s)
        with self.pool.replica() as replica:

            def take(text: str, attempt: int):
                if cancel.is_set():
                    raise Cancelled()
                return replica.take(text, voicing, knobs, seed + attempt * 7919, check, max_len=speech.max_length)

            for piece, chosen, _ in read_pieces(pieces, take, check, reading, cfg.max_takes, cfg.keep_bad):
                yield chosen.pcm
                yield silence(piece.pause_after, chosen.sample_rate)

    def stream(self, speech: Speech, cancel: threading.Event) -> Iterator[bytes]:
        cfg = self.settings
        check = DurationCheck(low=cfg.min_ratio, high=cfg.max_ratio)
        voicing = self._voicing(speech)
        knobs = Knobs(speech.cfg_value, speech.inference_timesteps)
        seed = speech.seed if speech.seed is not None else default_seed(speech.text)
        with self.pool.replica() as replica:
            for piece in split_text(speech.text, cfg.max_chars, cfg.piece_pause_s, cfg.paragraph_pause_s):
                if cancel.is_set():
                    raise Cancelled()
                for chunk in replica.stream(piece.text, voicing, knobs, seed, check, speech.max_length):
                    if cancel.is_set():
                        raise Cancelled()
                    yield chunk
                yield silence(piece.pause_after, replica.sample_rate)


class PiperEngine:
    name = "piper"
    voice_design = False

    def __init__(self) -> None:
        self._piper = piper_backend
        self.model = "piper"
        self.sample_rate = 0
        self._voices: dict[str, object] = {}
        self._lock = threading.Lock()

    def _load(self, name: str):
        from piper import PiperVoice

        with self._lock:
            if name not in self._voices:
                path, _ = self._piper.voices()[name]
                self._voices[name] = PiperVoice.load(path, config_path=f"{path}.json")
            return self._voices[name]

    def start(self) -> None:
        voice = self._load(self._piper.DEFAULT_VOICE)
        self.sample_rate = voice.config.sample_rate  # type: ignore[attr-defined]
        self.model = f"piper:{self._piper.DEFAULT_VOICE}"

    def devices(self) -> list[str]:
        return ["cpu"]

    def native_voices(self) -> list[str]:
        return sorted(self._piper.voices())

    def check(self, speech: Speech) -> None:
        if speech.voice is not None:
            raise RequestProblem("voice", "piper cannot clone a recorded voice; serve VoxCPM for that")
        if speech.style:
            raise RequestProblem("instructions", "piper has no voice design")
        name = speech.engine_voice or self._piper.DEFAULT_VOICE
        if name not in self._piper.voices():
            raise RequestProblem("voice", f"unknown voice '{name}' (piper voices: {', '.join(self.native_voices())})")
        if self._load(name).config.sample_rate != self.sample_rate:  # type: ignore[attr-defined]
            raise RequestProblem("voice", f"voice '{name}' has another sample rate than the server's default voice")

    def read(self, speech: Speech, cancel: threading.Event, reading: Reading) -> Iterator[bytes]:
        voice = self._load(speech.engine_voice or self._piper.DEFAULT_VOICE)
        pause = silence(0.25, self.sample_rate)
        for i, chunk in enumerate(voice.synthesize(speech.text)):  # type: ignore[attr-defined]
            if cancel.is_set():
                raise Cancelled()
            reading.pieces += 1
            reading.generations += 1
            yield (pause if i else b"") + chunk.audio_int16_bytes

    def stream(self, speech: Speech, cancel: threading.Event) -> Iterator[bytes]:
        return self.read(speech, cancel, Reading(kept_bad=[]))


def make_engine(name: str):
    if name == "voxcpm":
        return VoxcpmEngine()
    if name == "piper":
        return PiperEngine()
    raise ValueError(f"unknown engine '{name}' (voxcpm or piper)")


def as_voice(path: Path, transcript: str | None) -> Voice:
    return Voice(path.stem, path, transcript or None)
