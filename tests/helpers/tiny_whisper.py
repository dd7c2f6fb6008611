"""A tiny, randomly initialised multilingual Whisper model in CTranslate2 format, built offline.

No weights can be downloaded here, so tests build a model with Whisper's real
architecture at toy sizes (``transformers.WhisperForConditionalGeneration``,
random init), a byte-level BPE tokenizer made locally with ``tokenizers``
(Whisper's vocabulary layout: 50257 text tokens, one of them empty, then
``<|endoftext|>``, ``<|startoftranscript|>``, 99 language tokens, the task and
control tokens; CTranslate2 adds the 1501 timestamp tokens to reach 51865; it
takes a model with an empty token for a multilingual one), and converts it with
``ctranslate2.converters.TransformersConverter``. faster-whisper loads the
result like a downloaded model. Its transcripts are random tokens: good for
testing the code path, not accuracy.

``build(folder)`` returns the model folder (``folder/ct2``); about 3 s and 6 MB.
"""

from __future__ import annotations

import itertools
import json
import string
from pathlib import Path

# Whisper's language tokens, in its vocabulary's order.
LANGUAGES = (
    "en zh de es ru ko fr ja pt tr pl ca nl ar sv it id hi fi vi he uk el ms cs ro da hu ta no th ur hr bg lt la "
    "mi ml cy sk te fa lv bn sr az sl kn et mk br eu is hy ne mn bs kk sq sw gl mr pa si km sn yo so af oc ka be "
    "tg sd gu am yi lo uz fo ht ps tk nn mt sa lb my bo tl mg as tt haw ln ha ba jw su"
).split()
TEXT_TOKENS = 50257
VOCAB_SIZE = 51865
CONTROL = ["<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>"]


def _byte_chars() -> list[str]:
    """The 256 printable stand-ins byte-level BPE uses for the bytes 0-255."""
    keep = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars, extra = {}, 0
    for b in range(256):
        if b in keep:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in range(256)]


def _tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    vocab: dict[str, int] = {}
    for ch in _byte_chars():
        vocab[ch] = len(vocab)
    # Fill the text vocabulary with letter strings, half of them word-initial ("Ġ" is a space).
    letters = string.ascii_lowercase
    for size in itertools.count(2):
        for combo in itertools.product(letters, repeat=size):
            for token in ("".join(combo), "Ġ" + "".join(combo)):
                if len(vocab) < TEXT_TOKENS - 1 and token not in vocab:
                    vocab[token] = len(vocab)
        if len(vocab) >= TEXT_TOKENS - 1:
            break
    # Multilingual Whisper vocabularies hold one empty token; CTranslate2 reads its presence as "multilingual".
    vocab[""] = len(vocab)
    specials = ["<|endoftext|>", "<|startoftranscript|>", *(f"<|{code}|>" for code in LANGUAGES), *CONTROL]
    for token in specials:
        vocab[token] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(specials)
    return tok, vocab


def build(folder: Path, seed: int = 0) -> Path:
    """Write the Transformers checkpoint to ``folder/hf`` and the CTranslate2 model to ``folder/ct2``."""
    import torch
    from ctranslate2.converters import TransformersConverter
    from transformers import (
        GenerationConfig,
        PreTrainedTokenizerFast,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
    )

    folder = Path(folder)
    hf, ct2 = folder / "hf", folder / "ct2"
    if (ct2 / "model.bin").is_file():
        return ct2
    hf.mkdir(parents=True, exist_ok=True)
    tok, vocab = _tokenizer()
    eot, sot = vocab["<|endoftext|>"], vocab["<|startoftranscript|>"]
    no_timestamps = vocab["<|notimestamps|>"]
    config = WhisperConfig(
        vocab_size=VOCAB_SIZE,
        num_mel_bins=80,
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_source_positions=1500,
        max_target_positions=448,
        pad_token_id=eot,
        bos_token_id=eot,
        eos_token_id=eot,
        decoder_start_token_id=sot,
        suppress_tokens=[],
        begin_suppress_tokens=[220, eot],
    )
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig(
        decoder_start_token_id=sot,
        eos_token_id=eot,
        pad_token_id=eot,
        suppress_tokens=[],
        begin_suppress_tokens=[220, eot],
        no_timestamps_token_id=no_timestamps,
        is_multilingual=True,
        lang_to_id={f"<|{c}|>": vocab[f"<|{c}|>"] for c in LANGUAGES},
        alignment_heads=[[0, 0], [0, 1]],
        task_to_id={"translate": vocab["<|translate|>"], "transcribe": vocab["<|transcribe|>"]},
    )
    model.save_pretrained(hf)
    eot_text = "<|endoftext|>"
    others = [t for t in tok.get_vocab() if t.startswith("<|") and t != eot_text]
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=eot_text,
        eos_token=eot_text,
        unk_token=eot_text,
        pad_token=eot_text,
        additional_special_tokens=others,
    )
    fast.save_pretrained(hf)
    WhisperFeatureExtractor(feature_size=80).save_pretrained(hf)
    TransformersConverter(str(hf), copy_files=["tokenizer.json", "preprocessor_config.json"]).convert(
        str(ct2), force=True
    )
    (ct2 / "tiny_whisper.json").write_text(json.dumps({"random": True, "seed": seed, "vocab_size": VOCAB_SIZE}))
    return ct2


if __name__ == "__main__":  # pragma: no cover
    import sys

    print(build(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/tiny-whisper")))
