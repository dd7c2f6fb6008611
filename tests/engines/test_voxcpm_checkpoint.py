"""The tiny checkpoint loads in both engines, voxcpm and nano-vllm-voxcpm, and its stop head still decides lengths."""

from __future__ import annotations

import json

import pytest

from mediamill.engines.voxcpm import flash_attn_sdpa
from tests.helpers.tiny_voxcpm import build


def test_every_key_of_the_checkpoint_is_a_nanovllm_parameter(tiny_voxcpm):
    import torch

    flash_attn_sdpa.install()
    from nanovllm_voxcpm.layers.audio_vae_v2 import AudioVAEV2
    from nanovllm_voxcpm.models.voxcpm2.config import VoxCPM2Config
    from nanovllm_voxcpm.models.voxcpm2.model import VoxCPM2Model
    from nanovllm_voxcpm.utils.loader import load_model

    # nano-vllm's loader reads every *.safetensors as model weights: the VAE must not be one of them.
    assert sorted(p.name for p in tiny_voxcpm.glob("*.safetensors")) == ["model.safetensors"]
    assert json.loads((tiny_voxcpm / "config.json").read_text())["lm_config"]["use_mup"] is False
    config = VoxCPM2Config.model_validate_json((tiny_voxcpm / "config.json").read_text())
    model = VoxCPM2Model(config, 4)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.fill_(float("nan"))
    load_model(model, str(tiny_voxcpm))  # raises on a key that is no parameter of the model
    # Every parameter was written from the file (packed ones, such as qkv, shard by shard): none left unset.
    unset = [name for name, parameter in model.named_parameters() if torch.isnan(parameter).any()]
    assert unset == []
    vae = AudioVAEV2(config=config.audio_vae_config)
    vae.load_state_dict(torch.load(tiny_voxcpm / "audiovae.pth")["state_dict"])  # nano-vllm's own read


@pytest.mark.parametrize("stop", ["early", "never"])
def test_voxcpm_reads_the_checkpoint_and_the_stop_head_sets_lengths(tmp_path, stop):
    from voxcpm import VoxCPM

    folder = build(tmp_path / "ck", stop=stop)
    model = VoxCPM(
        voxcpm_model_path=str(folder), zipenhancer_model_path=None, enable_denoiser=False, optimize=False, device="cpu"
    )
    samples = model.generate(text="Hello there.", min_len=4, max_len=12, retry_badcase=False)
    assert len(samples) == (6 if stop == "early" else 12) * 7680
