"""Reading rows on the batched engine: all pieces at once, retakes after the fact, output in order."""

from __future__ import annotations

import asyncio
import wave

import pytest

from mediamill.backends.base import PermanentError
from mediamill.engines.reading import BadCaseError, steps_for
from mediamill.engines.voxcpm.batch.engine import BatchEngine, VoxcpmSettings
from mediamill.engines.voxcpm.batch.reading import BatchVoice, WavSink, piece_request, read_row
from mediamill.engines.voxcpm.batch.standin import default_length
from mediamill.text import predicted_seconds, split_text
from mediamill.verify import DurationCheck

TEXT = (
    "The lamplighter walked the length of Harrow Street. He carried a ladder and a small flame. "
    "Every evening, for forty years, he lit the lamps."
)
CHECK = DurationCheck()


@pytest.fixture
def engine(tiny_voxcpm):
    made = BatchEngine(VoxcpmSettings(batch_impl="standin", model=str(tiny_voxcpm)), tiny_voxcpm)
    made.start_sync(60)
    yield made
    made.stop_sync()


def pool_of(engine):
    (server,) = engine.servers()
    return server.pool


def read(engine, text, tmp_path, seed=100, max_takes=3, keep_bad=False, max_chars=60, voice=None):
    pieces = split_text(text, max_chars, 0.25, 0.7)
    voice = voice or BatchVoice()

    def request_for(index, attempt):
        return piece_request(
            engine, pieces[index].text, voice, seed + attempt * 7919, CHECK, timesteps=10, cfg_value=2.0
        )

    out = tmp_path / "speech.wav"
    sink = WavSink(out)

    async def run():
        try:
            return await read_row(engine, pieces, request_for, CHECK, sink, max_takes, keep_bad)
        finally:
            sink.close()

    return asyncio.run(run()), out, pieces


def wav_frames(path):
    with wave.open(str(path)) as w:
        return w.getnframes(), w.getframerate(), w.readframes(w.getnframes())


def test_every_piece_is_submitted_at_once_and_written_in_order(engine, tmp_path):
    pool = pool_of(engine)
    # The first piece is the longest, so the others finish first and have to wait their turn.
    pool.length_rule = lambda text, seed, sps: 40 if text.startswith("The lamplighter") else 20
    reading, out, pieces = read(engine, TEXT, tmp_path)
    # All three reached the engine together, longest expected first (the burst is ordered as a whole).
    by_length = sorted((p.text for p in pieces), key=lambda t: -steps_for(predicted_seconds(t), 6.25))
    assert [e["target_text"] for e in pool.log] == by_length
    assert pool.peak_running == 3  # one chapter filled the batch
    assert (reading.pieces, reading.generations, reading.regenerated, reading.kept_bad) == (3, 3, 0, [])
    frames, rate, data = wav_frames(out)
    assert rate == 48000 and frames == (40 + 20 + 20) * 7680 + 2 * round(0.25 * 48000)
    first = engine.take_sync(
        piece_request(engine, pieces[0].text, BatchVoice(), 100, CHECK, timesteps=10, cfg_value=2.0)
    )
    assert data[: len(first.pcm)] == first.pcm  # piece one comes first in the file
    assert all(e["seed"] == 100 for e in pool.log)  # one voice, one seed: the pieces sound alike


def test_a_take_that_stops_too_early_is_retaken_with_the_next_seed(engine, tmp_path):
    pool = pool_of(engine)
    pool.length_rule = lambda text, seed, sps: 1 if seed == 100 else default_length(text, seed, sps)
    reading, out, _ = read(engine, "A sentence long enough to notice when it is cut short.", tmp_path)
    assert [e["seed"] for e in pool.log] == [100, 100 + 7919]
    assert (reading.generations, reading.regenerated, reading.kept_bad) == (2, 1, [])
    assert wav_frames(out)[0] == pool.log[1]["natural"] * 7680


def test_a_babbling_piece_fails_the_row_after_its_takes_unless_kept(engine, tmp_path):
    pool = pool_of(engine)
    pool.length_rule = lambda text, seed, sps: 10_000  # never stops by itself: runs to the cap
    with pytest.raises(
        BadCaseError,
        match=r"piece 1 of 1 \('Short words.'\): babbling: generation ran to its length cap .*after 3 takes",
    ):
        read(engine, "Short words.", tmp_path)
    assert len(pool.log) == 3 and all(e["max_generate_length"] == pool.log[0]["max_generate_length"] for e in pool.log)
    reading, out, _ = read(engine, "Short words.", tmp_path, keep_bad=True)
    assert reading.generations == 3 and len(reading.kept_bad) == 1 and "babbling" in reading.kept_bad[0]


def test_kept_bad_pieces_are_reported_in_piece_order(engine, tmp_path):
    pool = pool_of(engine)
    pool.length_rule = lambda text, seed, sps: 1  # every take truncated
    reading, _, pieces = read(engine, TEXT, tmp_path, max_takes=2, keep_bad=True)
    assert [b.split(" (")[0] for b in reading.kept_bad] == ["piece 1 of 3", "piece 2 of 3", "piece 3 of 3"]
    assert reading.generations == 6 and reading.regenerated == 3


def test_a_failing_piece_stops_the_others(engine, tmp_path):
    pool = pool_of(engine)
    pool.length_rule = lambda text, seed, sps: 1 if text.startswith("He carried") else 200
    with pytest.raises(BadCaseError, match="piece 2 of 3"):
        read(engine, TEXT, tmp_path, max_takes=1)
    (server,) = engine.servers()
    assert server.active == 0 and not pool._running  # the long pieces were cancelled, their slots freed


def test_the_cap_is_the_babbling_bound_clamped_to_the_engines_length(engine, tmp_path):
    text = "A line of about four seconds of speech, give or take."
    req = piece_request(engine, text, BatchVoice(style="warm"), 5, CHECK, timesteps=10, cfg_value=2.0)
    assert req.max_len == steps_for(CHECK.max_seconds(text), 6.25) and req.text == f"(warm){text}"
    assert req.expected_steps == steps_for(predicted_seconds(text), 6.25)
    assert piece_request(engine, text, BatchVoice(), 5, CHECK, timesteps=10, cfg_value=2.0, max_len=9).max_len == 9
    prompt = b"\0" * (4 * 16 * 4 * 500)  # 500 patches of prompt audio
    voice = BatchVoice(prompt_latents=prompt, prompt_text="Hello there.")
    long = piece_request(engine, text, voice, 5, CHECK, timesteps=10, cfg_value=2.0)
    room = engine.cfg.batch_max_model_len - engine.prompt_tokens(long)
    assert long.max_len == min(req.max_len, room)
    huge = BatchVoice(prompt_latents=b"\0" * (4 * 16 * 4 * 4100), prompt_text="Hello.")
    with pytest.raises(PermanentError, match="VOXCPM_BATCH_MAX_MODEL_LEN"):
        piece_request(engine, text, huge, 5, CHECK, timesteps=10, cfg_value=2.0)


def test_the_prompt_bound_never_undercounts_the_engines_tokens(engine):
    pool = pool_of(engine)
    texts = [
        "Hello.",
        "Ein längerer Satz mit Umlauten, äöü.",
        "这是一个中文句子。",
        "(a calm voice)Numbers 1, 22, 333.",
    ]
    for text in texts:
        req = piece_request(
            engine,
            text,
            BatchVoice(prompt_latents=b"\0" * 1024, prompt_text="Prompt words."),
            1,
            CHECK,
            timesteps=10,
            cfg_value=2.0,
        )
        engine.take_sync(req)
        assert engine.prompt_tokens(req) >= pool.log[-1]["prompt_len"]
