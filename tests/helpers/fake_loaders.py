"""Loaders a replica process can be told to use instead of voxcpm: they record what the process was given.

``recording(source, device, optimize, **kw)`` returns a model that answers
``generate`` with silence as long as ``max_len`` allows and says, through its
``tts_model``, which device string, compile flag and ``CUDA_VISIBLE_DEVICES``
its process saw; it never touches CUDA, so the settings logic can be checked
on a machine without a GPU.
"""

from __future__ import annotations

import os
from types import SimpleNamespace

import numpy as np


class _Model:
    def __init__(self, device: str, optimize: bool) -> None:
        vae = SimpleNamespace(sample_rate=16000, hop_length=640)
        self.tts_model = SimpleNamespace(
            sample_rate=48000, _encode_sample_rate=16000, audio_vae=vae, patch_size=4, device=device
        )
        if optimize and device == "cuda":
            self.tts_model._feat_encoder_raw = object()  # what voxcpm leaves behind when compile applied
        self.seen = {"device": device, "optimize": optimize, "visible": os.environ.get("CUDA_VISIBLE_DEVICES")}

    def generate(self, **arguments):
        import torch

        draw = torch.rand(1).item()  # depends on the seed the parent sent
        return np.full(arguments["min_len"] * 7680, draw * 0.1, dtype=np.float32)

    def generate_streaming(self, **arguments):
        for _ in range(arguments["min_len"]):
            yield np.zeros(7680, dtype=np.float32)


def recording(source: str, device: str, optimize: bool, **kwargs):
    return _Model(device, optimize)
