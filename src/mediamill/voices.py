"""The voice registry: named reference recordings for cloning.

A voice is ``NAME.wav`` (or .flac, .mp3, .m4a, .ogg) with an optional
``NAME.txt`` holding what the recording says. Registries are searched in
order: the ``voices/`` folder beside the manifest, then each folder in
``MEDIAMILL_VOICES`` (separated like PATH). A clone row then says
``voice=narrator`` instead of repeating a file path and transcript.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from .config import settings
from .core.files import atomic_path, write_bytes_atomic
from .core.ids import check_safe_id

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".m4a", ".ogg")
DEFAULT_FOLDER = Path("manifests") / "voices"


@dataclass(frozen=True)
class Voice:
    name: str
    audio: Path
    transcript: str | None


def voice_dirs(base_dir: Path | None = None) -> list[Path]:
    dirs = [base_dir / "voices"] if base_dir is not None else []
    return dirs + settings().voices


def find_voice_in(folder: Path, name: str) -> Voice | None:
    for suffix in AUDIO_SUFFIXES:
        audio = folder / f"{name}{suffix}"
        if audio.is_file():
            text_file = folder / f"{name}.txt"
            transcript = text_file.read_text(encoding="utf-8").strip() if text_file.is_file() else None
            return Voice(name, audio, transcript or None)
    return None


def find_voice(name: str, base_dir: Path | None = None) -> Voice | None:
    for folder in voice_dirs(base_dir):
        voice = find_voice_in(folder, name)
        if voice is not None:
            return voice
    return None


def list_voices(folders: list[Path]) -> list[Voice]:
    found: dict[str, Voice] = {}
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() in AUDIO_SUFFIXES and path.stem not in found:
                voice = find_voice_in(folder, path.stem)
                if voice is not None:
                    found[path.stem] = voice
    return list(found.values())


def add_voice(name: str, audio: Path, transcript: str | None, folder: Path) -> Voice:
    """Copy a recording (and its transcript) into a registry folder, replacing any voice of that name."""
    check_safe_id(name)
    suffix = audio.suffix.lower()
    if suffix not in AUDIO_SUFFIXES:
        raise ValueError(f"{audio.name}: a voice recording must be one of {', '.join(AUDIO_SUFFIXES)}")
    from .media.ffmpeg import MediaError
    from .media.probe import probe

    try:
        info = probe(audio)
    except MediaError as exc:
        raise ValueError(str(exc)) from None
    if not info.sample_rate or info.duration_s <= 0:
        raise ValueError(f"{audio}: no audio in this file")
    remove_voice(name, folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / f"{name}{suffix}") as tmp:
        shutil.copyfile(audio, tmp)
    if transcript:
        write_bytes_atomic(folder / f"{name}.txt", transcript.strip().encode("utf-8") + b"\n")
    voice = find_voice_in(folder, name)
    assert voice is not None
    return voice


def remove_voice(name: str, folder: Path) -> bool:
    removed = False
    for path in [folder / f"{name}{s}" for s in AUDIO_SUFFIXES] + [folder / f"{name}.txt"]:
        if path.is_file():
            path.unlink()
            removed = True
    return removed
