"""A CPU stand-in for nano-vllm-voxcpm's ``AsyncVoxCPM2ServerPool``: same async API, deterministic audio.

For tests and dry runs of the batched engine on machines without a GPU. It
implements the methods mediamill's adapter calls, with the signatures of
nano-vllm-voxcpm 2.0.5 (``models/voxcpm2/server.py``):

- ``wait_for_ready()``, ``stop()``, ``get_model_info()`` (same keys);
- ``encode_latents(wav: bytes, wav_format: str) -> bytes``: float32 latents of
  shape ``(patches * patch_size, feat_dim)``, as many patches as the audio lasts;
- ``add_prompt(wav, wav_format, prompt_text) -> id`` and ``remove_prompt(id)``;
- ``generate(target_text, prompt_latents=None, prompt_text="", prompt_id=None,
  max_generate_length=2000, temperature=1.0, cfg_value=2.0,
  ref_audio_latents=None, lora_name=None, seed=None)``: an async generator of
  float32 waveform chunks, one per engine step.

It also keeps nano-vllm's rules where the adapter depends on them: prompt text
only with prompt latents (and required with them), ``max_generate_length >= 1``,
prompt tokens + ``max_generate_length`` within ``max_model_len`` (counted with
the checkpoint's tokenizer like the engine does), latents in whole patches.
Refusals surface as ``RuntimeError`` carrying the worker's ``ValueError``
text, as the real pool reports errors raised in its worker process.

Scheduling imitates the real engine: a FIFO waiting queue, at most
``max_num_seqs`` running, prefill steps (bounded by ``max_num_batched_tokens``)
before decode steps, one chunk per running sequence per step, a step time of
``step_s + per_seq_s * batch``. A sequence stops after its *natural length*
(from ``length_rule(text, seed)``; by default about the text's predicted
duration, varying by seed) or at ``max_generate_length``; like nano-vllm there
is no minimum length. Audio depends only on (text, prompt latents, reference
latents, seed, cfg, steps): the same request gives the same samples whatever
else runs in the batch.

``log`` records every accepted request (its arguments and this server's
``inference_timesteps``); ``peak_running`` the largest batch stepped.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import math
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["StandInServerPool", "StandInDied", "default_length"]


class StandInDied(RuntimeError):
    """The stand-in's "worker" was killed (``kill()``), like nano-vllm's WorkerDiedError."""


def _rates(model_path: str | None) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if model_path and (Path(model_path) / "config.json").is_file():
        config = json.loads((Path(model_path) / "config.json").read_text(encoding="utf-8"))
    vae = config.get("audio_vae_config") or {}
    patch = int(config.get("patch_size", 4))
    rate = int(vae.get("sample_rate", 16000))
    out_rate = int(vae.get("out_sample_rate", rate))
    enc = math.prod(vae.get("encoder_rates", [2, 5, 8, 8]))
    dec = math.prod(vae.get("decoder_rates", [8, 6, 5, 2, 2, 2]))
    return {
        "patch_size": patch,
        "feat_dim": int(config.get("feat_dim", 64)),
        "sample_rate": rate,
        "out_sample_rate": out_rate,
        "encoder_hop": enc,
        "samples_per_step": dec * patch,
        "steps_per_s": rate / (enc * patch),
    }


def _unit(*parts: object) -> float:
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def default_length(text: str, seed: int | None, steps_per_s: float) -> int:
    """Natural length in steps: the text's predicted duration, 0.85-1.15x by seed."""
    from ....text import predicted_seconds

    spoken = text.split(")", 1)[1] if text.startswith("(") and ")" in text else text  # voice design prefix
    return max(1, round(predicted_seconds(spoken) * steps_per_s * (0.85 + 0.3 * _unit("len", text, seed))))


@dataclass
class _Seq:
    id: str
    prompt_len: int
    natural: int
    limit: int
    voice: float  # deterministic tone parameter for this request
    stream: asyncio.Queue
    made: int = 0


@dataclass
class StandInServerPool:
    model_path: str | None = None
    inference_timesteps: int = 10
    max_num_batched_tokens: int = 16384
    max_num_seqs: int = 512
    max_model_len: int = 4096
    gpu_memory_utilization: float = 0.9
    enforce_eager: bool = False
    devices: list = field(default_factory=list)
    lora_config: Any = None
    step_s: float = 0.002
    per_seq_s: float = 0.00005
    length_rule: Callable[[str, int | None, float], int] | None = None

    def __post_init__(self) -> None:
        self.rates = _rates(self.model_path)
        self._tokenizer = None
        if self.model_path and (Path(self.model_path) / "tokenizer.json").is_file():
            from transformers import LlamaTokenizerFast

            self._tokenizer = LlamaTokenizerFast.from_pretrained(self.model_path)
        self.log: list[dict[str, Any]] = []
        self.peak_running = 0
        self.steps = 0
        self._waiting: deque[_Seq] = deque()
        self._running: list[_Seq] = []
        self._wake = asyncio.Event()
        self._dead = False
        self._prompts: dict[str, dict[str, Any]] = {}
        self._loop_task = asyncio.get_running_loop().create_task(self._engine_loop())

    # -- the pool's API ----------------------------------------------------
    async def wait_for_ready(self) -> None:
        await asyncio.sleep(0)

    async def stop(self) -> None:
        self._loop_task.cancel()
        try:
            await self._loop_task
        except asyncio.CancelledError:
            pass

    async def get_model_info(self) -> dict[str, Any]:
        r = self.rates
        return {
            "sample_rate": r["out_sample_rate"],
            "encoder_sample_rate": r["sample_rate"],
            "output_sample_rate": r["out_sample_rate"],
            "channels": 1,
            "feat_dim": r["feat_dim"],
            "patch_size": r["patch_size"],
            "model_path": str(self.model_path),
        }

    async def encode_latents(self, wav: bytes, wav_format: str) -> bytes:
        import soundfile

        self._check_alive()
        audio, rate = soundfile.read(io.BytesIO(wav), dtype="float32", always_2d=True)
        seconds = audio.shape[0] / rate
        patch_samples = self.rates["encoder_hop"] * self.rates["patch_size"]
        patches = max(1, math.ceil(seconds * self.rates["sample_rate"] / patch_samples))
        rng = np.random.default_rng(int.from_bytes(hashlib.sha256(wav).digest()[:8], "big"))
        latents = rng.standard_normal((patches * self.rates["patch_size"], self.rates["feat_dim"]))
        return latents.astype(np.float32).tobytes()

    async def add_prompt(self, wav: bytes, wav_format: str, prompt_text: str) -> str:
        prompt_id = uuid.uuid4().hex
        self._prompts[prompt_id] = {"latents": await self.encode_latents(wav, wav_format), "text": prompt_text}
        return prompt_id

    async def remove_prompt(self, prompt_id: str) -> None:
        del self._prompts[prompt_id]

    async def generate(
        self,
        target_text: str,
        prompt_latents: bytes | None = None,
        prompt_text: str = "",
        prompt_id: str | None = None,
        max_generate_length: int = 2000,
        temperature: float = 1.0,
        cfg_value: float = 2.0,
        ref_audio_latents: bytes | None = None,
        lora_name: str | None = None,
        seed: int | None = None,
    ) -> AsyncIterator[np.ndarray]:
        if prompt_id is not None:
            if prompt_id not in self._prompts:
                raise ValueError(f"Prompt with id {prompt_id} not found")
            prompt_latents, prompt_text = self._prompts[prompt_id]["latents"], self._prompts[prompt_id]["text"]
        if lora_name is not None:
            raise ValueError(f"LoRA '{lora_name}' is not registered")
        self._check_alive()
        seq = self._accept(
            target_text, prompt_latents, prompt_text, max_generate_length, cfg_value, ref_audio_latents, seed
        )
        normal_end = False
        try:
            while True:
                item = await seq.stream.get()
                if isinstance(item, BaseException):
                    raise item
                if item is None:
                    normal_end = True
                    return
                yield item
        finally:
            if not normal_end:  # the consumer left or failed: cancel, as the real pool does
                self._cancel(seq)

    # -- test hooks ----------------------------------------------------------
    def kill(self) -> None:
        """Make the "worker" die: every request in flight and every later one fails."""
        self._dead = True
        for seq in [*self._waiting, *self._running]:
            seq.stream.put_nowait(StandInDied("stand-in worker died"))
        self._waiting.clear()
        self._running.clear()

    @property
    def alive(self) -> bool:
        return not self._dead

    # -- the simulated engine ---------------------------------------------
    def _check_alive(self) -> None:
        if self._dead:
            raise StandInDied("stand-in worker died")

    def _patches(self, latents: bytes | None, what: str) -> int:
        if latents is None:
            return 0
        per_patch = 4 * self.rates["feat_dim"] * self.rates["patch_size"]
        if len(latents) % per_patch:
            raise _worker_error(
                f"{what} is not whole patches of ({self.rates['patch_size']}, {self.rates['feat_dim']}) float32"
            )
        return len(latents) // per_patch

    def _tokens(self, text: str) -> int:
        if self._tokenizer is None:
            return len(text.encode("utf-8")) + 1
        return len(self._tokenizer(text)["input_ids"])

    def _accept(self, text, prompt_latents, prompt_text, max_len, cfg, ref_latents, seed) -> _Seq:
        if prompt_latents is None and prompt_text:
            raise _worker_error("Prompt text is not allowed when prompt latents are not provided")
        if prompt_latents is not None and not prompt_text:
            raise _worker_error("Prompt text is required when prompt latents are provided")
        if max_len < 1:
            raise _worker_error(f"max_generate_length must be >= 1, got {max_len}")
        ref = self._patches(ref_latents, "ref_audio_latents")
        prompt = self._patches(prompt_latents, "prompt_latents")
        prompt_len = self._tokens(prompt_text + text) + 1 + prompt + (ref + 2 if ref_latents is not None else 0)
        if prompt_len + max_len > self.max_model_len:
            raise _worker_error(
                f"Request may exceed max_model_len: prompt_len({prompt_len}) + max_generate_length({max_len}) "
                f"= {prompt_len + max_len} > max_model_len({self.max_model_len})."
            )
        rule = self.length_rule or (lambda t, s, sps: default_length(t, s, sps))
        natural = max(1, int(rule(text, seed, self.rates["steps_per_s"])))
        voice = _unit(
            "voice",
            text,
            seed,
            cfg,
            self.inference_timesteps,
            hashlib.sha256(prompt_latents or b"").hexdigest(),
            hashlib.sha256(ref_latents or b"").hexdigest(),
        )
        seq = _Seq(uuid.uuid4().hex, prompt_len, natural, max_len, voice, asyncio.Queue())
        self.log.append(
            {
                "target_text": text,
                "prompt_text": prompt_text,
                "prompt_patches": prompt,
                "ref_patches": ref if ref_latents is not None else None,
                "max_generate_length": max_len,
                "cfg_value": cfg,
                "seed": seed,
                "inference_timesteps": self.inference_timesteps,
                "prompt_len": prompt_len,
                "natural": natural,
            }
        )
        self._waiting.append(seq)
        self._wake.set()
        return seq

    def _cancel(self, seq: _Seq) -> None:
        if seq in self._waiting:
            self._waiting.remove(seq)
        if seq in self._running:
            self._running.remove(seq)

    def _chunk(self, seq: _Seq) -> np.ndarray:
        n = self.rates["samples_per_step"]
        t = (seq.made * n + np.arange(n)) / self.rates["out_sample_rate"]
        freq = 110.0 + 330.0 * seq.voice
        return (0.2 * np.sin(2 * np.pi * freq * t)).astype(np.float32)

    async def _engine_loop(self) -> None:
        while True:
            if not self._waiting and not self._running:
                self._wake.clear()
                await self._wake.wait()
                continue
            batch: list[_Seq] = []
            tokens = 0
            # Prefill first (FIFO, bounded by sequences and batched tokens), else one decode step for all.
            while self._waiting and len(self._running) + len(batch) < self.max_num_seqs:
                if tokens + self._waiting[0].prompt_len > self.max_num_batched_tokens and batch:
                    break
                seq = self._waiting.popleft()
                tokens += seq.prompt_len
                batch.append(seq)
            if batch:
                self._running.extend(batch)
            else:
                batch = list(self._running)
            self.peak_running = max(self.peak_running, len(self._running))
            await asyncio.sleep(self.step_s + self.per_seq_s * len(batch))
            self.steps += 1
            for seq in batch:
                if seq not in self._running:
                    continue  # cancelled during the step
                seq.stream.put_nowait(self._chunk(seq))
                seq.made += 1
                if seq.made >= min(seq.natural, seq.limit):
                    self._running.remove(seq)
                    seq.stream.put_nowait(None)


def _worker_error(message: str) -> RuntimeError:
    # The real pool returns the worker's traceback text inside a RuntimeError.
    return RuntimeError(f"Traceback (most recent call last):\n  ...\nValueError: {message}")
