"""The flash-attn stand-in against direct attention, and at nano-vllm's own call sites."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

from mediamill.engines.voxcpm import flash_attn_sdpa as fa
from tests.helpers.attention_reference import attend_one, read_paged


def rand(*shape, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g).to(dtype)


def close(actual: torch.Tensor, expected: torch.Tensor, dtype=torch.float32) -> None:
    tol = {torch.float32: 2e-5, torch.bfloat16: 3e-2}[dtype]
    torch.testing.assert_close(actual.double(), expected, atol=tol, rtol=tol)


@pytest.mark.parametrize("heads,kv_heads", [(4, 4), (4, 2), (6, 1)])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("len_q,len_k", [(5, 5), (2, 7), (6, 3)])
def test_plain_attention_matches_direct(heads, kv_heads, causal, len_q, len_k):
    q, k, v = rand(3, len_q, heads, 8, seed=1), rand(3, len_k, kv_heads, 8, seed=2), rand(3, len_k, kv_heads, 8, seed=3)
    out = fa.flash_attn_func(q, k, v, softmax_scale=0.3, causal=causal)
    assert out.shape == (3, len_q, heads, 8) and out.dtype == q.dtype and out.is_contiguous()
    for b in range(3):
        close(out[b], attend_one(q[b], k[b], v[b], 0.3, causal))


def test_default_scale_is_inverse_sqrt_head_dim():
    q, k, v = rand(1, 3, 2, 16, seed=4), rand(1, 3, 2, 16, seed=5), rand(1, 3, 2, 16, seed=6)
    close(fa.flash_attn_func(q, k, v)[0], attend_one(q[0], k[0], v[0], 16**-0.5, False))


def test_causal_rows_that_see_nothing_are_zero():
    # Lq > Lk with bottom-right alignment: the first Lq - Lk query rows see no key.
    q, k, v = rand(1, 5, 2, 4, seed=7), rand(1, 2, 2, 4, seed=8), rand(1, 2, 2, 4, seed=9)
    out = fa.flash_attn_func(q, k, v, causal=True)
    assert torch.equal(out[0, :3], torch.zeros_like(out[0, :3]))
    close(out[0], attend_one(q[0], k[0], v[0], 4**-0.5, True))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("kv_heads", [4, 2, 1])
def test_varlen_prefill_matches_each_sequence_alone(dtype, kv_heads):
    lengths = [5, 1, 9, 3]
    total = sum(lengths)
    cu = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32)
    q, k, v = (
        rand(total, 4, 8, dtype=dtype, seed=10),
        rand(total, kv_heads, 8, dtype=dtype, seed=11),
        rand(total, kv_heads, 8, dtype=dtype, seed=12),
    )
    out = fa.flash_attn_varlen_func(
        q,
        k,
        v,
        cu_seqlens_q=cu,
        cu_seqlens_k=cu,
        max_seqlen_q=max(lengths),
        max_seqlen_k=max(lengths),
        softmax_scale=0.25,
        causal=True,
    )
    assert out.shape == q.shape and out.dtype == dtype and out.is_contiguous()
    for start, end in zip(cu[:-1].tolist(), cu[1:].tolist(), strict=True):
        close(out[start:end], attend_one(q[start:end], k[start:end], v[start:end], 0.25, True), dtype)


def paged_cache(lengths: list[int], block_size: int, kv_heads: int, dim: int, seed: int):
    """Sequences written into a shuffled paged cache; block tables padded with -1 like nano-vllm's."""
    blocks_needed = [-(-n // block_size) for n in lengths]
    n_blocks = sum(blocks_needed) + 3  # spare blocks hold garbage that must never be read
    order = torch.randperm(n_blocks, generator=torch.Generator().manual_seed(seed)).tolist()
    k_cache, v_cache = (
        rand(n_blocks, block_size, kv_heads, dim, seed=seed + 1),
        rand(n_blocks, block_size, kv_heads, dim, seed=seed + 2),
    )
    tables, cursor = [], 0
    for need in blocks_needed:
        tables.append(order[cursor : cursor + need])
        cursor += need
    width = max(blocks_needed)
    table = torch.tensor([t + [-1] * (width - len(t)) for t in tables], dtype=torch.int32)
    return k_cache, v_cache, tables, table


@pytest.mark.parametrize("kv_heads", [2, 1])
def test_varlen_prefill_over_a_prefix_cache(kv_heads):
    # Prefix caching: each sequence's first tokens are already in the paged cache; only the tail is queried.
    block_size, heads, dim = 4, 4, 8
    len_k = [9, 6, 12]  # the queried tails are 1, 6 and 4 tokens long
    k_cache, v_cache, tables, table = paged_cache(len_k, block_size, kv_heads, dim, seed=20)
    cu_q = torch.tensor([0, 1, 7, 11], dtype=torch.int32)
    cu_k = torch.tensor([0, 9, 15, 27], dtype=torch.int32)
    q = rand(11, heads, dim, seed=23)
    out = fa.flash_attn_varlen_func(
        q,
        k_cache,
        v_cache,
        cu_seqlens_q=cu_q,
        cu_seqlens_k=cu_k,
        max_seqlen_q=6,
        max_seqlen_k=12,
        softmax_scale=0.5,
        causal=True,
        block_table=table,
    )
    for b in range(3):
        keys = read_paged(k_cache, tables[b], len_k[b])
        values = read_paged(v_cache, tables[b], len_k[b])
        close(out[cu_q[b] : cu_q[b + 1]], attend_one(q[cu_q[b] : cu_q[b + 1]], keys, values, 0.5, True))


@pytest.mark.parametrize("kv_heads", [4, 2])
def test_paged_decode_reads_only_each_sequences_blocks(kv_heads):
    block_size, heads, dim = 4, 4, 8
    lengths = [1, 4, 5, 11]
    k_cache, v_cache, tables, table = paged_cache(lengths, block_size, kv_heads, dim, seed=30)
    q = rand(4, 1, heads, dim, seed=33)
    seqlens = torch.tensor(lengths, dtype=torch.int32)
    out = fa.flash_attn_with_kvcache(
        q, k_cache, v_cache, cache_seqlens=seqlens, block_table=table, softmax_scale=0.35, causal=True
    )
    assert out.shape == (4, 1, heads, dim) and out.is_contiguous()
    for b, n in enumerate(lengths):
        keys, values = read_paged(k_cache, tables[b], n), read_paged(v_cache, tables[b], n)
        close(out[b], attend_one(q[b], keys, values, 0.35, True))
    # One new token sees every cached key, so causal makes no difference at Sq = 1.
    torch.testing.assert_close(
        out,
        fa.flash_attn_with_kvcache(q, k_cache, v_cache, cache_seqlens=seqlens, block_table=table, softmax_scale=0.35),
    )


def test_padded_decode_rows_are_zero():
    # nano-vllm's CUDA graphs run padded batch rows with cache_seqlens 0 and a block table of zeros.
    k_cache, v_cache = rand(3, 4, 1, 8, seed=40), rand(3, 4, 1, 8, seed=41)
    q = rand(2, 1, 2, 8, seed=42)
    table = torch.tensor([[1, 2], [0, 0]], dtype=torch.int32)
    out = fa.flash_attn_with_kvcache(
        q, k_cache, v_cache, cache_seqlens=torch.tensor([6, 0], dtype=torch.int32), block_table=table, causal=True
    )
    assert torch.equal(out[1], torch.zeros_like(out[1]))
    close(out[0], attend_one(q[0], read_paged(k_cache, [1, 2], 6), read_paged(v_cache, [1, 2], 6), 8**-0.5, True))


def test_dense_kv_cache_and_integer_seqlens():
    k_cache, v_cache = rand(2, 10, 2, 8, seed=50), rand(2, 10, 2, 8, seed=51)
    q = rand(2, 3, 4, 8, seed=52)
    out = fa.flash_attn_with_kvcache(q, k_cache, v_cache, cache_seqlens=7, causal=True)
    for b in range(2):
        close(out[b], attend_one(q[b], k_cache[b, :7], v_cache[b, :7], 8**-0.5, True))


@pytest.mark.parametrize(
    "call",
    [
        lambda q: fa.flash_attn_func(q, q, q, dropout_p=0.1),
        lambda q: fa.flash_attn_func(q, q, q, window_size=(4, 0)),
        lambda q: fa.flash_attn_func(q, q, q, return_attn_probs=True),
        lambda q: fa.flash_attn_with_kvcache(q, q, q, k=q, v=q),
        lambda q: fa.flash_attn_with_kvcache(q, q, q, return_softmax_lse=True),
    ],
)
def test_unsupported_options_are_refused(call):
    with pytest.raises(NotImplementedError):
        call(rand(1, 4, 2, 8))


def test_install_serves_this_process_and_spawned_children(tmp_path):
    # A fresh interpreter without flash-attn: after install(), nano-vllm imports, and so does a spawned child.
    code = textwrap.dedent(
        """
        import multiprocessing as mp, sys
        sys.modules.pop("flash_attn", None)
        from mediamill.engines.voxcpm import flash_attn_sdpa
        assert flash_attn_sdpa.install() is True
        import nanovllm_voxcpm  # raises ImportError without a flash_attn module
        from nanovllm_voxcpm.layers import attention
        assert attention.flash_attn_with_kvcache is flash_attn_sdpa.flash_attn_with_kvcache

        def child(queue):
            import flash_attn
            queue.put((getattr(flash_attn, "MEDIAMILL_STANDIN", False), flash_attn.__version__))

        if __name__ == "__main__":
            ctx = mp.get_context("spawn")
            queue = ctx.Queue()
            p = ctx.Process(target=child, args=(queue,))
            p.start()
            print(queue.get(timeout=120))
            p.join()
            print(flash_attn_sdpa.active())
        """
    )
    script = tmp_path / "probe.py"
    script.write_text(code)
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split("\n")[:2] == [f"(True, '{fa.STANDIN_VERSION}')", "sdpa stand-in"]


# -- at nano-vllm's own call sites -------------------------------------------------


@pytest.fixture(scope="module")
def nano_model(tiny_voxcpm):
    """nano-vllm's VoxCPM2Model on CPU (float32) with the tiny checkpoint's weights."""
    fa.install()
    from nanovllm_voxcpm.models.voxcpm2.config import VoxCPM2Config
    from nanovllm_voxcpm.models.voxcpm2.model import VoxCPM2Model
    from nanovllm_voxcpm.utils.loader import load_model

    torch.manual_seed(0)
    config = VoxCPM2Config.model_validate_json((tiny_voxcpm / "config.json").read_text())
    model = VoxCPM2Model(config, inference_timesteps=4).eval()
    load_model(model, str(tiny_voxcpm))
    return model


@pytest.fixture
def torch_kv_store(monkeypatch):
    """nano-vllm writes the KV cache with a Triton kernel; on CPU, the same write in torch."""
    from nanovllm_voxcpm.layers import attention

    def store(key, value, k_cache, v_cache, slot_mapping):
        flat_k = k_cache.view(-1, key.shape[1] * key.shape[2])
        flat_v = v_cache.view(-1, value.shape[1] * value.shape[2])
        keep = slot_mapping >= 0
        flat_k[slot_mapping[keep].long()] = key.reshape(key.shape[0], -1)[keep]
        flat_v[slot_mapping[keep].long()] = value.reshape(value.shape[0], -1)[keep]

    monkeypatch.setattr(attention, "store_kvcache", store)


def _causal_attention_modules(model):
    from nanovllm_voxcpm.layers.attention import Attention

    return [m for m in model.modules() if isinstance(m, Attention) and m.is_causal]


def _inputs(model, lengths: list[int], seed: int):
    g = torch.Generator().manual_seed(seed)
    total = sum(lengths)
    tokens = torch.randint(3, 100, (total,), generator=g)
    feat = torch.randn(total, model.patch_size, model.feat_dim, generator=g)
    mask = torch.zeros(total, dtype=torch.bool)
    mask[torch.arange(total) % 3 == 2] = True  # some positions carry audio latents: the encoder runs too
    return tokens, feat, mask


def _backbone(model, positions, tokens, feat, mask, batch):
    with torch.no_grad():
        diffusion, out = model.forward_backbone(
            positions, tokens, feat, mask, torch.ones(batch), torch.full((batch,), 2.0)
        )
    return diffusion["mu"], out["stop_flag"]


def test_nanovllm_prefill_packs_sequences_like_running_them_alone(nano_model):
    from nanovllm_voxcpm.utils.context import reset_context, set_context

    lengths = [7, 3, 11]
    tokens, feat, mask = _inputs(nano_model, lengths, seed=60)
    cu = torch.tensor([0, 7, 10, 21], dtype=torch.int32)
    positions = torch.cat([torch.arange(n) for n in lengths])
    set_context(True, cu, cu, max(lengths), max(lengths), torch.empty(0, dtype=torch.int32))
    mu, _ = _backbone(nano_model, positions, tokens, feat, mask, 3)
    for b, n in enumerate(lengths):
        sl = slice(int(cu[b]), int(cu[b + 1]))
        one = torch.tensor([0, n], dtype=torch.int32)
        set_context(True, one, one, n, n, torch.empty(0, dtype=torch.int32))
        alone, _ = _backbone(nano_model, torch.arange(n), tokens[sl], feat[sl], mask[sl], 1)
        torch.testing.assert_close(mu[b : b + 1], alone, atol=1e-5, rtol=1e-5)
    reset_context()


def test_nanovllm_decode_from_a_paged_cache_matches_a_full_prefill(nano_model, torch_kv_store):
    """Prefill n-1 tokens into a shuffled paged cache, decode token n: same as prefilling all n at once."""
    from nanovllm_voxcpm.utils.context import reset_context, set_context

    block_size, lengths = 4, [10, 6]
    modules = _causal_attention_modules(nano_model)
    n_blocks = 12
    for m in modules:
        m.k_cache = torch.zeros(n_blocks, block_size, m.num_kv_heads, m.head_dim)
        m.v_cache = torch.zeros(n_blocks, block_size, m.num_kv_heads, m.head_dim)
    tables = [[7, 2, 9], [4, 11]]
    try:
        tokens, feat, mask = _inputs(nano_model, lengths, seed=61)
        starts = [0, lengths[0]]
        # Reference: each sequence prefilled whole (no cache).
        full = []
        for b, n in enumerate(lengths):
            sl = slice(starts[b], starts[b] + n)
            one = torch.tensor([0, n], dtype=torch.int32)
            saved = [(m.k_cache, m.v_cache) for m in modules]
            for m in modules:
                m.k_cache = m.v_cache = torch.tensor([])
            set_context(True, one, one, n, n, torch.empty(0, dtype=torch.int32))
            full.append(_backbone(nano_model, torch.arange(n), tokens[sl], feat[sl], mask[sl], 1))
            for m, (kc, vc) in zip(modules, saved, strict=True):
                m.k_cache, m.v_cache = kc, vc
        # Prefill all but the last token of both sequences into the cache (one packed step).
        pre = [n - 1 for n in lengths]
        idx = torch.cat([torch.arange(starts[b], starts[b] + pre[b]) for b in range(2)])
        slots = torch.tensor(
            [tables[b][t // block_size] * block_size + t % block_size for b in range(2) for t in range(pre[b])],
            dtype=torch.int32,
        )
        cu = torch.tensor([0, pre[0], pre[0] + pre[1]], dtype=torch.int32)
        set_context(True, cu, cu, max(pre), max(pre), slots)
        _backbone(nano_model, torch.cat([torch.arange(p) for p in pre]), tokens[idx], feat[idx], mask[idx], 2)
        # Decode the last token of each sequence through the block tables (padded with -1).
        last = torch.tensor([starts[b] + lengths[b] - 1 for b in range(2)])
        decode_slots = torch.tensor(
            [tables[b][(n - 1) // block_size] * block_size + (n - 1) % block_size for b, n in enumerate(lengths)],
            dtype=torch.int32,
        )
        table = torch.tensor([[7, 2, 9], [4, 11, -1]], dtype=torch.int32)
        set_context(
            False, slot_mapping=decode_slots, context_lens=torch.tensor(lengths, dtype=torch.int32), block_tables=table
        )
        mu, stop = _backbone(
            nano_model, torch.tensor([n - 1 for n in lengths]), tokens[last], feat[last], mask[last], 2
        )
        for b in range(2):
            torch.testing.assert_close(mu[b : b + 1], full[b][0], atol=1e-5, rtol=1e-5)
            assert stop[b] == full[b][1][0]
    finally:
        for m in modules:
            m.k_cache = m.v_cache = torch.tensor([])
        reset_context()


def test_nanovllm_prefill_over_a_cached_prefix_matches_a_full_prefill(nano_model, torch_kv_store):
    """Prefix caching: the first 8 tokens (two blocks) come from the cache; the tail is prefilled against it."""
    from nanovllm_voxcpm.utils.context import reset_context, set_context

    block_size, n, cached = 4, 13, 8
    modules = _causal_attention_modules(nano_model)
    table_list = [5, 1, 3, 0]
    tokens, feat, mask = _inputs(nano_model, [n], seed=62)
    try:
        for m in modules:
            m.k_cache = m.v_cache = torch.tensor([])
        one = torch.tensor([0, n], dtype=torch.int32)
        set_context(True, one, one, n, n, torch.empty(0, dtype=torch.int32))
        full_mu, _ = _backbone(nano_model, torch.arange(n), tokens, feat, mask, 1)
        for m in modules:
            m.k_cache = torch.zeros(6, block_size, m.num_kv_heads, m.head_dim)
            m.v_cache = torch.zeros(6, block_size, m.num_kv_heads, m.head_dim)
        slot = lambda t: table_list[t // block_size] * block_size + t % block_size  # noqa: E731
        head = torch.tensor([0, cached], dtype=torch.int32)
        set_context(True, head, head, cached, cached, torch.tensor([slot(t) for t in range(cached)], dtype=torch.int32))
        _backbone(nano_model, torch.arange(cached), tokens[:cached], feat[:cached], mask[:cached], 1)
        cu_q = torch.tensor([0, n - cached], dtype=torch.int32)
        cu_k = torch.tensor([0, n], dtype=torch.int32)
        table = torch.tensor([table_list], dtype=torch.int32)
        set_context(
            True,
            cu_q,
            cu_k,
            n - cached,
            n,
            torch.tensor([slot(t) for t in range(cached, n)], dtype=torch.int32),
            None,
            table,
        )
        tail_mu, _ = _backbone(nano_model, torch.arange(cached, n), tokens[cached:], feat[cached:], mask[cached:], 1)
        torch.testing.assert_close(tail_mu, full_mu, atol=1e-5, rtol=1e-5)
    finally:
        for m in modules:
            m.k_cache = m.v_cache = torch.tensor([])
        reset_context()


def test_nanovllm_diffusion_runs_on_the_standin(nano_model):
    """The DiT and the local encoder use the non-causal flash_attn_func; a fixed noise gives fixed latents."""
    batch = 2
    mu = torch.randn(batch, 2 * nano_model.config.dit_config.hidden_dim, generator=torch.Generator().manual_seed(63))
    cond = torch.zeros(batch, nano_model.feat_dim, nano_model.patch_size)
    noise = torch.randn(batch, nano_model.feat_dim, nano_model.patch_size, generator=torch.Generator().manual_seed(64))
    with torch.no_grad():
        a = nano_model.forward_diffusion(mu, cond, torch.ones(batch), torch.full((batch,), 2.0), noise)
        b = nano_model.forward_diffusion(mu[:1], cond[:1], torch.ones(1), torch.full((1,), 2.0), noise[:1])
    assert a.shape == (batch, nano_model.patch_size, nano_model.feat_dim) and torch.isfinite(a).all()
    torch.testing.assert_close(a[:1], b, atol=1e-5, rtol=1e-5)


@pytest.mark.gpu
def test_standin_matches_flash_attn_on_cuda_and_survives_graph_capture():
    """On a GPU: against the real flash-attn when installed, and inside a CUDA graph (as nano-vllm captures decode)."""
    device = "cuda"
    q = rand(8, 1, 16, 128, dtype=torch.bfloat16, seed=70).to(device)
    k_cache = rand(40, 256, 2, 128, dtype=torch.bfloat16, seed=71).to(device)
    v_cache = rand(40, 256, 2, 128, dtype=torch.bfloat16, seed=72).to(device)
    table = torch.arange(40, dtype=torch.int32, device=device)[:32].view(8, 4)
    lens = torch.tensor([1, 100, 256, 257, 600, 800, 1000, 1024], dtype=torch.int32, device=device)
    out = fa.flash_attn_with_kvcache(q, k_cache, v_cache, cache_seqlens=lens, block_table=table, causal=True)
    if fa._spec_is_real():
        import flash_attn

        real = flash_attn.flash_attn_with_kvcache(
            q, k_cache, v_cache, cache_seqlens=lens, block_table=table, causal=True
        )
        torch.testing.assert_close(out, real, atol=2e-2, rtol=2e-2)
    graph = torch.cuda.CUDAGraph()
    static = torch.empty_like(out)
    torch.cuda.synchronize()
    with torch.cuda.graph(graph):
        static.copy_(
            fa.flash_attn_with_kvcache(q, k_cache, v_cache, cache_seqlens=lens, block_table=table, causal=True)
        )
    graph.replay()
    torch.cuda.synchronize()
    torch.testing.assert_close(static, out)
