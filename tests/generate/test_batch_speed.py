"""A row's speed in batch runs: a tempo change of the generated take for engines without a rate control."""

from __future__ import annotations

import asyncio

import pytest

from mediamill.backends import Generated, get_backend
from mediamill.generate import generate_job
from mediamill.generate.speed import retime
from mediamill.media import run_ffmpeg
from mediamill.media.probe import probe
from mediamill.plan import validate
from mediamill.plan.keys import content_key
from mediamill.store import Store
from tests.helpers.fakes import write_speechlike_wav

TEXT = "The lamplighter walked the length of Harrow Street and one by one the lamps came on."
TEMPO_ENGINES = ["piper", "voxcpm", "voxcpm-http", "wiro", "pixazo"]


def test_rows_with_speed_get_the_tempo_change_before_they_are_measured_and_stored(write_manifest, tmp_path):
    path = write_manifest(f"id,text,speed\nplain,{TEXT},\nfast,{TEXT},2\nslow,{TEXT},0.5\nsame,{TEXT},1\n")
    plan = validate(path, backend="tests.helpers.fakes:UnpacedBackend")
    jobs = {j.id: j for j in plan.jobs}
    assert [jobs[i].spec.tempo for i in ("plain", "fast", "slow", "same")] == [None, 2.0, 0.5, None]
    assert "speed" not in jobs["fast"].spec.params  # never sent to the engine: the pipeline applies it
    store = Store(tmp_path / "out")
    seconds = {i: asyncio.run(generate_job(job, store)).entry.meta["duration_s"] for i, job in jobs.items()}
    assert seconds["plain"] / seconds["fast"] == pytest.approx(2.0, abs=1e-3)
    assert seconds["plain"] / seconds["slow"] == pytest.approx(0.5, abs=1e-3)
    stored = store.get(jobs["fast"].key)
    assert stored is not None and stored.meta["sample_rate"] == 16_000 and stored.path.suffix == ".wav"


def test_qc_judges_a_re_timed_take_by_its_pace_before_the_change(write_manifest, tmp_path):
    # At 4x a natural reading lasts a quarter as long, at 0.25x four times: neither is truncated or babbling.
    path = write_manifest(f"id,text,speed\nplain,{TEXT},\nfast,{TEXT},4\nslow,{TEXT},0.25\n")
    store = Store(tmp_path / "out")
    for job in validate(path, backend="tests.helpers.fakes:UnpacedBackend").jobs:
        meta = asyncio.run(generate_job(job, store)).entry.meta
        assert meta["qc"] is None, (job.id, meta["qc"])


def test_a_take_in_a_container_without_a_name_is_re_timed_into_wav(write_manifest, tmp_path):
    (job,) = validate(
        write_manifest(f"id,text,speed\nfast,{TEXT},2\n"), backend="tests.helpers.fakes:UnpacedBackend"
    ).jobs
    take = tmp_path / "output.bin"  # a hosted download whose URL and type named no format
    run_ffmpeg("-i", write_speechlike_wav(tmp_path / "speech.wav", 4.0), "-c:a", "libmp3lame", "-f", "mp3", take)
    generated = Generated(path=take)
    asyncio.run(retime(job, generated))
    info = probe(generated.path)
    assert generated.path.suffix == ".wav" and info.audio_codec == "pcm_s16le"
    assert info.duration_s == pytest.approx(probe(take).duration_s / 2, abs=0.01)


def test_speed_is_in_the_key_only_when_a_row_gives_one(write_manifest):
    path = write_manifest(f"id,text,speed\nplain,{TEXT},\nfast,{TEXT},2\nsame,{TEXT},1\n")
    plain, fast, same = validate(path, backend="tests.helpers.fakes:UnpacedBackend").jobs
    # A row without speed keys as it always did: the spec's own parameters, nothing added.
    assert plain.key == content_key(plain.backend, "tts", plain.spec.model, plain.spec.params, {})
    assert fast.key == content_key(fast.backend, "tts", fast.spec.model, {**fast.spec.params, "speed": 2.0}, {})
    assert same.key == plain.key and fast.key != plain.key  # speed 1 is the voice's own pace


@pytest.mark.parametrize("name", TEMPO_ENGINES)
def test_engines_without_a_proportional_rate_control_take_speed_as_a_tempo_change(name):
    backend = get_backend(name)
    assert backend.speed_as_tempo and "speed" not in backend.unused_columns
    assert not get_backend("silence").speed_as_tempo  # a dry run's silence is as long as the pace says


def test_piper_rows_leave_length_scale_to_the_options(write_manifest):
    path = write_manifest(f'id,text,speed,options\nfast,{TEXT},2,\nboth,{TEXT},1.5,"{{""length_scale"": 1.2}}"\n')
    fast, both = validate(path, backend="piper").jobs
    assert fast.spec.tempo == 2.0 and "length_scale" not in fast.spec.params
    assert both.spec.tempo == 1.5 and both.spec.params["length_scale"] == 1.2  # Piper's own stretching, then tempo
