"""A tiny, randomly initialised VoxCPM2 checkpoint for CPU tests and benchmarks.

Real weights cannot be downloaded here, so this builds a checkpoint directory
with the real architecture at toy sizes: ``config.json``, a byte-level
tokenizer, ``model.safetensors`` and ``audiovae.pth`` from voxcpm's own
classes. ``voxcpm.VoxCPM`` loads it like a downloaded model, and so does
nano-vllm-voxcpm, whose loader is stricter: every ``*.safetensors`` in the
folder is read as language-model parameters (so the VAE is a ``.pth`` holding
``{"state_dict": ...}``, which voxcpm reads too) and ``lm_config.use_mup``
must be false (with random weights it only picks another random function; the
stop head, which decides every length the tests rely on, ignores it).

The stop head decides how long generation runs, and random weights would make
that arbitrary, so it is set explicitly:

- ``stop="early"``: the model asks to stop at every step, so it stops as soon
  as ``min_len`` allows (generation length is whatever the caller's minimum is);
- ``stop="never"``: it never asks to stop and runs to ``max_len`` (a babbling model).

``size="full"`` builds the published VoxCPM2 dimensions instead (about 2.3 B
parameters, bf16), still with random weights: for GPU benchmarks, where random
weights of the real architecture take as long per step as trained ones.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

# Token ids 0-2 are unk/bos/eos and 101-104 are VoxCPM2's audio markers, so the
# vocabulary must be larger than 104; printable ASCII fills the ids in between.
VOCAB_SIZE = 256
_SPECIAL = {
    0: "<unk>",
    1: "<s>",
    2: "</s>",
    101: "<|audio_start|>",
    102: "<|audio_end|>",
    103: "<|ref_audio_start|>",
    104: "<|ref_audio_end|>",
}


def _vocab() -> dict[str, int]:
    vocab = {token: i for i, token in _SPECIAL.items()}
    free = (i for i in range(3, VOCAB_SIZE) if i not in _SPECIAL)
    for ch in ["\u2581"] + [chr(c) for c in range(33, 127)]:
        vocab[ch] = next(free)
    return vocab


def _config() -> dict:
    return {
        "architecture": "voxcpm2",
        "lm_config": {
            "bos_token_id": 1,
            "eos_token_id": 2,
            "hidden_size": 64,
            "intermediate_size": 128,
            "max_position_embeddings": 4096,
            "num_attention_heads": 2,
            "num_hidden_layers": 2,
            "num_key_value_heads": 1,
            "rms_norm_eps": 1e-5,
            "vocab_size": VOCAB_SIZE,
            "rope_scaling": {
                "type": "longrope",
                "long_factor": [1.0] * 16,
                "short_factor": [1.0] * 16,
                "original_max_position_embeddings": 4096,
            },
            "use_mup": False,
            "scale_emb": 12,
            "dim_model_base": 256,
            "scale_depth": 1.4,
            "rope_theta": 10000.0,
        },
        "patch_size": 4,
        "feat_dim": 16,
        "residual_lm_num_layers": 1,
        "scalar_quantization_latent_dim": 16,
        "scalar_quantization_scale": 9,
        "encoder_config": {"hidden_dim": 64, "ffn_dim": 128, "num_heads": 2, "num_layers": 1},
        "dit_config": {
            "hidden_dim": 64,
            "ffn_dim": 128,
            "num_heads": 2,
            "num_layers": 1,
            "dit_mean_mode": False,
            "cfm_config": {"sigma_min": 1e-6, "solver": "euler", "t_scheduler": "log-norm", "inference_cfg_rate": 1.0},
        },
        "audio_vae_config": {
            "encoder_dim": 8,
            "encoder_rates": [2, 5, 8, 8],
            "latent_dim": 16,
            "decoder_dim": 64,
            "decoder_rates": [8, 6, 5, 2, 2, 2],
            "depthwise": True,
            "sample_rate": 16000,
            "out_sample_rate": 48000,
            "use_noise_block": False,
            "sr_bin_boundaries": [20000, 30000, 40000],
            "cond_type": "scale_bias",
            "cond_dim": 16,
            "cond_out_layer": False,
        },
        "max_length": 4096,
        "device": "cpu",
        "dtype": "float32",
    }


def _full_config() -> dict:
    """VoxCPM2's published sizes (2048-wide 28-layer MiniCPM4 with an 8-layer residual LM, 12-layer
    encoder and DiT); only the vocabulary's contents differ (random weights need no real tokens)."""
    head = 128
    return {
        "architecture": "voxcpm2",
        "lm_config": {
            "bos_token_id": 1,
            "eos_token_id": 2,
            "hidden_size": 2048,
            "intermediate_size": 6144,
            "max_position_embeddings": 32768,
            "num_attention_heads": 16,
            "num_hidden_layers": 28,
            "num_key_value_heads": 2,
            "rms_norm_eps": 1e-5,
            "vocab_size": 73448,
            "kv_channels": head,
            "rope_scaling": {
                "type": "longrope",
                "long_factor": [1.0] * (head // 2),
                "short_factor": [1.0] * (head // 2),
                "original_max_position_embeddings": 32768,
            },
            "use_mup": False,
            "scale_emb": 12,
            "dim_model_base": 256,
            "scale_depth": 1.4,
            "rope_theta": 10000.0,
        },
        "patch_size": 4,
        "feat_dim": 64,
        "residual_lm_num_layers": 8,
        "residual_lm_no_rope": True,
        "scalar_quantization_latent_dim": 512,
        "scalar_quantization_scale": 9,
        "encoder_config": {"hidden_dim": 1024, "ffn_dim": 4096, "num_heads": 16, "num_layers": 12, "kv_channels": head},
        "dit_config": {
            "hidden_dim": 1024,
            "ffn_dim": 4096,
            "num_heads": 16,
            "num_layers": 12,
            "kv_channels": head,
            "dit_mean_mode": False,
            "cfm_config": {"sigma_min": 1e-6, "solver": "euler", "t_scheduler": "log-norm", "inference_cfg_rate": 2.0},
        },
        "audio_vae_config": {
            "encoder_dim": 128,
            "encoder_rates": [2, 5, 8, 8],
            "latent_dim": 64,
            "decoder_dim": 2048,
            "decoder_rates": [8, 6, 5, 2, 2, 2],
            "depthwise": True,
            "sample_rate": 16000,
            "out_sample_rate": 48000,
            "use_noise_block": False,
            "sr_bin_boundaries": [20000, 30000, 40000],
            "cond_type": "scale_bias",
            "cond_dim": 128,
            "cond_out_layer": False,
        },
        "max_length": 8192,
        "device": "cuda",
        "dtype": "bfloat16",
    }


def _write_tokenizer(folder: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    tok = Tokenizer(models.BPE(vocab=_vocab(), merges=[], unk_token="<unk>", byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first")
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="first")
    tok.add_special_tokens(list(_SPECIAL.values()))
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "LlamaTokenizerFast",
                "bos_token": "<s>",
                "eos_token": "</s>",
                "unk_token": "<unk>",
                "add_bos_token": True,
                "add_eos_token": False,
                "model_max_length": 4096,
            }
        )
    )


def build(
    folder: Path, stop: Literal["early", "never"] = "early", seed: int = 0, size: Literal["tiny", "full"] = "tiny"
) -> Path:
    """Write the checkpoint into ``folder`` (created) and return it."""
    import torch
    from safetensors.torch import save_file
    from transformers import LlamaTokenizerFast
    from voxcpm.model.voxcpm2 import VoxCPM2Model, VoxCPMConfig
    from voxcpm.modules.audiovae import AudioVAEConfigV2, AudioVAEV2

    folder.mkdir(parents=True, exist_ok=True)
    config = _config() if size == "tiny" else _full_config()
    (folder / "config.json").write_text(json.dumps(config, indent=1))
    _write_tokenizer(folder)

    torch.manual_seed(seed)
    vae = AudioVAEV2(config=AudioVAEConfigV2(**config["audio_vae_config"]))
    model = VoxCPM2Model(
        VoxCPMConfig.model_validate(config), LlamaTokenizerFast.from_pretrained(str(folder)), vae, device="cpu"
    )
    with torch.no_grad():
        if stop == "never":
            model.stop_head.weight.zero_()  # equal logits: argmax is 0, "continue"
        else:
            model.stop_proj.weight.zero_()
            model.stop_proj.bias.fill_(1.0)
            model.stop_head.weight.zero_()
            model.stop_head.weight[1].fill_(0.1)  # "stop" always wins
    dtype = torch.bfloat16 if size == "full" else torch.float32
    state = {k: v.to(dtype).contiguous() for k, v in model.state_dict().items() if not k.startswith("audio_vae.")}
    save_file(state, str(folder / "model.safetensors"))
    torch.save({"state_dict": {k: v.contiguous() for k, v in vae.state_dict().items()}}, folder / "audiovae.pth")
    return folder
