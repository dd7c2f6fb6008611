"""Loaded VoxCPM models: one replica per device, shared by everything in the process.

A model is loaded once per process and device, never per row: the pool for a
(model, devices) pair is created on first use and kept (``replicas.replica_pool``). Each replica serves
one generation at a time; a caller takes whichever replica is free, so a
machine with N GPUs runs N rows at once. Replicas load lazily, on first use
of their device, so a run that needs one GPU does not wait for eight to load.

Settings come from the environment (prefix ``VOXCPM_``): see ``VoxcpmSettings``.
voxcpm and torch are imported here only when a model is loaded.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...core.hashing import folder_digest
from ...text.pace import predicted_seconds
from ...verify.duration import DurationCheck
from ..errors import NotInstalledError, PermanentError
from ..reading import Take, steps_for
from .settings import INSTALL_HINT, VoxcpmSettings


class ModelLoadError(PermanentError):
    pass


def resolve_devices(setting: str) -> list[str]:
    """The devices a setting names, checked against what this machine has."""
    value = setting.strip().lower()
    if value == "cpu":
        return ["cpu"]
    try:
        import torch
    except ImportError:
        raise NotInstalledError(INSTALL_HINT) from None
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if value == "auto":
        return [f"cuda:{i}" for i in range(count)] or ["cpu"]
    if value == "cuda":
        if not count:
            raise ModelLoadError("VOXCPM_DEVICE=cuda but torch sees no CUDA GPU")
        return [f"cuda:{i}" for i in range(count)]
    devices = []
    for part in (p.strip() for p in value.split(",") if p.strip()):
        if not part.startswith("cuda:") or not part[5:].isdigit():
            raise ModelLoadError(f"VOXCPM_DEVICE: '{part}' is not auto, cpu, cuda or cuda:N")
        if int(part[5:]) >= count:
            raise ModelLoadError(f"VOXCPM_DEVICE names {part}, but torch sees {count} CUDA GPU(s)")
        devices.append(part)
    return list(dict.fromkeys(devices))


def model_identity(source: str, local_files_only: bool = False) -> str:
    """What the content key records for a model: a local folder's content, or a hub id at its revision.

    A local checkpoint is keyed by the digest of its files alone (config,
    tokenizer, weights; hashed once and remembered, see ``core.hashing``), never
    by its folder's name or place, so copies of the same weights on other
    machines make the same keys whatever they are called, and changed weights
    make new ones. A hub id is keyed by the revision the hub resolves it to, from
    the local hub cache, else (unless offline) from the hub itself; by its name
    alone when neither can say. ``model_label`` is the readable form for people.
    """
    path = Path(source).expanduser()
    if path.is_dir():
        return f"sha256:{folder_digest(path)[:12]}"
    revision = hub_revision(source, local_files_only)
    return f"{source}@{revision[:12]}" if revision else source


def model_label(source: str, local_files_only: bool = False) -> str:
    """A model as people read it (``/health``, logs): a local folder's name with its digest; never part of a key."""
    path = Path(source).expanduser()
    if path.is_dir():
        return f"{path.name}@{folder_digest(path)[:12]}"
    return model_identity(source, local_files_only)


_revisions: dict[str, str | None] = {}


def hub_revision(repo_id: str, local_files_only: bool = False) -> str | None:
    """The commit a hub id resolves to: the hub cache's, else the hub's own answer; None when unknown."""
    if "/" not in repo_id:
        return None
    if repo_id in _revisions:
        return _revisions[repo_id]
    revision = None
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(repo_id, "config.json")
        if isinstance(cached, str):
            revision = Path(cached).parent.name  # .../snapshots/<commit>/config.json
        offline = local_files_only or os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes")
        if revision is None and not offline:
            from huggingface_hub import HfApi

            revision = HfApi().model_info(repo_id, timeout=10).sha
    except Exception:  # noqa: BLE001 - no hub library, no network, no such model: keyed by the name
        revision = None
    _revisions[repo_id] = revision
    return revision


def architecture(source: str) -> str | None:
    """'voxcpm2' or 'voxcpm' for a local checkpoint; None when not known before loading."""
    config = Path(source).expanduser() / "config.json"
    if not config.is_file():
        return "voxcpm2" if "voxcpm2" in source.lower() else None
    try:
        return json.loads(config.read_text(encoding="utf-8")).get("architecture", "voxcpm").lower()
    except (OSError, ValueError):
        return None


@dataclass(frozen=True)
class Voicing:
    """How a piece should sound: a voice prompt, a reference, or a description."""

    prompt_wav: Path | None = None  # with prompt_text: continue from this recording
    prompt_text: str | None = None
    reference_wav: Path | None = None  # VoxCPM2: clone the timbre, no transcript needed
    style: str | None = None  # VoxCPM2 voice design / style guidance, e.g. "a calm, low voice"

    @classmethod
    def of(cls, recording: Path | None, transcript: str | None, style: str | None) -> Voicing:
        """A voice from what a row or a request gives: a recording with its transcript is continued, one
        without is cloned, and no recording leaves the style (or the model's own voice)."""
        if recording is None:
            return cls(style=style)
        if transcript:
            return cls(prompt_wav=recording, prompt_text=transcript, style=style)
        return cls(reference_wav=recording, style=style)

    def text(self, text: str) -> str:
        # VoxCPM2 reads a parenthesised description at the start as voice design.
        return f"({self.style}){text}" if self.style else text

    def kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {}
        if self.prompt_wav is not None:
            kw.update(prompt_wav_path=str(self.prompt_wav), prompt_text=self.prompt_text or "")
        if self.reference_wav is not None:
            kw["reference_wav_path"] = str(self.reference_wav)
        return kw


@dataclass(frozen=True)
class Knobs:
    cfg_value: float = 2.0
    inference_timesteps: int = 10
    normalize: bool = False
    denoise: bool = False


@dataclass
class Replica:
    device: str
    model: Any = None  # voxcpm.VoxCPM once loaded
    load_s: float = 0.0
    served: int = 0
    settings_min_len_ratio: float = 0.5

    @property
    def sample_rate(self) -> int:
        return int(self.model.tts_model.sample_rate)

    @property
    def steps_per_s(self) -> float:
        """Generation steps per second of audio: each step is one patch of VAE latents."""
        tts = self.model.tts_model
        encode_rate = getattr(tts, "_encode_sample_rate", None) or tts.audio_vae.sample_rate
        return float(encode_rate) / (int(tts.audio_vae.hop_length) * int(tts.patch_size))

    def seed(self, seed: int) -> None:
        import torch

        if self.device.startswith("cuda"):
            # Only this device's generator: other replicas draw from theirs concurrently.
            torch.cuda.default_generators[int(self.device.split(":")[1])].manual_seed(seed)
        else:
            torch.manual_seed(seed)

    def bounds(self, text: str, check: DurationCheck, max_len: int | None = None) -> tuple[int, int]:
        """(min_len, max_len) in model steps: not under a fraction of the predicted length, not past babbling."""
        steps = self.steps_per_s
        cap = steps_for(check.max_seconds(text), steps)
        if max_len is not None:
            cap = min(cap, max_len)
        floor = int(predicted_seconds(text) * self.settings_min_len_ratio * steps)
        return max(2, min(floor, cap - 1)), cap

    def _arguments(
        self, text: str, voicing: Voicing, knobs: Knobs, seed: int, check: DurationCheck, max_len: int | None
    ) -> dict[str, Any]:
        min_len, cap = self.bounds(text, check, max_len)
        self.seed(seed)
        return dict(
            text=voicing.text(text),
            **voicing.kwargs(),
            cfg_value=knobs.cfg_value,
            inference_timesteps=knobs.inference_timesteps,
            min_len=min_len,
            max_len=cap,
            normalize=knobs.normalize,
            denoise=knobs.denoise,
            retry_badcase=False,
        )

    def take(
        self, text: str, voicing: Voicing, knobs: Knobs, seed: int, check: DurationCheck, max_len: int | None = None
    ) -> Take:
        """Generate one piece, with length bounds from the text's predicted duration."""
        arguments = self._arguments(text, voicing, knobs, seed, check, max_len)
        wav = self.model.generate(**arguments)
        samples_per_step = self.sample_rate / self.steps_per_s
        return Take(to_pcm16(wav), self.sample_rate, hit_cap=len(wav) >= arguments["max_len"] * samples_per_step - 1)

    def stream(
        self, text: str, voicing: Voicing, knobs: Knobs, seed: int, check: DurationCheck, max_len: int
    ) -> Iterator[bytes]:
        """16-bit PCM chunks as the model produces them (no bad-case retakes: audio already went out)."""
        chunks = self.model.generate_streaming(**self._arguments(text, voicing, knobs, seed, check, max_len))
        try:
            for chunk in chunks:
                yield to_pcm16(chunk)
        finally:
            chunks.close()


@dataclass
class ModelPool:
    source: str
    devices: list[str]
    settings: VoxcpmSettings
    replicas: list[Replica] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.replicas = [Replica(d, settings_min_len_ratio=self.settings.min_len_ratio) for d in self.devices]
        self._free: queue.Queue[Replica] = queue.Queue()
        for replica in self.replicas:
            self._free.put(replica)
        self._load_lock = threading.Lock()

    @property
    def size(self) -> int:
        return len(self.replicas)

    @property
    def loaded(self) -> int:
        return sum(r.model is not None for r in self.replicas)

    @contextmanager
    def replica(self, timeout: float | None = None) -> Iterator[Replica]:
        """Take a free replica (loading its model on first use) for one generation."""
        try:
            replica = self._free.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError("no free model replica") from None
        try:
            if replica.model is None:
                self._load(replica)
            yield replica
            replica.served += 1
        finally:
            self._free.put(replica)

    def _load(self, replica: Replica) -> None:
        try:
            import torch

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # torch's weight_norm deprecation, on import
                from voxcpm import VoxCPM
        except ImportError:
            raise NotInstalledError(INSTALL_HINT) from None
        _quiet_progress_bars()
        cfg = self.settings
        if cfg.cpu_threads and replica.device == "cpu":
            torch.set_num_threads(cfg.cpu_threads)
        started = time.perf_counter()
        local = Path(self.source).expanduser()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                replica.model = VoxCPM.from_pretrained(
                    hf_model_id=str(local) if local.is_dir() else self.source,
                    load_denoiser=cfg.denoiser is not None,
                    zipenhancer_model_id=cfg.denoiser or "",
                    local_files_only=cfg.local_files_only,
                    optimize=cfg.optimize,
                    device=replica.device,
                )
        except (OSError, ValueError, RuntimeError) as exc:
            # Also raised when the hub cannot be reached: name the setting that fixes it.
            raise ModelLoadError(
                f"cannot load VoxCPM model '{self.source}' on {replica.device}: {exc}"
                " (set VOXCPM_MODEL to a local checkpoint folder to run offline)"
            ) from None
        replica.load_s = time.perf_counter() - started


def _quiet_progress_bars() -> None:
    """voxcpm draws a progress bar on stderr for every generation step loop; in a
    worker running thousands of rows that buries the log. Hub downloads keep theirs."""
    for name in ("voxcpm.model.voxcpm2", "voxcpm.model.voxcpm"):
        module = sys.modules.get(name)
        if module is not None and hasattr(module, "tqdm"):
            module.tqdm = lambda iterable, *args, **kwargs: iterable  # type: ignore[attr-defined]  # untyped module


def to_pcm16(samples: Any) -> bytes:
    """float waveform in [-1, 1] -> little-endian 16-bit PCM."""
    import numpy as np

    clipped = np.clip(np.asarray(samples, dtype=np.float32).reshape(-1), -1.0, 1.0)
    return (clipped * 32767.0).astype("<i2").tobytes()
