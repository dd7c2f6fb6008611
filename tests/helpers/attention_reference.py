"""Direct attention, one sequence and one head at a time: softmax(q k^T * scale) v with explicit masks.

The reference the stand-in is checked against. Slow on purpose: every rule
(GQA head mapping, bottom-right causal alignment, zeros for rows that see no
key, paged cache reads) is written out loop by loop.
"""

from __future__ import annotations

import torch


def attend_one(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, causal: bool) -> torch.Tensor:
    """q (Lq, H, D), k/v (Lk, Hk, D) -> (Lq, H, D), computed in float64."""
    len_q, heads, _ = q.shape
    len_k, kv_heads, _ = k.shape
    group = heads // kv_heads
    out = torch.zeros(len_q, heads, v.shape[-1], dtype=torch.float64)
    for h in range(heads):
        kh = k[:, h // group].double()
        vh = v[:, h // group].double()
        for i in range(len_q):
            scores = (kh @ q[i, h].double()) * scale
            keep = torch.ones(len_k, dtype=torch.bool)
            if causal:
                keep = torch.arange(len_k) <= i + len_k - len_q
            if not keep.any():
                continue  # flash-attn: a row that sees no key is zero
            weights = torch.softmax(scores.masked_fill(~keep, float("-inf")), dim=0)
            out[i, h] = weights @ vh
    return out


def read_paged(cache: torch.Tensor, blocks: list[int], length: int) -> torch.Tensor:
    """The first ``length`` positions of one sequence from a paged cache (num_blocks, block_size, Hk, D)."""
    block_size = cache.shape[1]
    rows = [cache[blocks[t // block_size], t % block_size] for t in range(length)]
    return torch.stack(rows) if rows else cache[:0, 0]
