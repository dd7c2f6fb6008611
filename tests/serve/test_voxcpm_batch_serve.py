"""``mediamill serve`` on the batched engine: reads, streams, concurrency, cancellation, the HTTP app."""

from __future__ import annotations

import io
import threading
import time
import wave

import pytest

from mediamill.engines.reading import Reading
from mediamill.engines.voxcpm import VoxcpmSettings
from mediamill.engines.voxcpm.batch import engine as batch_engine
from mediamill.serve import BatchSpeechEngine
from mediamill.serve.engines import Cancelled, RequestProblem, Speech
from tests.helpers.fakes import write_tone_wav

TEXT = (
    "The lamplighter walked the length of Harrow Street. He carried a ladder and a small flame. "
    "Every evening, for forty years, he lit the lamps."
)


def test_serve_picks_the_engine_batch_runs_use(voxcpm_env, monkeypatch):
    from mediamill.serve import BatchSpeechEngine, VoxcpmEngine, make_engine

    monkeypatch.setenv("VOXCPM_ENGINE", "plain")
    assert isinstance(make_engine("voxcpm"), VoxcpmEngine)
    monkeypatch.setenv("VOXCPM_ENGINE", "nanovllm")
    monkeypatch.setenv("VOXCPM_BATCH_IMPL", "standin")
    monkeypatch.setenv("VOXCPM_BATCH_MAX_SEQS", "24")
    engine = make_engine("voxcpm")
    assert isinstance(engine, BatchSpeechEngine) and engine.concurrency == 24


@pytest.fixture
def served(voxcpm_env, monkeypatch):
    monkeypatch.setenv("VOXCPM_MAX_CHARS", "60")
    engine = BatchSpeechEngine(VoxcpmSettings(engine="nanovllm", batch_impl="standin", batch_max_seqs=16))
    engine.start()
    yield engine
    for e in list(batch_engine._engines.values()):
        e.stop_sync()
    batch_engine._engines.clear()


def pool(engine):
    (server,) = engine.engine.servers()
    return server.pool


def test_a_read_is_every_piece_at_once_joined_in_order(served):
    reading = Reading(kept_bad=[])
    pcm = b"".join(served.read(Speech(text=TEXT, seed=5), threading.Event(), reading))
    assert (reading.pieces, reading.generations, reading.sample_rate) == (3, 3, 48000)
    assert pool(served).peak_running == 3
    naturals = sum(e["natural"] for e in pool(served).log)
    assert len(pcm) == 2 * (naturals * 7680 + 2 * round(0.3 * 48000))
    assert served.concurrency == 16 and served.devices() == ["standin:0"]


def test_a_stream_matches_the_read_when_no_piece_is_retaken(served):
    read = b"".join(served.read(Speech(text=TEXT, seed=5), threading.Event(), Reading(kept_bad=[])))
    chunks = list(served.stream(Speech(text=TEXT, seed=5), threading.Event()))
    assert b"".join(chunks) == read
    assert len(chunks) > 6  # the first piece arrived step by step


def test_concurrent_requests_share_the_engines_batch(served):
    out: list[bytes] = []

    def client(i):
        out.append(
            b"".join(
                served.read(
                    Speech(text=f"Client {i} asks for a short line.", seed=i), threading.Event(), Reading(kept_bad=[])
                )
            )
        )

    threads = [threading.Thread(target=client, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(out) == 6 and pool(served).peak_running >= 4


def test_cancelling_a_read_frees_its_slots(served):
    cancel = threading.Event()
    pool(served).length_rule = lambda text, seed, sps: 400
    chunks = served.read(Speech(text=TEXT * 3, seed=5, max_length=400), cancel, Reading(kept_bad=[]))
    threading.Timer(0.2, cancel.set).start()
    with pytest.raises(Cancelled):
        list(chunks)
    time.sleep(0.1)
    (server,) = served.engine.servers()
    assert server.active == 0 and not pool(served)._running


def test_unserved_steps_and_engine_voices_are_request_problems(served):
    with pytest.raises(RequestProblem) as err:
        served.check(Speech(text="Hi.", inference_timesteps=6))
    assert err.value.field == "inference_timesteps"
    with pytest.raises(RequestProblem):
        served.check(Speech(text="Hi.", engine_voice="alloy-ish"))


def test_the_http_app_serves_a_registry_voice(served, tmp_path):
    from fastapi.testclient import TestClient

    from mediamill.serve import ServeSettings, create_app

    voices = tmp_path / "voices"
    voices.mkdir()
    write_tone_wav(voices / "narrator.wav", 2.0)
    (voices / "narrator.txt").write_text("This is how I sound.")
    app = create_app(ServeSettings(voices=[voices]), engine=served)
    with TestClient(app) as client:
        answer = client.post("/v1/audio/speech", json={"input": TEXT, "voice": "narrator", "seed": 3})
        assert answer.status_code == 200, answer.text
        assert answer.headers["x-pieces"] == "3" and answer.headers["x-sample-rate"] == "48000"
        with wave.open(io.BytesIO(answer.content)) as w:
            assert w.getnframes() > 0
    assert all(e["prompt_text"] == "This is how I sound." for e in pool(served).log)


def test_the_servers_bounds_rise_to_what_the_engine_holds(served, monkeypatch):
    from types import SimpleNamespace

    from fastapi.testclient import TestClient

    from mediamill.serve import ServeSettings, create_app
    from mediamill.serve.service import serve_bounds

    assert serve_bounds(served, 16) == (16, 16)
    assert serve_bounds(SimpleNamespace(devices=lambda: ["cuda:0", "cuda:1"]), 16) == (2, 16)  # the plain pool
    assert serve_bounds(SimpleNamespace(concurrency=256, devices=lambda: ["cuda:0"]), 16) == (256, 256)
    replies: list[int] = []
    with TestClient(create_app(ServeSettings(max_pending=4), engine=served)) as client:
        assert client.app.state.service.jobs.limit == 16

        def ask(i):
            replies.append(
                client.post("/v1/audio/speech", json={"input": f"Request {i} wants a line.", "seed": i}).status_code
            )

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert replies == [200] * 8  # over the configured 4, under what the engine holds
    assert pool(served).peak_running >= 4  # generated together, not one after another
