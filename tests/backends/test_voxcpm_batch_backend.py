"""The voxcpm backend with VOXCPM_ENGINE: choice, keys, checks, voices, seeds, cost, and a whole run."""

from __future__ import annotations

import asyncio
import wave

import pyarrow.parquet as pq
import pytest

from mediamill.backends import voxcpm_batched as batch_rows
from mediamill.backends.voxcpm_local import VoxcpmBackend, default_seed
from mediamill.engines.voxcpm.batch import engine as batch_engine
from mediamill.engines.voxcpm.batch import models as batch_models
from mediamill.engines.voxcpm.batch import settings as batch_settings
from mediamill.engines.voxcpm.batch.settings import VoxcpmSettings, chosen_engine, nanovllm_usable
from mediamill.manifest import ManifestError
from mediamill.plan import validate
from tests.helpers.fakes import write_tone_wav

NAME = "voxcpm"


@pytest.fixture
def batched(monkeypatch, voxcpm_env):
    monkeypatch.setenv("VOXCPM_ENGINE", "nanovllm")
    monkeypatch.setenv("VOXCPM_BATCH_IMPL", "standin")
    yield
    for engine in list(batch_engine._engines.values()):
        engine.stop_sync()
    batch_engine._engines.clear()


def the_pool():
    (engine,) = batch_engine._engines.values()
    (server,) = engine.servers()
    return server.pool


def generate_all(manifest, tmp_path):
    backend = VoxcpmBackend()
    jobs = validate(manifest, NAME).jobs

    async def run():
        made = []
        for n, job in enumerate(jobs):
            folder = tmp_path / f"w{n}"
            folder.mkdir()
            made.append(await backend.generate(job, folder, None))
        return made

    return jobs, asyncio.run(run())


def test_auto_picks_the_plain_engine_without_cuda(voxcpm_env, monkeypatch):
    import torch

    cfg = VoxcpmSettings(engine="auto")
    if not torch.cuda.is_available():
        assert not nanovllm_usable(cfg) and chosen_engine(cfg) == "plain"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(batch_settings, "_real_flash_attn", lambda: "2.7.4")
    assert chosen_engine(VoxcpmSettings(engine="auto")) == "nanovllm"  # CUDA, nano-vllm-voxcpm, triton, flash-attn
    monkeypatch.setattr(batch_settings, "_real_flash_attn", lambda: None)
    assert chosen_engine(VoxcpmSettings(engine="auto")) == "plain"  # no kernel: the stand-in only when asked for
    assert chosen_engine(VoxcpmSettings(engine="auto", attention="sdpa")) == "nanovllm"


def test_the_plain_engine_is_the_default_even_where_the_batched_one_could_run(voxcpm_env, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(batch_settings, "_real_flash_attn", lambda: "2.7.4")
    cfg = VoxcpmSettings()
    assert cfg.engine == "plain" and chosen_engine(cfg) == "plain"
    assert chosen_engine(VoxcpmSettings(engine="plain", attention="sdpa")) == "plain"


def test_plain_keeps_todays_keys_and_batched_adds_the_engine(write_manifest, voxcpm_env, monkeypatch):
    manifest = write_manifest("id,text,seed\na,The same words.,7\n")
    plain = validate(manifest, NAME).jobs[0]
    today = VoxcpmBackend().spec(plain.row, manifest.parent)
    assert VoxcpmBackend().spec(plain.row, manifest.parent) == today  # existing stores stay valid
    monkeypatch.setenv("VOXCPM_ENGINE", "nanovllm")
    monkeypatch.setenv("VOXCPM_BATCH_IMPL", "standin")
    batched = validate(manifest, NAME).jobs[0]
    assert batched.spec.params == {**today.params, "engine": "standin"} and batched.key != plain.key
    monkeypatch.setenv("VOXCPM_BATCH_IMPL", "nanovllm")
    monkeypatch.setattr(batch_settings, "_real_flash_attn", lambda: None)
    sdpa = VoxcpmBackend().spec(plain.row, manifest.parent).params["engine"]
    monkeypatch.setattr(batch_settings, "_real_flash_attn", lambda: "2.7.4")
    flash = VoxcpmBackend().spec(plain.row, manifest.parent).params["engine"]
    assert sdpa == "nano-vllm-voxcpm 2.0.5 (sdpa stand-in sdpa-standin-1)"
    assert flash == "nano-vllm-voxcpm 2.0.5 (flash-attn 2.7.4)"  # another attention kernel, other numbers


def test_concurrency_is_what_the_engine_holds(batched, monkeypatch):
    monkeypatch.setenv("VOXCPM_BATCH_MAX_SEQS", "48")
    assert VoxcpmBackend().default_concurrency == 48
    monkeypatch.setenv("VOXCPM_BATCH_STANDIN_DEVICES", "2")
    monkeypatch.setenv("VOXCPM_BATCH_TIMESTEPS", "10,4")
    assert VoxcpmBackend().default_concurrency == 48 * 2 * 2
    monkeypatch.setenv("VOXCPM_ENGINE", "plain")
    assert VoxcpmBackend().default_concurrency == 1  # one CPU replica


def test_rows_with_unserved_steps_are_problems_at_planning(write_manifest, batched, monkeypatch):
    monkeypatch.setenv("VOXCPM_BATCH_TIMESTEPS", "10,4")
    manifest = write_manifest("id,text,inference_timesteps\na,Fine.,4\nb,Fine too.,\nc,Not served.,6\n")
    with pytest.raises(ManifestError) as err:
        validate(manifest, NAME)
    assert [(p.row, p.column) for p in err.value.problems] == [(3, "inference_timesteps")]
    assert "VOXCPM_BATCH_TIMESTEPS" in str(err.value)


def test_the_batched_engine_says_what_it_lacks_before_any_row_runs(write_manifest, voxcpm_env, monkeypatch, tmp_path):
    import torch

    monkeypatch.setenv("VOXCPM_ENGINE", "nanovllm")
    manifest = write_manifest("id,text,model\na,Fine.,\nb,Another model.," + str(tmp_path) + "\n")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ManifestError, match="needs a CUDA GPU"):
        validate(manifest, NAME)
    monkeypatch.setattr(batch_settings, "_importable", lambda module: module != "nanovllm_voxcpm")
    with pytest.raises(ManifestError, match="pip install --no-deps nano-vllm-voxcpm==2.0.5 xxhash"):
        validate(manifest, NAME)
    monkeypatch.setenv("VOXCPM_BATCH_IMPL", "standin")
    with pytest.raises(ManifestError) as err:
        validate(manifest, NAME)
    assert [(p.row, p.column) for p in err.value.problems] == [(2, "model")]


def test_rows_read_with_their_seeds_voices_and_cost(write_manifest, batched, tmp_path, monkeypatch):
    monkeypatch.setenv("VOXCPM_PRICE_PER_HOUR", "3.6")
    voices = tmp_path / "voices"
    voices.mkdir()
    write_tone_wav(voices / "narrator.wav", 2.0)
    (voices / "narrator.txt").write_text("This is how I sound.")
    write_tone_wav(tmp_path / "guest.wav", 1.5)
    manifest = write_manifest(
        """
id,kind,text,style,seed,reference,reference_text,voice,cfg_value,inference_timesteps
plain,tts,The lamps came on one by one.,,,,,,,
styled,tts,Nobody on the street looked up.,"an old man, slow and warm",42,,,,1.5,
cont,clone,Continue in my voice.,,,guest.wav,Hello from the guest.,,,
ref,clone,Only my timbre please.,,,guest.wav,,,,
reg,tts,The narrator speaks.,,,,,narrator,,
"""
    )
    jobs, made = generate_all(manifest, tmp_path)
    log = {e["target_text"]: e for e in the_pool().log}
    plain = log["The lamps came on one by one."]
    assert plain["seed"] == default_seed("The lamps came on one by one.") and plain["prompt_patches"] == 0
    assert (plain["cfg_value"], plain["inference_timesteps"]) == (2.0, 10)
    styled = log["(an old man, slow and warm)Nobody on the street looked up."]
    assert (styled["seed"], styled["cfg_value"]) == (42, 1.5)
    cont = log["Continue in my voice."]
    assert (
        cont["prompt_text"] == "Hello from the guest." and cont["prompt_patches"] == 10 and cont["ref_patches"] is None
    )
    ref = log["Only my timbre please."]
    assert ref["prompt_text"] == "" and ref["prompt_patches"] == 0 and ref["ref_patches"] == 10
    reg = log["The narrator speaks."]
    assert reg["prompt_text"] == "This is how I sound." and reg["prompt_patches"] == 13
    assert len(made) == len(jobs)
    for result in made:
        with wave.open(str(result.path)) as w:
            assert w.getframerate() == 48000 and w.getnframes() > 0
        assert result.extra["device"] == "standin:0" and result.extra["engine"] == "standin"
        assert result.attempts_inside == 1 and result.extra["pieces"] == 1
        assert result.cost_source == "cpu time" and result.compute_s > 0
        assert result.cost_usd == pytest.approx(result.compute_s * 0.001, abs=2e-6)


def test_long_rows_are_split_and_every_piece_submitted_at_once(write_manifest, batched, tmp_path, monkeypatch):
    monkeypatch.setenv("VOXCPM_MAX_CHARS", "60")
    text = (
        "The lamplighter walked the length of Harrow Street. He carried a ladder and a small flame. "
        "Every evening, for forty years, he lit the lamps."
    )
    manifest = write_manifest(f'id,text\nlong,"{text}"\n')
    _, (made,) = generate_all(manifest, tmp_path)
    pool = the_pool()
    assert made.extra["pieces"] == 3 and made.attempts_inside == 3 and pool.peak_running == 3
    assert len({e["seed"] for e in pool.log}) == 1


def test_a_whole_run_keeps_many_rows_in_flight(write_manifest, batched, tmp_path, monkeypatch, prefect_api):
    from mediamill.flows import produce

    monkeypatch.setenv("VOXCPM_BATCH_MAX_SEQS", "8")
    lines = "\n".join(f"r{i:02d},Line number {i} of the chapter is read aloud here." for i in range(16))
    manifest = write_manifest(f"id,text\n{lines}\n")
    state = asyncio.run(produce(manifest=str(manifest), backend=NAME, outputs=str(tmp_path / "out"), return_state=True))
    assert state.is_completed(), state.message
    rows = pq.read_table(tmp_path / "out" / "book" / "results.parquet").to_pylist()
    assert [r["status"] for r in rows] == ["done"] * 16
    assert {r["device"] for r in rows} == {"standin:0"} and all(r["takes"] == 1 for r in rows)
    assert the_pool().peak_running == 8  # eight lanes, eight rows sharing the engine's steps


def test_normalize_and_denoise_run_before_the_engine(write_manifest, batched, tmp_path, monkeypatch):
    monkeypatch.setattr(batch_models, "_normalizer", lambda text: text.replace("Dr.", "Doctor"))
    cleaned: list[str] = []

    def fake_denoiser(model):
        def clean(path):
            cleaned.append(f"{model}:{path.name}")
            return write_tone_wav(tmp_path / "clean.wav", 3.0).read_bytes()  # another length: other latents

        return clean

    monkeypatch.setattr(batch_rows, "denoiser", fake_denoiser)
    monkeypatch.setenv("VOXCPM_DENOISER", "zipenhancer-model")
    write_tone_wav(tmp_path / "guest.wav", 1.5)
    manifest = write_manifest(
        """
id,kind,text,reference,options
n,tts,Dr. Lamp lights the street.,,"{""normalize"": true}"
d,clone,Only my timbre please.,guest.wav,"{""denoise"": true}"
"""
    )
    generate_all(manifest, tmp_path)
    log = {e["target_text"]: e for e in the_pool().log}
    assert "Doctor Lamp lights the street." in log  # the engine read the normalised text
    assert cleaned == ["zipenhancer-model:guest.wav"]
    assert log["Only my timbre please."]["ref_patches"] == 19  # 3 s of cleaned audio, not the 1.5 s recording
