"""BatchEngine on the CPU stand-in: admission, limits, grouping by steps, spreading, cost, failures."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from mediamill.backends.base import BackendError, PermanentError
from mediamill.engines.voxcpm.batch.engine import BatchEngine, TakeRequest, VoxcpmSettings
from tests.helpers.fakes import write_tone_wav


@pytest.fixture
def make_engine(tiny_voxcpm):
    made: list[BatchEngine] = []

    def make(**overrides) -> BatchEngine:
        cfg = VoxcpmSettings(batch_impl="standin", model=str(tiny_voxcpm), **overrides)
        engine = BatchEngine(cfg, tiny_voxcpm)
        engine.start_sync(timeout=60)
        made.append(engine)
        return engine

    yield make
    for engine in made:
        engine.stop_sync()


def request(text="The lamps came on one by one.", seed=7, max_len=60, **kw) -> TakeRequest:
    return TakeRequest(text=text, seed=seed, max_len=max_len, **kw)


def pools(engine, timesteps=None):
    return [s.pool for s in engine.servers(timesteps)]


def on_engine(engine, coro):
    """Run a coroutine on the engine's loop from this (synchronous) test."""
    return engine.submit(coro).result(timeout=60)


async def gather(*coros):
    return await asyncio.gather(*coros)


def test_a_take_is_the_engines_chunks_with_its_seed_cap_and_steps(make_engine):
    engine = make_engine()
    (pool,) = pools(engine)
    take = engine.take_sync(request(seed=11, max_len=60, cfg_value=1.5))
    (logged,) = pool.log
    assert (logged["seed"], logged["max_generate_length"], logged["cfg_value"]) == (11, 60, 1.5)
    assert logged["inference_timesteps"] == 10
    assert take.steps == logged["natural"] < 60 and not take.hit_cap
    assert take.sample_rate == 48000 and len(take.pcm) == take.steps * 7680 * 2
    assert take.device == "standin:0" and take.compute_s > 0
    again = engine.take_sync(request(seed=11, max_len=60, cfg_value=1.5))
    other = engine.take_sync(request(seed=12, max_len=60, cfg_value=1.5))
    assert again.pcm == take.pcm and other.pcm != take.pcm  # a seed per request: reproducible, seed-dependent


def test_a_take_that_runs_to_its_cap_says_so(make_engine):
    engine = make_engine()
    take = engine.take_sync(request(max_len=3))
    assert take.steps == 3 and take.hit_cap


def test_no_server_ever_holds_more_than_its_sequence_limit(make_engine):
    engine = make_engine(batch_max_seqs=4)
    (pool,) = pools(engine)
    seen: list[int] = []

    async def many():
        async def one(i):
            take = await engine.take(request(text=f"Line {i} of the chapter, read aloud.", seed=i))
            seen.append(engine.servers()[0].active)
            return take

        return await asyncio.gather(*(one(i) for i in range(12)))

    takes = on_engine(engine, many())
    assert len(takes) == 12 and all(t.steps > 0 for t in takes)
    assert pool.peak_running == 4 and max(seen) <= 4
    assert engine.load()["servers"]["standin:0/10"] == {
        "active": 0,
        "served": 12,
        "busy_s": pytest.approx(engine.servers()[0].meter.busy_s, abs=1e-3),
        "dead": False,
    }


def test_the_longest_waiting_piece_is_admitted_first(make_engine):
    engine = make_engine(batch_max_seqs=1, batch_aging=0)
    (pool,) = pools(engine)

    async def run():
        blocker = asyncio.ensure_future(engine.take(request(text="blocker", max_len=40)))
        await asyncio.sleep(0.01)  # the blocker holds the only slot
        waiting = [engine.take(request(text=f"piece {n}", expected_steps=n, max_len=40)) for n in (5, 50, 20, 35)]
        await asyncio.gather(blocker, *waiting)

    on_engine(engine, run())
    assert [entry["target_text"] for entry in pool.log] == ["blocker", "piece 50", "piece 35", "piece 20", "piece 5"]


def test_waiting_long_enough_beats_being_long(make_engine):
    engine = make_engine(batch_max_seqs=1, batch_aging=1000)  # 1000 steps of priority per second waited

    async def run():
        blocker = asyncio.ensure_future(engine.take(request(text="blocker", max_len=40)))
        await asyncio.sleep(0.01)
        short = asyncio.ensure_future(engine.take(request(text="short, queued first", expected_steps=5, max_len=40)))
        await asyncio.sleep(0.05)  # 50 steps of aging: more than the 35 steps the long one is longer
        long = asyncio.ensure_future(engine.take(request(text="long, queued later", expected_steps=40, max_len=40)))
        await asyncio.gather(blocker, short, long)

    on_engine(engine, run())
    assert [e["target_text"] for e in pools(engine)[0].log][1:] == ["short, queued first", "long, queued later"]


def test_rows_are_grouped_by_diffusion_steps_one_server_each(make_engine):
    engine = make_engine(batch_timesteps="10,4")
    ten, four = pools(engine, 10), pools(engine, 4)
    assert len(ten) == len(four) == 1 and ten[0] is not four[0]
    assert ten[0].gpu_memory_utilization == four[0].gpu_memory_utilization == pytest.approx(0.45)  # a GPU's share each
    engine.take_sync(request(text="ten steps", timesteps=10))
    engine.take_sync(request(text="four steps", timesteps=4))
    assert [e["target_text"] for e in ten[0].log] == ["ten steps"]
    assert [(e["target_text"], e["inference_timesteps"]) for e in four[0].log] == [("four steps", 4)]
    with pytest.raises(PermanentError, match="VOXCPM_BATCH_TIMESTEPS"):
        engine.take_sync(request(timesteps=6))
    assert engine.capacity == 2 * 128


def test_load_is_spread_over_every_device(make_engine):
    engine = make_engine(batch_standin_devices=3, batch_max_seqs=2)
    takes = on_engine(
        engine, gather(*(engine.take(request(text=f"row {i} reads its line.", seed=i)) for i in range(6)))
    )
    assert sorted(t.device for t in takes) == ["standin:0"] * 2 + ["standin:1"] * 2 + ["standin:2"] * 2
    assert all(p.peak_running == 2 for p in pools(engine))
    assert engine.capacity == 6


def test_gpu_time_is_shared_out_and_adds_up(make_engine):
    engine = make_engine(batch_max_seqs=8)
    (server,) = engine.servers()
    alone = engine.take_sync(request(text="A line read alone on the engine."))
    started = time.perf_counter()
    together = on_engine(
        engine, gather(*(engine.take(request(text="A line read alone on the engine.", seed=s)) for s in range(8)))
    )
    wall = time.perf_counter() - started
    total = alone.compute_s + sum(t.compute_s for t in together)
    assert total == pytest.approx(server.meter.busy_s, rel=1e-6)
    # Eight in one batch share the batch's time: each pays about an eighth of the wall time, not all of it.
    assert sum(t.compute_s for t in together) <= wall * 1.05
    assert max(t.compute_s for t in together) < alone.compute_s


def test_a_request_the_engine_refuses_is_permanent(make_engine):
    engine = make_engine(batch_max_model_len=300)
    with pytest.raises(PermanentError, match="max_model_len"):
        engine.take_sync(request(max_len=299))
    assert engine.servers()[0].active == 0


def test_a_dead_server_fails_its_takes_and_the_rest_carry_on(make_engine):
    engine = make_engine(batch_standin_devices=2, batch_max_seqs=1)
    first, second = pools(engine)

    async def run():
        doomed = asyncio.ensure_future(engine.take(request(text="a long line " * 20, max_len=200)))
        await asyncio.sleep(0.02)
        dying = [s for s in engine.servers() if s.active][0]
        dying.pool.kill()
        with pytest.raises(BackendError) as err:
            await doomed
        assert err.value.retriable and "died" in str(err.value)
        survivor = await engine.take(request(text="after the crash"))
        return dying.device, survivor.device

    dead, used = on_engine(engine, run())
    assert dead != used
    for pool in (first, second):
        pool.kill()  # the survivor dies too; the engine finds out on its next take there
    with pytest.raises(BackendError, match="died: stand-in worker died"):
        engine.take_sync(request(text="nobody left"))
    with pytest.raises(BackendError, match="has died"):
        engine.take_sync(request(text="nobody left"))


def test_cancelling_a_take_frees_its_slot(make_engine):
    engine = make_engine(batch_max_seqs=1)
    (pool,) = pools(engine)

    async def run():
        running = asyncio.ensure_future(engine.take(request(text="long " * 50, max_len=300)))
        waiting = asyncio.ensure_future(engine.take(request(text="queued behind it")))
        await asyncio.sleep(0.05)
        running.cancel()
        waiting.cancel()
        await asyncio.gather(running, waiting, return_exceptions=True)
        await asyncio.sleep(0.01)
        return await engine.take(request(text="next one"))

    take = on_engine(engine, run())
    assert take.steps > 0 and engine.servers()[0].active == 0
    assert [e["target_text"] for e in pool.log] == ["long " * 50, "next one"]  # the queued one never reached it
    assert not pool._running and not pool._waiting


def test_streams_give_the_same_audio_as_a_take(make_engine):
    engine = make_engine()
    whole = engine.take_sync(request(seed=3))
    assert b"".join(engine.stream_sync(request(seed=3))) == whole.pcm

    async def collect():
        return b"".join([chunk async for chunk in engine.stream(request(seed=3))])

    assert asyncio.run(collect()) == whole.pcm  # from another event loop


def test_callers_on_other_event_loops_and_threads_share_one_engine(make_engine):
    engine = make_engine(batch_max_seqs=16)
    results: list = []

    def worker(i):
        async def main():
            return await engine.take(request(text=f"thread {i} speaks.", seed=i))

        results.append(asyncio.run(main()))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 6 and pools(engine)[0].peak_running >= 2


def test_a_recording_is_encoded_once_however_many_pieces_ask(make_engine, tmp_path, monkeypatch):
    engine = make_engine()
    (pool,) = pools(engine)
    calls = []
    original = pool.encode_latents

    async def counting(wav, fmt):
        calls.append(fmt)
        await asyncio.sleep(0.01)
        return await original(wav, fmt)

    monkeypatch.setattr(pool, "encode_latents", counting)
    voice = write_tone_wav(tmp_path / "voice.wav", 1.0)
    got = on_engine(engine, gather(*(engine.latents(voice) for _ in range(5))))
    assert calls == ["wav"] and len(set(got)) == 1
    assert len(got[0]) == 7 * 4 * 16 * 4  # 1 s at 6.25 patches/s -> 7 patches of 4 x 16 float32
    assert engine.latents is not None and on_engine(engine, engine.latents(voice)) == got[0] and calls == ["wav"]


def test_an_engine_that_cannot_start_fails_rows_permanently(tiny_voxcpm):
    async def broken(*args):
        raise RuntimeError("Traceback ...\ntorch.OutOfMemoryError: CUDA out of memory")

    engine = BatchEngine(VoxcpmSettings(batch_impl="standin", model=str(tiny_voxcpm)), tiny_voxcpm, factory=broken)
    try:
        for _ in range(2):  # the same answer every time, without starting again
            with pytest.raises(PermanentError, match="could not start on standin:0: torch.OutOfMemoryError"):
                engine.take_sync(request())
    finally:
        engine.stop_sync()
