"""The local VoxCPM backend, driving the real voxcpm package on a tiny random checkpoint."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import wave
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from mediamill.engines.voxcpm import replicas as voxcpm_replicas
from mediamill.engines.voxcpm.pool import ModelLoadError, resolve_devices
from mediamill.flows import produce
from mediamill.manifest import ManifestError
from mediamill.media.probe import probe
from mediamill.plan import validate
from tests.helpers.fakes import write_tone_wav

pytestmark = pytest.mark.usefixtures("prefect_api", "voxcpm_env")


def run(manifest: Path, outputs: Path) -> list[dict]:
    state = asyncio.run(produce(manifest=str(manifest), backend="voxcpm", outputs=str(outputs), return_state=True))
    rows = pq.read_table(outputs / manifest.stem / "results.parquet").to_pylist()
    return rows if state.is_completed() else [dict(r, _state=state.message) for r in rows]


def wav_seconds(path: Path) -> float:
    with wave.open(str(path)) as wav:
        return wav.getnframes() / wav.getframerate()


@pytest.fixture
def calls(monkeypatch):
    """Every call into voxcpm.VoxCPM.generate: its arguments, the torch seed, and the samples returned.

    The real method runs; ``calls.truncate`` makes chosen calls (by index) return
    a cut-short waveform, as a model that stopped too early would.
    """
    import torch
    import voxcpm

    original = voxcpm.VoxCPM.generate
    log = CallLog()

    def spy(self, *args, **kwargs):
        seed = torch.initial_seed()
        wav = original(self, *args, **kwargs)
        if len(log) in spy.truncate:
            wav = wav[:480]
        log.append({**kwargs, "seed": seed, "samples": len(wav)})
        return wav

    spy.truncate = log.truncate = set()  # type: ignore[attr-defined]
    monkeypatch.setattr(voxcpm.VoxCPM, "generate", spy)
    return log


class CallLog(list):
    truncate: set


def test_plain_rows_and_voice_design_read_through_the_real_model(write_manifest, tmp_path, calls, monkeypatch):
    monkeypatch.setenv("VOXCPM_PRICE_PER_HOUR", "3.6")
    manifest = write_manifest(
        """
id,chapter,text,style,cfg_value,inference_timesteps
a,One,The lamps came on one by one.,,,
b,One,Nobody on the street looked up.,"an old man, slow and warm",1.5,4
"""
    )
    rows = run(manifest, tmp_path / "out")
    assert [r["status"] for r in rows] == ["done", "done"], rows
    assert {r["sample_rate"] for r in rows} == {48000}
    assert all(r["device"] == "cpu" and r["cost_source"] == "cpu time" and r["takes"] == 1 for r in rows)
    assert all(r["cost_usd"] == pytest.approx(r["compute_s"] * 0.001, abs=2e-6) for r in rows)
    by_text = {c["text"]: c for c in calls}
    plain, designed = (
        by_text["The lamps came on one by one."],
        by_text["(an old man, slow and warm)Nobody on the street looked up."],
    )
    assert (plain["cfg_value"], plain["inference_timesteps"]) == (2.0, 10)
    assert (designed["cfg_value"], designed["inference_timesteps"]) == (1.5, 4)
    assert "prompt_wav_path" not in plain and "reference_wav_path" not in plain
    # Generation is bounded by the text: at least half its predicted length, at most the babbling bound.
    for call in calls:
        assert 2 <= call["min_len"] < call["max_len"] < 200
        assert call["samples"] == (call["min_len"] + 2) * 7680  # the tiny model stops as soon as allowed
    assert (tmp_path / "out" / "book" / "book.m4b").is_file()


def test_clone_modes_follow_the_transcript(write_manifest, tmp_path, calls):
    voices = tmp_path / "voices"
    voices.mkdir()
    write_tone_wav(voices / "narrator.wav", 2.0)
    (voices / "narrator.txt").write_text("This is how I sound.")
    write_tone_wav(tmp_path / "guest.wav", 1.5)
    manifest = write_manifest(
        """
id,kind,text,reference,reference_text,voice
cont,clone,Continue in my voice.,guest.wav,Hello from the guest.,
ref,clone,Only my timbre please.,guest.wav,,
reg,tts,The narrator speaks.,,,narrator
"""
    )
    rows = run(manifest, tmp_path / "out")
    assert [r["status"] for r in rows] == ["done"] * 3, rows
    by_text = {c["text"]: c for c in calls}
    cont = by_text["Continue in my voice."]
    assert cont["prompt_wav_path"].endswith("guest.wav") and cont["prompt_text"] == "Hello from the guest."
    assert "reference_wav_path" not in cont
    ref = by_text["Only my timbre please."]
    assert ref["reference_wav_path"].endswith("guest.wav") and "prompt_wav_path" not in ref
    reg = by_text["The narrator speaks."]
    assert reg["prompt_wav_path"].endswith("narrator.wav") and reg["prompt_text"] == "This is how I sound."


def test_seed_makes_output_reproducible(write_manifest, tmp_path):
    manifest = write_manifest("id,text,seed\na,The same words twice.,7\nb,The same words twice.,8\n")
    first = run(manifest, tmp_path / "one")
    again = run(manifest, tmp_path / "two")
    audio = lambda out, rid: (out / "book" / "segments" / f"{rid}.wav").read_bytes()  # noqa: E731
    assert audio(tmp_path / "one", "a") == audio(tmp_path / "two", "a")
    assert audio(tmp_path / "one", "a") != audio(tmp_path / "one", "b")
    assert [r["status"] for r in first + again] == ["done"] * 4


def test_long_text_is_read_in_pieces_and_joined(write_manifest, tmp_path, calls, monkeypatch):
    monkeypatch.setenv("VOXCPM_MAX_CHARS", "60")
    monkeypatch.setenv("VOXCPM_PIECE_PAUSE_S", "0.25")
    text = (
        "The lamplighter walked the length of Harrow Street. He carried a ladder and a small flame. "
        "Every evening, for forty years, he lit the lamps."
    )
    manifest = write_manifest(f'id,text\nlong,"{text}"\n')
    (row,) = run(manifest, tmp_path / "out")
    assert row["status"] == "done" and row["pieces"] == 3 and row["takes"] == 3
    assert [c["text"] for c in calls] == [
        "The lamplighter walked the length of Harrow Street.",
        "He carried a ladder and a small flame.",
        "Every evening, for forty years, he lit the lamps.",
    ]
    assert len({c["seed"] for c in calls}) == 1  # one voice, one seed: pieces sound alike
    expected = sum(c["samples"] for c in calls) / 48000 + 2 * 0.25
    assert wav_seconds(tmp_path / "out" / "book" / "segments" / "long.wav") == pytest.approx(expected, abs=1e-4)


def test_pieces_are_checked_by_ear_one_by_one_and_a_failing_piece_is_read_again(
    write_manifest, tmp_path, calls, monkeypatch
):
    """The tiny model's random weights say nothing: every piece fails its check, so each is read again (not
    the whole row), the best take of each is kept, and the row (kept, flagged) records every piece's verdict."""
    import json

    from mediamill.store import Store

    monkeypatch.setenv("MEDIAMILL_VERIFY", "pocketsphinx")
    monkeypatch.setenv("MEDIAMILL_VERIFY_KEEP_FAILED", "true")
    monkeypatch.setenv("MEDIAMILL_VERIFY_MAX_TAKES", "1")
    monkeypatch.setenv("VOXCPM_MAX_TAKES", "2")
    monkeypatch.setenv("VOXCPM_MAX_CHARS", "60")
    text = "The lamplighter walked the length of Harrow Street. He carried a ladder and a small flame."
    manifest = write_manifest(f'id,text\nlong,"{text}"\n')
    (row,) = run(manifest, tmp_path / "out")
    assert row["status"] == "done" and row["pieces"] == 2 and row["verified"] == "fail"
    assert [c["text"] for c in calls] == ["The lamplighter walked the length of Harrow Street."] * 2 + [
        "He carried a ladder and a small flame."
    ] * 2  # each piece twice: its own retake, not the row's
    assert row["takes"] == 4 and row["retakes"] == 0
    entry = Store(tmp_path / "out").get(row["key"])
    detail = json.loads(Store(tmp_path / "out").extra(entry, "verify.json").read_text())
    starts = sorted([p["offset_s"] for p in detail["pieces"]] + detail["unheard_pieces_s"])
    assert len(starts) == 2 and starts[0] == 0.0 and starts[1] > 0.5  # each piece judged where it sits


def test_a_truncated_take_is_generated_again(write_manifest, tmp_path, calls):
    calls.truncate.add(0)
    manifest = write_manifest("id,text\nonly,A sentence long enough to notice when it is cut short.\n")
    (row,) = run(manifest, tmp_path / "out")
    assert row["status"] == "done" and row["takes"] == 2 and row["warnings"] is None
    assert [c["samples"] for c in calls][0] == 480 and calls[0]["seed"] != calls[1]["seed"]
    assert wav_seconds(tmp_path / "out" / "book" / "segments" / "only.wav") == pytest.approx(
        calls[1]["samples"] / 48000
    )


def test_a_babbling_model_fails_the_row_after_bounded_takes(
    write_manifest, tmp_path, monkeypatch, babbling_voxcpm, calls
):
    monkeypatch.setenv("VOXCPM_MODEL", str(babbling_voxcpm))
    manifest = write_manifest("id,text\nok,Short words.\n")
    (row,) = run(manifest, tmp_path / "out")
    assert row["status"] == "failed" and row["attempts"] == 1  # not retried: the backend already retook it
    assert "babbling" in row["error"] and "after 3 takes" in row["error"]
    assert len(calls) == 3 and all(c["samples"] == c["max_len"] * 7680 for c in calls)

    monkeypatch.setenv("VOXCPM_KEEP_BAD", "true")
    (row,) = run(manifest, tmp_path / "out")
    assert row["status"] == "done" and row["takes"] == 3 and "babbling" in row["warnings"]


def test_the_model_loads_once_for_many_rows(write_manifest, tmp_path, monkeypatch):
    import voxcpm

    monkeypatch.setattr(voxcpm_replicas, "_pools", {})
    loads = []
    original = voxcpm.VoxCPM.__init__

    def counting(self, *args, **kwargs):
        loads.append(kwargs.get("device"))
        original(self, *args, **kwargs)

    monkeypatch.setattr(voxcpm.VoxCPM, "__init__", counting)
    lines = "\n".join(f"r{i:02d},Line number {i} of the chapter." for i in range(12))
    rows = run(write_manifest(f"id,text\n{lines}\n"), tmp_path / "out")
    assert [r["status"] for r in rows] == ["done"] * 12
    assert loads == ["cpu"]
    (pool,) = voxcpm_replicas._pools.values()
    assert pool.replicas[0].served == 12


def test_rows_are_checked_up_front(write_manifest, tmp_path):
    manifest = write_manifest(
        """
id,kind,text,voice,reference,speed,options
a,tts,Hello.,nobody,,,
b,clone,Hello.,,https://example.com/ref.wav,,
c,tts,Hello.,,,1.2,
d,tts,Hello.,,,,"{""volume"": 2}"
e,tts,Hello.,,,,"{""denoise"": true}"
"""
    )
    with pytest.raises(ManifestError) as err:
        validate(manifest, backend="voxcpm")
    found = {(p.row, p.column) for p in err.value.problems}
    assert found == {(1, "voice"), (2, "reference"), (4, "options"), (5, "options")}  # speed is a tempo change
    assert "mediamill voices add" in str(err.value) and "VOXCPM_DENOISER" in str(err.value)


def test_without_the_extra_the_backend_says_how_to_install(write_manifest):
    manifest = write_manifest("id,text\na,Hello.\n")
    code = (
        "import sys; sys.modules['voxcpm'] = None\n"
        "from mediamill.plan import validate\n"
        f"validate({str(manifest)!r}, backend='voxcpm')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "pip install 'mediamill[voxcpm]'" in proc.stderr


def test_device_settings_are_checked():
    import torch

    assert resolve_devices("cpu") == ["cpu"]
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    assert resolve_devices("auto") == ([f"cuda:{i}" for i in range(gpus)] or ["cpu"])
    with pytest.raises(ModelLoadError, match="is not auto, cpu, cuda or cuda:N"):
        resolve_devices("gpu0")
    with pytest.raises(ModelLoadError, match=f"torch sees {gpus} CUDA GPU"):
        resolve_devices(f"cuda:{gpus}")


@pytest.mark.gpu
def test_rows_spread_over_every_gpu_replica(write_manifest, tmp_path, monkeypatch):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    gpus = torch.cuda.device_count()
    monkeypatch.setenv("VOXCPM_DEVICE", "cuda")
    monkeypatch.setattr(voxcpm_replicas, "_pools", {})
    lines = "\n".join(f"r{i:02d},Line number {i} of a chapter read on the GPUs." for i in range(4 * gpus))
    rows = run(write_manifest(f"id,text\n{lines}\n"), tmp_path / "out")
    assert [r["status"] for r in rows] == ["done"] * 4 * gpus
    assert {r["device"] for r in rows} == {f"cuda:{i}" for i in range(gpus)}
    (pool,) = voxcpm_replicas._pools.values()
    assert pool.size == gpus and sum(r.served for r in pool.replicas) == 4 * gpus


def test_the_example_narration_manifest_runs(tmp_path):
    import shutil

    from tests.helpers.paths import MANIFESTS

    shutil.copytree(MANIFESTS, tmp_path / "manifests")
    rows = run(tmp_path / "manifests" / "narration.csv", tmp_path / "out")
    assert [r["status"] for r in rows] == ["done"] * 4, rows
    book = probe(tmp_path / "out" / "narration" / "narration.m4b")
    assert [c.title for c in book.chapters] == ["Designed voices", "Cloned voice"]
    assert book.tags["title"] == "Harbour Voices"
