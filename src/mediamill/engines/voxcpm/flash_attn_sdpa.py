"""A PyTorch stand-in for the three flash-attn functions nano-vllm-voxcpm calls.

nano-vllm-voxcpm 2.0.5 imports ``flash_attn`` unconditionally (``llm.py`` checks
it, ``layers/attention.py`` imports three functions). Where flash-attn is not
installed (no wheel for the machine, no compiler), ``install()`` puts this
module in its place, both in this process (``sys.modules``) and in the worker
processes nano-vllm spawns (a one-file ``flash_attn`` package on ``sys.path``,
which ``multiprocessing``'s spawn start method hands to its children).

Contract, for inference only (no dropout, no backward), following
flash-attn 2's documented semantics:

- ``flash_attn_func(q, k, v, softmax_scale, causal)``: q ``(B, Sq, H, D)``,
  k/v ``(B, Sk, Hk, D)`` -> ``(B, Sq, H, D)``.
- ``flash_attn_varlen_func(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q,
  max_seqlen_k, softmax_scale, causal, block_table)``: sequences packed along
  the first axis, q ``(total_q, H, D)``; k/v ``(total_k, Hk, D)``, or, with a
  ``block_table`` ``(B, max_blocks)``, a paged cache ``(num_blocks,
  block_size, Hk, D)`` read through the table -> ``(total_q, H, D)``.
- ``flash_attn_with_kvcache(q, k_cache, v_cache, cache_seqlens, block_table,
  softmax_scale, causal)``: q ``(B, Sq, H, D)`` against the first
  ``cache_seqlens[b]`` cached keys of each sequence (paged through
  ``block_table``, or a dense ``(B, S, Hk, D)`` cache) -> ``(B, Sq, H, D)``.

Shared rules: ``softmax_scale`` defaults to ``D ** -0.5``; grouped-query
attention maps query head ``h`` to key head ``h // (H // Hk)``; a causal mask
is aligned to the bottom-right corner (query ``i`` of ``Lq`` sees keys
``j <= i + Lk - Lq``); a query row that may see no key returns zeros; block
table entries past a sequence's blocks (nano-vllm pads with -1) are never read;
outputs are contiguous, in q's dtype (nano-vllm ``.view()``s them).
Anything else flash-attn offers (dropout, sliding windows, ALiBi, softcap,
appending ``k``/``v`` into the cache, rotary embedding, returning the LSE) is
refused with ``NotImplementedError`` rather than silently ignored.

Everything is tensor work on the inputs' device with no host synchronisation
(no ``.item()``, no ``.tolist()``), so nano-vllm's CUDA-graph capture of the
decode step can record it. It pads each batch to its longest sequence and lets
``scaled_dot_product_attention`` pick a kernel; it is a correctness stand-in,
not a fast kernel.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import torch
import torch.nn.functional as F

__all__ = [
    "flash_attn_func",
    "flash_attn_varlen_func",
    "flash_attn_with_kvcache",
    "install",
    "active",
    "STANDIN_VERSION",
]

STANDIN_VERSION = "sdpa-standin-1"
SHIM_DIR = Path(__file__).resolve().parent / "flash_attn_shim"


def _refuse(**options: object) -> None:
    for name, value in options.items():
        if name == "window_size":
            if tuple(value) != (-1, -1):  # type: ignore[arg-type]  # window_size is a (left, right) pair
                raise NotImplementedError("flash_attn_sdpa: sliding-window attention is not supported")
        elif name in ("dropout_p", "softcap"):
            if value:
                raise NotImplementedError(f"flash_attn_sdpa: {name} is not supported")
        elif value is not None and value is not False:
            raise NotImplementedError(f"flash_attn_sdpa: {name} is not supported")


def _attend(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, allowed: torch.Tensor, scale: float | None
) -> torch.Tensor:
    """q (B, Lq, H, D), k/v (B, Lk, Hk, D), allowed (B, Lq, Lk) bool -> (B, Lq, H, D)."""
    heads, kv_heads = q.shape[2], k.shape[2]
    if heads % kv_heads:
        raise ValueError(f"flash_attn_sdpa: {heads} query heads are not a multiple of {kv_heads} key/value heads")
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    qh, kh, vh = (x.transpose(1, 2) for x in (q, k, v))  # (B, heads, L, D)
    mask = allowed.unsqueeze(1)  # one mask for every head
    if kv_heads != heads:
        try:
            out = F.scaled_dot_product_attention(qh, kh, vh, attn_mask=mask, scale=scale, enable_gqa=True)
        except TypeError:  # torch before 2.5: repeat the key/value heads instead
            group = heads // kv_heads
            kh, vh = kh.repeat_interleave(group, dim=1), vh.repeat_interleave(group, dim=1)
            out = F.scaled_dot_product_attention(qh, kh, vh, attn_mask=mask, scale=scale)
    else:
        out = F.scaled_dot_product_attention(qh, kh, vh, attn_mask=mask, scale=scale)
    # flash-attn writes zeros where a query may see nothing; softmax over no keys gives NaN here.
    out = out.masked_fill(~allowed.any(-1)[:, None, :, None], 0.0)
    # flash-attn returns a contiguous (B, L, H, D) tensor and callers .view() it.
    return out.transpose(1, 2).contiguous()


def _allowed(len_q: torch.Tensor, len_k: torch.Tensor, max_q: int, max_k: int, causal: bool) -> torch.Tensor:
    """(B, max_q, max_k) mask from per-sequence lengths; causal aligned bottom-right."""
    device = len_k.device
    pos_q = torch.arange(max_q, device=device)
    pos_k = torch.arange(max_k, device=device)
    allowed = (pos_k[None, None, :] < len_k[:, None, None]).expand(len_k.shape[0], max_q, max_k)
    if causal:
        last_visible = pos_q[None, :, None] + (len_k - len_q)[:, None, None]
        allowed = allowed & (pos_k[None, None, :] <= last_visible)
    return allowed


def _paged(cache: torch.Tensor, block_table: torch.Tensor, length: int) -> torch.Tensor:
    """Read ``length`` positions of every sequence from a paged cache: (B, length, Hk, D)."""
    blocks = block_table.long().clamp(min=0)  # -1 padding reads block 0; the mask hides it
    gathered = cache[blocks]  # (B, max_blocks, block_size, Hk, D)
    batch, n_blocks, block_size = gathered.shape[:3]
    if n_blocks * block_size < length:
        raise ValueError(f"flash_attn_sdpa: block table covers {n_blocks * block_size} positions, need {length}")
    return gathered.reshape(batch, n_blocks * block_size, *cache.shape[2:])[:, :length]


def flash_attn_func(
    q,
    k,
    v,
    dropout_p=0.0,
    softmax_scale=None,
    causal=False,
    window_size=(-1, -1),
    softcap=0.0,
    alibi_slopes=None,
    deterministic=False,
    return_attn_probs=False,
):
    """Attention over equal-length batches: q (B, Sq, H, D), k/v (B, Sk, Hk, D)."""
    _refuse(
        dropout_p=dropout_p,
        window_size=window_size,
        softcap=softcap,
        alibi_slopes=alibi_slopes,
        return_attn_probs=return_attn_probs,
    )
    batch, len_q, len_k = q.shape[0], q.shape[1], k.shape[1]
    lq = torch.full((batch,), len_q, device=q.device)
    lk = torch.full((batch,), len_k, device=q.device)
    return _attend(q, k, v, _allowed(lq, lk, len_q, len_k, causal), softmax_scale)


def flash_attn_varlen_func(
    q,
    k,
    v,
    cu_seqlens_q,
    cu_seqlens_k,
    max_seqlen_q,
    max_seqlen_k,
    dropout_p=0.0,
    softmax_scale=None,
    causal=False,
    window_size=(-1, -1),
    softcap=0.0,
    alibi_slopes=None,
    deterministic=False,
    return_attn_probs=False,
    block_table=None,
):
    """Attention over sequences packed along axis 0 (nano-vllm's prefill), optionally reading a paged cache."""
    _refuse(
        dropout_p=dropout_p,
        window_size=window_size,
        softcap=softcap,
        alibi_slopes=alibi_slopes,
        return_attn_probs=return_attn_probs,
    )
    cu_q, cu_k = cu_seqlens_q.long(), cu_seqlens_k.long()
    len_q, len_k = cu_q[1:] - cu_q[:-1], cu_k[1:] - cu_k[:-1]
    max_q, max_k = int(max_seqlen_q), int(max_seqlen_k)
    total_q = q.shape[0]
    pos_q = torch.arange(max_q, device=q.device)
    index_q = (cu_q[:-1, None] + pos_q[None, :]).clamp(max=max(total_q - 1, 0))
    q_pad = q[index_q]  # (B, max_q, H, D); rows past a sequence's end are computed and dropped
    if block_table is None:
        pos_k = torch.arange(max_k, device=k.device)
        index_k = (cu_k[:-1, None] + pos_k[None, :]).clamp(max=max(k.shape[0] - 1, 0))
        k_pad, v_pad = k[index_k], v[index_k]
    else:
        k_pad, v_pad = _paged(k, block_table, max_k), _paged(v, block_table, max_k)
    out_pad = _attend(q_pad, k_pad, v_pad, _allowed(len_q, len_k, max_q, max_k, causal), softmax_scale)
    # Back to the packed layout: token t belongs to sequence b = #(cu_q[1:] <= t), at position t - cu_q[b].
    tokens = torch.arange(total_q, device=q.device)
    seq = torch.searchsorted(cu_q[1:].contiguous(), tokens, right=True)
    return out_pad[seq, tokens - cu_q[seq]]


def flash_attn_with_kvcache(
    q,
    k_cache,
    v_cache,
    k=None,
    v=None,
    rotary_cos=None,
    rotary_sin=None,
    cache_seqlens=None,
    cache_batch_idx=None,
    cache_leftpad=None,
    block_table=None,
    softmax_scale=None,
    causal=False,
    window_size=(-1, -1),
    softcap=0.0,
    rotary_interleaved=True,
    alibi_slopes=None,
    num_splits=0,
    return_softmax_lse=False,
):
    """Attention of q (B, Sq, H, D) over a KV cache (nano-vllm's decode step); the cache is not written."""
    _refuse(
        k=k,
        v=v,
        rotary_cos=rotary_cos,
        rotary_sin=rotary_sin,
        cache_batch_idx=cache_batch_idx,
        cache_leftpad=cache_leftpad,
        window_size=window_size,
        softcap=softcap,
        alibi_slopes=alibi_slopes,
        return_softmax_lse=return_softmax_lse,
    )
    batch, len_q = q.shape[0], q.shape[1]
    if block_table is None:
        k_all, v_all = k_cache[:batch], v_cache[:batch]
    else:
        span = block_table.shape[1] * k_cache.shape[1]
        k_all, v_all = _paged(k_cache, block_table, span), _paged(v_cache, block_table, span)
    max_k = k_all.shape[1]
    if cache_seqlens is None:
        lens = torch.full((batch,), max_k, device=q.device)
    elif isinstance(cache_seqlens, int):
        lens = torch.full((batch,), cache_seqlens, device=q.device)
    else:
        lens = cache_seqlens.long()
    lq = torch.full((batch,), len_q, device=q.device)
    return _attend(q, k_all, v_all, _allowed(lq, lens, len_q, max_k, causal), softmax_scale)


def _real_flash_attn_present() -> bool:
    """Whether ``import flash_attn`` gives (or would give) the real package rather than this stand-in."""
    module = sys.modules.get("flash_attn")
    if module is not None:
        return not getattr(module, "MEDIAMILL_STANDIN", False)
    try:
        spec = importlib.util.find_spec("flash_attn")
    except (ImportError, ValueError):
        return False
    origin = Path(spec.origin).resolve() if spec is not None and spec.origin else None
    return origin is not None and SHIM_DIR not in origin.parents


_spec_is_real = _real_flash_attn_present


def active() -> str:
    """What ``import flash_attn`` gives this process: 'flash-attn <version>', 'sdpa stand-in' or 'none'."""
    module = sys.modules.get("flash_attn")
    if module is None:
        if not _real_flash_attn_present():
            return "none"
        module = importlib.import_module("flash_attn")  # only to read its version
    if getattr(module, "MEDIAMILL_STANDIN", False):
        return "sdpa stand-in"
    return f"flash-attn {getattr(module, '__version__', '?')}"


def install(force: bool = False) -> bool:
    """Make ``import flash_attn`` work, here and in spawned children; True if the stand-in is now in use.

    With the real flash-attn importable (and ``force`` false) nothing changes.
    """
    if not force and _real_flash_attn_present():
        return False
    shim = str(SHIM_DIR)
    if shim not in sys.path:
        sys.path.insert(0, shim)  # multiprocessing's spawn copies sys.path into each child
    # Children started another way (subprocess, forkserver helpers) find it through PYTHONPATH.
    parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if shim not in parts:
        os.environ["PYTHONPATH"] = os.pathsep.join([shim, *parts])
    module = ModuleType("flash_attn")
    # A real spec, so importlib.util.find_spec("flash_attn") keeps working for others (transformers asks);
    # there is no flash-attn distribution metadata, so they still see flash-attn as not installed.
    module.__spec__ = importlib.util.spec_from_file_location("flash_attn", SHIM_DIR / "flash_attn" / "__init__.py")
    module.__doc__ = "flash-attn stand-in on torch's scaled_dot_product_attention (see flash_attn_sdpa)."
    module.__version__ = STANDIN_VERSION  # type: ignore[attr-defined]  # set on a bare ModuleType
    module.MEDIAMILL_STANDIN = True  # type: ignore[attr-defined]  # set on a bare ModuleType
    for name in ("flash_attn_func", "flash_attn_varlen_func", "flash_attn_with_kvcache"):
        setattr(module, name, globals()[name])
    sys.modules["flash_attn"] = module
    return True
