"""VoxCPM on this machine: the one home of its models, its settings and its reading recipe.

- ``settings``: ``VoxcpmSettings`` (env prefix ``VOXCPM_``) read through
  ``current_settings``; ``installed``; the seed a reading starts from.
- ``pool`` and ``replicas``: loaded models, one replica per device (or per
  process); ``Voicing`` (the voice a reading uses: a recording, its
  transcript, a style) and ``Knobs`` (the model's arguments).
- ``batch``: the batched engine (nano-vllm-voxcpm, or its CPU stand-in).
- ``flash_attn_sdpa``: the attention stand-in nano-vllm imports when
  flash-attn is not installed.

The reading recipe itself (pieces, length checks, the seed of each retake,
reading with retakes) is ``engines.reading``, shared with the VoxCPM server
client. The pipeline's ``voxcpm`` backend and ``mediamill serve`` are adapters
over this package; a check by ear reaches it as a function argument.
"""

from .pool import Knobs, ModelLoadError, Voicing, architecture, model_identity, model_label
from .replicas import replica_pool
from .settings import INSTALL_HINT, VoxcpmSettings, current_settings, default_seed, installed, seed_for

__all__ = [
    "INSTALL_HINT",
    "Knobs",
    "ModelLoadError",
    "Voicing",
    "VoxcpmSettings",
    "architecture",
    "current_settings",
    "default_seed",
    "installed",
    "model_identity",
    "model_label",
    "replica_pool",
    "seed_for",
]
