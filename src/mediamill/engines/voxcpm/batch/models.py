"""What the batched engine loads beside its model: the checkpoint folder, voxcpm's text normaliser, the denoiser.

Each loads once per process, whoever asks first; the plain engine loads the
same parts inside voxcpm itself.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from ...errors import PermanentError


def model_folder(source: str, local_files_only: bool) -> Path:
    """A checkpoint folder for a setting that names a folder or a hub id (downloading it if allowed)."""
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id=source, local_files_only=local_files_only))
    except Exception as exc:  # noqa: BLE001 - hub errors come in many types; say what fixes it
        raise PermanentError(
            f"cannot find VoxCPM model '{source}': {exc} (set VOXCPM_MODEL to a checkpoint folder)"
        ) from None


_load_lock = threading.Lock()  # voxcpm's normaliser and denoiser load once, whoever asks first
_normalizer: Any = None


def text_normalizer():
    """voxcpm's own normaliser (what ``normalize=True`` runs on the plain engine), loaded once."""
    global _normalizer
    with _load_lock:
        if _normalizer is None:
            from voxcpm.utils.text_normalize import TextNormalizer

            _normalizer = TextNormalizer().normalize
    return _normalizer


_denoisers: dict[str, Any] = {}


def denoiser(model: str):
    """ZipEnhancer as a function: recording path -> cleaned WAV bytes (what ``denoise=True`` does on plain)."""
    with _load_lock:  # one model load however many rows ask at once
        if model not in _denoisers:
            from voxcpm.zipenhancer import ZipEnhancer

            _denoisers[model] = ZipEnhancer(model)
    enhancer = _denoisers[model]

    def clean(path: Path) -> bytes:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "clean.wav"
            enhancer.enhance(str(path), output_path=str(out))
            return out.read_bytes()

    return clean
