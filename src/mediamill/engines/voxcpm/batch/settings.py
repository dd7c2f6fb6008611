"""The batched engine's settings, and what they decide before anything starts.

The engine's settings are ``VoxcpmSettings``' ``engine``, ``batch_*`` and
``attention`` fields (env prefix ``VOXCPM_``). From them,
without importing nano-vllm or touching a GPU:

- ``chosen_engine``: what ``VOXCPM_ENGINE=auto`` means here (nanovllm with a
  CUDA GPU, nano-vllm-voxcpm and triton importable and a real flash-attn, or
  the sdpa stand-in when ``VOXCPM_ATTENTION=sdpa``; plain otherwise);
- ``engine_missing``: why the engine cannot run here, for planning;
- ``engine_identity``: what content keys record (engine, version, attention);
- ``engine_devices``, ``engine_capacity``, ``served_timesteps``: servers and
  the rows they hold; ``model_rates``: steps per second and output rate of a
  checkpoint.

Package lookups are cached: keys are computed for every row of a plan.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import json
import math
from pathlib import Path

from ...errors import PermanentError
from ..pool import resolve_devices
from ..settings import VoxcpmSettings

__all__ = [
    "NANOVLLM_HINT",
    "attention_kind",
    "chosen_engine",
    "engine_capacity",
    "engine_devices",
    "engine_identity",
    "engine_missing",
    "model_rates",
    "nanovllm_usable",
    "served_timesteps",
]


def served_timesteps(cfg: VoxcpmSettings) -> list[int]:
    values = []
    for part in cfg.batch_timesteps.split(","):
        part = part.strip()
        if not part.isdigit() or not 1 <= int(part) <= 100:
            raise PermanentError(f"VOXCPM_BATCH_TIMESTEPS: '{part}' is not a step count from 1 to 100")
        values.append(int(part))
    return list(dict.fromkeys(values)) or [10]


@functools.cache
def _version(dist: str) -> str | None:
    # Cached: a metadata lookup scans site-packages (milliseconds), and keys are computed per row.
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


@functools.cache
def _importable(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@functools.cache
def _real_flash_attn() -> str | None:
    """The installed flash-attn's version (None if only the stand-in or nothing), without importing it."""
    from .. import flash_attn_sdpa

    if not flash_attn_sdpa._real_flash_attn_present():
        return None
    return _version("flash-attn") or _version("flash_attn") or "?"


def attention_kind(cfg: VoxcpmSettings) -> str:
    """Which attention nano-vllm will run: 'flash-attn X' or the stand-in."""
    from .. import flash_attn_sdpa

    real = _real_flash_attn()
    if cfg.attention == "flash-attn" and real is None:
        raise PermanentError("VOXCPM_ATTENTION=flash-attn, but flash-attn is not installed")
    if cfg.attention == "sdpa" or real is None:
        return f"sdpa stand-in {flash_attn_sdpa.STANDIN_VERSION}"
    return f"flash-attn {real}"


def nanovllm_usable(cfg: VoxcpmSettings) -> bool:
    """For VOXCPM_ENGINE=auto: a CUDA GPU, nano-vllm-voxcpm and triton importable, attention available."""
    if cfg.batch_impl == "standin":
        return True
    try:
        import torch
    except ImportError:
        return False
    if not torch.cuda.is_available():
        return False
    if not all(_importable(m) for m in ("nanovllm_voxcpm", "triton")):
        return False
    # auto engine + auto attention: the sdpa stand-in only when asked for; a real kernel otherwise.
    return cfg.attention == "sdpa" or _real_flash_attn() is not None


NANOVLLM_HINT = "pip install --no-deps nano-vllm-voxcpm==2.0.5 xxhash (its other needs come with voxcpm)"


def engine_missing(cfg: VoxcpmSettings) -> str | None:
    """Why the batched engine cannot run here (None when it can): for planning, before any row runs."""
    if cfg.batch_max_tokens < cfg.batch_max_model_len:  # nano-vllm's Config asserts it, in the worker
        return "VOXCPM_BATCH_MAX_TOKENS must be at least VOXCPM_BATCH_MAX_MODEL_LEN"
    if cfg.batch_impl == "standin":
        return None
    if not all(_importable(m) for m in ("nanovllm_voxcpm", "triton")):
        return f"VOXCPM_ENGINE=nanovllm needs nano-vllm-voxcpm and triton: {NANOVLLM_HINT}"
    try:
        import torch
    except ImportError:
        return "VOXCPM_ENGINE=nanovllm needs torch"
    if not torch.cuda.is_available():
        return "VOXCPM_ENGINE=nanovllm needs a CUDA GPU; set VOXCPM_ENGINE=plain (or auto) here"
    if cfg.attention == "flash-attn" and _real_flash_attn() is None:
        return "VOXCPM_ATTENTION=flash-attn, but flash-attn is not installed (auto uses the sdpa stand-in)"
    return None


def chosen_engine(cfg: VoxcpmSettings) -> str:
    if cfg.engine != "auto":
        return cfg.engine
    return "nanovllm" if nanovllm_usable(cfg) else "plain"


def engine_identity(cfg: VoxcpmSettings) -> str:
    """What the content key records for the batched engine: another engine makes other audio for one seed."""
    if cfg.batch_impl == "standin":
        return "standin"
    return f"nano-vllm-voxcpm {_version('nano-vllm-voxcpm') or '?'} ({attention_kind(cfg)})"


def engine_devices(cfg: VoxcpmSettings) -> list[str]:
    """The devices the batched engine runs one server set on: every configured GPU, or stand-in slots."""
    if cfg.batch_impl == "standin":
        return [f"standin:{i}" for i in range(cfg.batch_standin_devices)]
    devices = [d for d in resolve_devices(cfg.device) if d.startswith("cuda")]
    if not devices:
        raise PermanentError("the nanovllm engine needs a CUDA GPU (VOXCPM_DEVICE names none)")
    return devices


def engine_capacity(cfg: VoxcpmSettings) -> int:
    """Sequences the engine runs at once: max_num_seqs per server, one server per GPU and step count."""
    return cfg.batch_max_seqs * len(engine_devices(cfg)) * len(served_timesteps(cfg))


def model_rates(model_dir: Path) -> tuple[float, int]:
    """(generation steps per second of audio, output sample rate) from a checkpoint's config."""
    config = json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8"))
    vae = config.get("audio_vae_config") or {}
    rate = int(vae.get("sample_rate", 16000))
    hop = math.prod(vae.get("encoder_rates", [2, 5, 8, 8]))
    return rate / (hop * int(config.get("patch_size", 4))), int(vae.get("out_sample_rate", rate))
