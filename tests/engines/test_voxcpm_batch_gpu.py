"""The real nano-vllm-voxcpm engine behind BatchEngine, on the tiny checkpoint (needs a CUDA GPU)."""

from __future__ import annotations

import pytest

from mediamill.engines.voxcpm.batch.engine import BatchEngine, TakeRequest, VoxcpmSettings
from tests.helpers.fakes import write_tone_wav

pytestmark = pytest.mark.gpu


def start(checkpoint, **overrides) -> BatchEngine:
    cfg = VoxcpmSettings(
        engine="nanovllm",
        batch_impl="nanovllm",
        model=str(checkpoint),
        device="cuda:0",
        batch_max_seqs=8,
        batch_memory=0.2,
        **overrides,
    )
    engine = BatchEngine(cfg, checkpoint)
    engine.start_sync(900)
    return engine


def test_takes_run_to_their_cap_with_per_request_seeds(babbling_voxcpm, tmp_path):
    engine = start(babbling_voxcpm)
    try:
        a = engine.take_sync(TakeRequest("Hello there.", seed=1, max_len=12))
        assert (a.steps, a.hit_cap, a.sample_rate, len(a.pcm)) == (12, True, 48000, 12 * 7680 * 2)
        assert engine.take_sync(TakeRequest("Hello there.", seed=1, max_len=12)).pcm == a.pcm
        assert engine.take_sync(TakeRequest("Hello there.", seed=2, max_len=12)).pcm != a.pcm
        takes = engine.submit(_many(engine)).result(600)
        assert all(t.steps == 20 for t in takes)
        (server,) = engine.servers()
        assert sum(t.compute_s for t in takes) <= server.meter.busy_s + 1e-6
        voice = write_tone_wav(tmp_path / "voice.wav", 2.0)
        latents = engine.submit(engine.latents(voice)).result(120)
        assert len(latents) % (4 * 16 * 4) == 0
        cont = engine.take_sync(TakeRequest("Go on.", seed=3, max_len=8, prompt_latents=latents, prompt_text="A tone."))
        ref = engine.take_sync(TakeRequest("Go on.", seed=3, max_len=8, ref_latents=latents))
        assert cont.steps == ref.steps == 8 and cont.pcm != ref.pcm
    finally:
        engine.stop_sync()


async def _many(engine):
    import asyncio

    return await asyncio.gather(*(engine.take(TakeRequest(f"Row {i} speaks.", seed=i, max_len=20)) for i in range(8)))


def test_without_a_minimum_length_an_eager_stop_head_stops_at_once(tiny_voxcpm):
    engine = start(tiny_voxcpm)
    try:
        take = engine.take_sync(TakeRequest("Hello there.", seed=1, max_len=12))
        assert take.steps == 1 and not take.hit_cap  # what DurationCheck then calls truncated
    finally:
        engine.stop_sync()
