"""`mediamill serve` in a real process on loopback, and the voxcpm-http backend against it."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import threading
import time
import wave

import httpx
import psutil
import pyarrow.parquet as pq
import pytest

from mediamill.flows import produce
from mediamill.media.probe import probe
from tests.helpers.fakes import write_tone_wav
from tests.helpers.loadgen import serve_process

pytestmark = pytest.mark.slow  # a server of its own, as a subprocess

KEY = "test-key-123"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def server(tiny_voxcpm, tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    voices, prompts = root / "voices", root / "prompts"
    voices.mkdir()
    prompts.mkdir()
    write_tone_wav(prompts / "guest.wav", 1.5)
    (prompts / "notes.txt").write_text("not audio")
    write_tone_wav(root / "secret.wav", 1.0)
    (prompts / "escape.wav").symlink_to(root / "secret.wav")
    env = dict(
        VOXCPM_MODEL=str(tiny_voxcpm),
        VOXCPM_DEVICE="cpu",
        VOXCPM_CPU_THREADS="1",
        VOXCPM_MAX_CHARS="60",
        MEDIAMILL_SERVE_API_KEY=KEY,
        MEDIAMILL_SERVE_MAX_INPUT_CHARS="3000",
        MEDIAMILL_SERVE_MAX_BODY_MB="1",
    )
    with serve_process(env, ["--voices", str(voices), "--prompts", str(prompts)], root / "server.log") as served:
        yield {"url": served.url, "root": root, "voices": voices, "prompts": prompts, "proc": served.proc}


def say(server, **body) -> httpx.Response:
    return httpx.post(f"{server['url']}/v1/audio/speech", json=body, headers=AUTH, timeout=120)


def test_health_playground_and_loopback_binding(server):
    health = httpx.get(f"{server['url']}/health").json()
    assert health["engine"] == "voxcpm" and health["devices"] == ["cpu"] and health["sample_rate"] == 48000
    assert health["is_processing"] is False and health["model"].startswith("voxcpm-tiny")
    page = httpx.get(server["url"] + "/").text
    assert "<textarea" in page and "/v1/audio/speech" in page
    listening = [c.laddr for c in psutil.Process(server["proc"].pid).net_connections("inet") if c.status == "LISTEN"]
    assert [a.ip for a in listening] == ["127.0.0.1"]


def test_requests_need_the_api_key(server):
    url = f"{server['url']}/v1/audio/speech"
    assert httpx.post(url, json={"input": "Hi."}).status_code == 401
    assert httpx.post(url, json={"input": "Hi."}, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert httpx.post(url, json={"input": "Hi."}, headers={"X-API-Key": KEY}, timeout=60).status_code == 200
    assert httpx.get(f"{server['url']}/voices").status_code == 401


@pytest.mark.parametrize(
    "fmt,media_type,codec",
    [
        ("wav", "audio/wav", "pcm_s16le"),
        ("mp3", "audio/mpeg", "mp3float"),
        ("flac", "audio/flac", "flac"),
        ("opus", "audio/ogg", "opus"),
        ("aac", "audio/aac", "aac"),
    ],
)
def test_every_format_decodes_to_the_same_speech(server, tmp_path, fmt, media_type, codec):
    text = "The lamps came on along the street."
    reference = say(server, input=text, response_format="wav", seed=3)
    with wave.open(io.BytesIO(reference.content)) as wav:
        seconds = wav.getnframes() / wav.getframerate()
    response = say(server, input=text, response_format=fmt, seed=3)
    assert response.status_code == 200 and response.headers["content-type"] == media_type
    path = tmp_path / f"speech.{fmt}"
    path.write_bytes(response.content)
    info = probe(path)
    assert info.audio_codec == codec and info.duration_s == pytest.approx(seconds, abs=0.08)


def test_pcm_and_stream_carry_the_sample_rate(server):
    pcm = say(server, input="Raw samples, please.", response_format="pcm")
    assert pcm.headers["x-sample-rate"] == "48000" and len(pcm.content) % 2 == 0 and len(pcm.content) > 48000
    body = {"input": "One sentence here. Another sentence there. And a third to finish the thought."}
    with httpx.stream("POST", f"{server['url']}/v1/audio/speech/stream", json=body, headers=AUTH, timeout=120) as r:
        assert r.status_code == 200 and r.headers["x-sample-rate"] == "48000"
        chunks = [c for c in r.iter_raw() if c]
    total = sum(map(len, chunks))
    assert total % 2 == 0 and total / 2 / 48000 > 3 * 0.6  # three pieces, each at least its floor


@pytest.mark.parametrize(
    "body,field",
    [
        ({"input": "Hi.", "cfg_value": 10.5}, "cfg_value"),
        ({"input": "Hi.", "inference_timesteps": 0}, "inference_timesteps"),
        ({"input": "Hi.", "inference_timesteps": 101}, "inference_timesteps"),
        ({"input": "Hi.", "max_length": 2049}, "max_length"),
        ({"input": "Hi.", "response_format": "ogg"}, "response_format"),
        ({"input": ""}, "input"),
        ({"input": "x" * 3001}, "input"),
        ({"input": "Hi.", "voice": "nobody"}, "voice"),
        ({"input": "Hi.", "prompt_text": "words"}, "prompt_text"),
        ({}, "input"),
    ],
)
def test_invalid_requests_get_422_naming_the_field(server, body, field):
    response = say(server, **body)
    assert response.status_code == 422
    assert field in response.json()["error"]["message"]


def test_bodies_are_bounded(server):
    response = httpx.post(
        f"{server['url']}/v1/audio/speech",
        content=b"{" + b" " * (1024 * 1024 + 10) + b"}",
        headers={**AUTH, "content-type": "application/json"},
    )
    assert response.status_code == 413


def test_prompt_files_are_confined_to_the_configured_folders(server):
    for path in ("/etc/passwd", "../secret.wav", str(server["root"] / "secret.wav"), "escape.wav", "notes.txt"):
        response = say(server, input="Hello.", prompt_wav_path=path, prompt_text="hi")
        assert response.status_code == 403, path
        assert "secret" not in response.text and "passwd" not in response.text
    assert say(server, input="Hello.", prompt_wav_path="guest.wav", prompt_text="Hi there.").status_code == 200
    assert say(server, input="Hello.", prompt_wav_path=str(server["prompts"] / "guest.wav")).status_code == 200


def test_voices_are_uploaded_listed_and_used(server, tmp_path):
    recording = write_tone_wav(tmp_path / "me.wav", 2.0)
    with recording.open("rb") as fh:
        created = httpx.post(
            f"{server['url']}/v1/voices",
            headers=AUTH,
            data={"name": "narrator", "text": "This is me."},
            files={"file": ("me.wav", fh, "audio/wav")},
        )
    assert created.status_code == 201 and created.json() == {"name": "narrator", "transcript": "This is me."}
    assert (server["voices"] / "narrator.wav").read_bytes() == recording.read_bytes()
    listed = httpx.get(f"{server['url']}/voices", headers=AUTH).json()
    assert "narrator" in listed["voices"]
    assert say(server, input="In my voice.", voice="narrator").status_code == 200
    assert say(server, input="Stock names mean the default voice.", voice="alloy").status_code == 200
    bad_name = httpx.post(
        f"{server['url']}/v1/voices",
        headers=AUTH,
        data={"name": "../x"},
        files={"file": ("me.wav", recording.read_bytes())},
    )
    not_audio = httpx.post(
        f"{server['url']}/v1/voices", headers=AUTH, data={"name": "x"}, files={"file": ("me.wav", b"hello")}
    )
    assert bad_name.status_code == 422 and not_audio.status_code == 422
    assert not (server["voices"] / "x.wav").exists()


def test_openai_sdk_speed_design_voices_and_events_on_voxcpm(server):
    from openai import OpenAI

    client = OpenAI(base_url=f"{server['url']}/v1", api_key=KEY, max_retries=0, timeout=120)
    speech = client.audio.speech
    text = "The lamps came on along the street."
    same = {"extra_body": {"seed": 3}}  # one take at two tempos: the ratio is the tempo change's alone
    plain = speech.with_raw_response.create(model="voxcpm", voice="alloy", input=text, **same)
    fast = speech.with_raw_response.create(model="voxcpm", voice="alloy", input=text, speed=2.0, **same)
    seconds = [
        wav.getnframes() / wav.getframerate()
        for wav in (wave.open(io.BytesIO(r.parse().content)) for r in (plain, fast))
    ]
    assert seconds[0] / seconds[1] == pytest.approx(2.0, rel=0.05)
    designed = speech.with_raw_response.create(model="voxcpm", voice="alloy", input=text, instructions="a warm voice")
    assert designed.status_code == 200 and "x-instructions-ignored" not in designed.headers
    write_tone_wav(server["voices"] / "reader.wav", 1.5)  # registered by hand: the registry is read per request
    (server["voices"] / "reader.txt").write_text("Hello from the reader.")
    assert speech.create(model="voxcpm", voice={"id": "reader"}, input="In the reader's voice.").content[:4] == b"RIFF"
    with speech.with_streaming_response.create(
        model="voxcpm", voice="alloy", input=text, response_format="pcm", stream_format="sse", speed=2.0
    ) as streamed:
        events = [json.loads(line[6:]) for line in streamed.iter_lines() if line.startswith("data: ")]
    assert events[-1]["type"] == "speech.audio.done" and {e["type"] for e in events[:-1]} == {"speech.audio.delta"}
    fast_stream = sum(len(base64.b64decode(e["audio"])) for e in events[:-1])
    raw = httpx.post(f"{server['url']}/v1/audio/speech/stream", json={"input": text}, headers=AUTH, timeout=120)
    assert len(raw.content) / fast_stream == pytest.approx(2.0, rel=0.05)


def test_cancel_stops_a_running_generation(server):
    text = " ".join(f"Sentence number {i} goes on for a little while." for i in range(60))
    result: dict = {}
    started = time.monotonic()
    worker = threading.Thread(target=lambda: result.update(r=say(server, input=text)))
    worker.start()
    while not httpx.get(f"{server['url']}/health").json()["is_processing"]:
        assert time.monotonic() - started < 30
        time.sleep(0.05)
    cancelled = httpx.post(f"{server['url']}/v1/audio/speech/cancel", headers=AUTH).json()
    worker.join(timeout=60)
    assert cancelled["cancelled"] and result["r"].status_code == 409
    assert httpx.get(f"{server['url']}/health").json()["is_processing"] is False
    # Uncancelled, the same text takes many pieces; the server is free for the next request at once.
    assert say(server, input="Next, please.").status_code == 200


@pytest.mark.usefixtures("prefect_api")
def test_voxcpm_http_backend_runs_a_manifest_against_the_server(server, write_manifest, tmp_path, monkeypatch):
    monkeypatch.setenv("VOXCPM_HTTP_URL", server["url"])
    monkeypatch.setenv("VOXCPM_HTTP_API_KEY", KEY)
    monkeypatch.setenv("VOXCPM_HTTP_MAX_CHARS", "60")
    write_tone_wav(tmp_path / "guest.wav", 1.5)
    text = "The lamplighter walked the length of Harrow Street. He carried a ladder and a small flame."
    manifest = write_manifest(
        f"""
id,kind,text,reference,reference_text,style
plain,tts,"{text}",,,
designed,tts,Nobody looked up.,,,a warm voice
cont,clone,In the guest's voice.,guest.wav,Hello from the guest.,
ref,clone,Only the guest's timbre.,guest.wav,,
"""
    )
    out = tmp_path / "out"
    state = asyncio.run(produce(manifest=str(manifest), backend="voxcpm-http", outputs=str(out), return_state=True))
    assert state.is_completed(), state.message
    rows = {r["id"]: r for r in pq.read_table(out / "book" / "results.parquet").to_pylist()}
    assert {r["status"] for r in rows.values()} == {"done"} and {r["sample_rate"] for r in rows.values()} == {48000}
    assert rows["plain"]["pieces"] == 2 and rows["plain"]["takes"] == 2
    uploaded = sorted(p.name for p in server["voices"].glob("ref-*"))
    assert (
        len([n for n in uploaded if n.endswith(".wav")]) == 2 and len([n for n in uploaded if n.endswith(".txt")]) == 1
    )

    monkeypatch.setenv("VOXCPM_HTTP_API_KEY", "not-the-key-7f3a")
    manifest2 = write_manifest("id,text\nx,Refused.\n", name="refused")
    asyncio.run(produce(manifest=str(manifest2), backend="voxcpm-http", outputs=str(out), return_state=True))
    (row,) = pq.read_table(out / "refused" / "results.parquet").to_pylist()
    assert row["status"] == "failed" and row["attempts"] == 1 and "VOXCPM_HTTP_API_KEY" in row["error"]
    assert "not-the-key-7f3a" not in row["error"]


def test_piper_engine_serves_its_own_voices(tmp_path):
    from fastapi.testclient import TestClient

    from mediamill.serve import ServeSettings, create_app

    write_tone_wav(tmp_path / "guest.wav", 1.0)
    app = create_app(ServeSettings(engine="piper", voices=[tmp_path / "voices"], prompts=[tmp_path]))
    with TestClient(app) as client:
        assert client.get("/health").json()["engine"] == "piper"
        ok = client.post("/v1/audio/speech", json={"input": "Hello from Piper.", "voice": "joe"})
        assert ok.status_code == 200
        with wave.open(io.BytesIO(ok.content)) as wav:
            assert wav.getframerate() == 22050 and wav.getnframes() > 22050 * 0.5
        assert client.post("/v1/audio/speech", json={"input": "Hi.", "voice": "alloy"}).status_code == 200
        clone = client.post("/v1/audio/speech", json={"input": "Hi.", "prompt_wav_path": "guest.wav"})
        assert clone.status_code == 422 and "cannot clone" in clone.json()["error"]["message"]
        streamed = client.post("/v1/audio/speech/stream", json={"input": "Streaming. Two sentences."})
        assert streamed.headers["x-sample-rate"] == "22050" and len(streamed.content) > 22050
        assert "joe" in client.get("/voices").json()["engine_voices"]
