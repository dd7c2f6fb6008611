"""VoxCPM's settings (env prefix ``VOXCPM_``), the plain engine's and the batched engine's in one class.

``current_settings`` is how every caller reads them: built once per distinct
``VOXCPM_*`` environment, so a row can ask for every row without the cost of
pydantic-settings, and a long-lived worker whose environment changes sees it.
``installed`` and ``default_seed`` are what a caller asks before a model loads.
"""

from __future__ import annotations

import hashlib
import importlib.util
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from ...config import from_environment

INSTALL_HINT = "the voxcpm backend needs its extra: pip install 'mediamill[voxcpm]'"


class VoxcpmSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VOXCPM_", extra="ignore")

    model: str = Field("openbmb/VoxCPM2", description="Hub id or local checkpoint directory.")
    device: str = Field("auto", description="auto, cpu, cuda (every GPU), cuda:N, or a comma list of cuda:N.")
    denoiser: str | None = Field(None, description="ZipEnhancer model id or path; enables the denoise option.")
    optimize: bool = Field(False, description="torch.compile the model (slow first call, faster after).")
    cpu_threads: int = Field(0, ge=0, description="torch threads on CPU; 0 keeps torch's default.")
    local_files_only: bool = Field(False, description="Never download: use the hub cache only.")
    # Long form and bad cases.
    max_chars: int = Field(400, ge=20, le=5000, description="Longest piece read in one call.")
    piece_pause_s: float = Field(0.3, ge=0, le=5)
    paragraph_pause_s: float = Field(0.7, ge=0, le=10)
    max_takes: int = Field(3, ge=1, le=10, description="Generations per piece before giving up on a bad case.")
    keep_bad: bool = Field(False, description="Keep the closest take when every take is implausible.")
    min_ratio: float = Field(0.35, ge=0, le=1, description="Shorter than this x predicted = truncated.")
    max_ratio: float = Field(3.0, ge=1, le=20, description="Longer than this x predicted = babbling.")
    # The model may not stop before this fraction of the predicted length (0 disables).
    min_len_ratio: float = Field(0.5, ge=0, le=1)
    # Cost: measured compute seconds x this price.
    price_per_hour: float = Field(0.0, ge=0, description="USD per device-hour (GPU, or CPU when on CPU).")
    # Plain replicas: more than one per GPU, each in its own process where that is what scales or compiles.
    replicas_per_device: int = Field(1, ge=1, le=16, description="Plain replicas per GPU (one process each when > 1).")
    replica_processes: Literal["auto", "always", "never"] = Field(
        "auto", description="auto: a process per GPU replica when compiling or several per GPU."
    )
    # The batched engine (nano-vllm-voxcpm): see engines.voxcpm.batch.
    # plain by default: the batched engine is chosen, not defaulted to, until it is measured on a GPU.
    engine: Literal["auto", "plain", "nanovllm"] = Field(
        "plain",
        description="plain (default), nanovllm, or auto: nanovllm where CUDA, nano-vllm-voxcpm, triton "
        "and flash-attn are importable (or VOXCPM_ATTENTION=sdpa), else plain.",
    )
    batch_impl: Literal["nanovllm", "standin"] = Field(
        "nanovllm", description="standin: CPU stand-in (tests, dry runs)."
    )
    batch_max_seqs: int = Field(128, ge=1, le=512, description="Sequences per server at once (nano-vllm max_num_seqs).")
    batch_max_tokens: int = Field(16384, ge=256, description="Tokens per prefill step (max_num_batched_tokens).")
    batch_max_model_len: int = Field(4096, ge=256, description="Prompt + generated tokens per request.")
    batch_memory: float = Field(0.9, gt=0, le=0.98, description="GPU memory fraction, shared by a GPU's servers.")
    batch_timesteps: str = Field("10", description="inference_timesteps values served, comma list: one server each.")
    batch_eager: bool = Field(False, description="No CUDA graphs (nano-vllm enforce_eager).")
    batch_aging: float = Field(
        10.0, ge=0, description="Admission priority (in steps) a waiting piece gains per second."
    )
    attention: Literal["auto", "flash-attn", "sdpa"] = Field(
        "auto", description="flash-attn if importable, else the sdpa stand-in (auto); or force one."
    )
    batch_standin_devices: int = Field(1, ge=1, le=16, description="Stand-in servers (batch_impl=standin).")


def current_settings() -> VoxcpmSettings:
    """``VoxcpmSettings()`` for the environment as it is now, built once per distinct ``VOXCPM_*`` environment."""
    return from_environment(VoxcpmSettings, "VOXCPM_")


def installed() -> bool:
    """Whether torch and voxcpm are importable, without importing them (seconds a plan does not need)."""
    try:
        return all(importlib.util.find_spec(m) is not None for m in ("torch", "voxcpm"))
    except (ImportError, ValueError):
        return False


def default_seed(text: str) -> int:
    """Texts read without a seed still get a fixed one, so a regenerated row sounds the same."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")


def seed_for(text: str, seed: int | None) -> int:
    """The seed a reading of ``text`` starts from: the one asked for, else the text's own."""
    return seed if seed is not None else default_seed(text)
