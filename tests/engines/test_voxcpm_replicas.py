"""Plain replicas: which device string each gets, how many, where compile is asked for, and the process path."""

from __future__ import annotations

import threading

import pytest

from mediamill.backends import voxcpm_local
from mediamill.engines.voxcpm import replicas as plain_replicas
from mediamill.engines.voxcpm.pool import Knobs, Replica, Voicing
from mediamill.engines.voxcpm.replicas import (
    ProcessReplica,
    ReplicaPool,
    ReplicaSettings,
    ReplicaSpec,
    plan_replicas,
    replica_pool,
)
from mediamill.plan import validate
from mediamill.verify import DurationCheck

FAKE = "tests.helpers.fake_loaders:recording"


def test_cpu_is_one_replica_in_this_process_never_compiled():
    assert plan_replicas(["cpu"], per_device=3, optimize=True) == [ReplicaSpec("cpu", None, "cpu")]
    assert plan_replicas(["cpu"], processes="always") == [ReplicaSpec("cpu", None, "cpu", process=True)]


def test_gpus_without_compile_stay_as_today():
    assert plan_replicas(["cuda:0", "cuda:2"]) == [
        ReplicaSpec("cuda:0", 0, "cuda:0"),
        ReplicaSpec("cuda:2", 2, "cuda:2"),
    ]


def test_compiling_replicas_get_their_gpu_as_plain_cuda_in_their_own_process():
    specs = plan_replicas(["cuda:0", "cuda:2"], optimize=True)
    assert specs == [
        ReplicaSpec("cuda:0", 0, "cuda", {"CUDA_VISIBLE_DEVICES": "0"}, optimize=True, process=True),
        ReplicaSpec("cuda:2", 2, "cuda", {"CUDA_VISIBLE_DEVICES": "2"}, optimize=True, process=True),
    ]


def test_several_replicas_per_gpu_run_in_separate_processes():
    specs = plan_replicas(["cuda:1", "cuda:3"], per_device=3)
    assert [s.label for s in specs] == ["cuda:1#0", "cuda:1#1", "cuda:1#2", "cuda:3#0", "cuda:3#1", "cuda:3#2"]
    assert all(s.process and s.device == "cuda" and not s.optimize for s in specs)
    assert [s.env["CUDA_VISIBLE_DEVICES"] for s in specs] == ["1", "1", "1", "3", "3", "3"]


def test_never_keeps_replicas_in_process_and_says_compile_cannot_apply():
    with pytest.warns(UserWarning, match="cannot compile"):
        specs = plan_replicas(["cuda:0"], per_device=2, optimize=True, processes="never")
    assert specs == [ReplicaSpec("cuda:0#0", 0, "cuda:0"), ReplicaSpec("cuda:0#1", 0, "cuda:0")]


def test_settings_drive_the_plan(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setenv("VOXCPM_DEVICE", "cuda:1,cuda:3")
    monkeypatch.setenv("VOXCPM_REPLICAS_PER_DEVICE", "2")
    monkeypatch.setenv("VOXCPM_OPTIMIZE", "true")
    monkeypatch.setenv("VOXCPM_MODEL", "openbmb/VoxCPM2")
    monkeypatch.setattr(plain_replicas, "_pools", {})
    pool = replica_pool()
    assert pool.size == 4 and pool.devices == ["cuda:1#0", "cuda:1#1", "cuda:3#0", "cuda:3#1"]
    assert [(r.spec.device, r.spec.env, r.spec.optimize) for r in pool.replicas] == [
        ("cuda", {"CUDA_VISIBLE_DEVICES": "1"}, True)
    ] * 2 + [("cuda", {"CUDA_VISIBLE_DEVICES": "3"}, True)] * 2
    assert pool.settings.optimize is False  # nothing in this process is asked to compile
    assert replica_pool() is pool
    monkeypatch.setenv("VOXCPM_OPTIMIZE", "false")
    monkeypatch.setenv("VOXCPM_REPLICAS_PER_DEVICE", "1")
    plain = replica_pool()
    assert plain is not pool and [type(r) for r in plain.replicas] == [Replica, Replica]
    assert [r.device for r in plain.replicas] == ["cuda:1", "cuda:3"]


def _fake_pool(specs, settings):
    pool = ReplicaPool("fake-model", [s.label for s in specs], settings, specs=specs)
    for replica in pool.replicas:
        replica.loader = FAKE
    return pool


def test_the_replica_process_sees_plain_cuda_its_gpu_only_and_compile():
    specs = plan_replicas(["cuda:3"], optimize=True)
    pool = _fake_pool(specs, ReplicaSettings(model="fake-model"))
    try:
        with pool.replica() as replica:
            assert isinstance(replica, ProcessReplica)
            assert replica.info["device"] == "cuda" and replica.info["compiled"] is True
            assert replica.info["visible"] == "3" and replica.info["pid"] != __import__("os").getpid()
            assert replica.sample_rate == 48000 and replica.steps_per_s == 6.25
    finally:
        pool.close()


def test_two_replicas_on_one_gpu_serve_two_rows_at_once():
    specs = plan_replicas(["cuda:0"], per_device=2)
    pool = _fake_pool(specs, ReplicaSettings(model="fake-model"))
    seen, pids = [], set()
    barrier = threading.Barrier(2)

    def row(seed):
        with pool.replica() as replica:
            barrier.wait(timeout=120)  # both replicas held at the same time
            take = replica.take("A row of text.", Voicing(), Knobs(), seed, DurationCheck())
            seen.append((replica.device, take.pcm[:4]))
            pids.add(replica.info["pid"])

    try:
        threads = [threading.Thread(target=row, args=(s,)) for s in (1, 2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(180)
        assert sorted(d for d, _ in seen) == ["cuda:0#0", "cuda:0#1"] and len(pids) == 2
        assert seen[0][1] != seen[1][1]  # each child seeded with its row's seed
    finally:
        pool.close()


@pytest.fixture
def cpu_process_replica(voxcpm_env):
    spec = ReplicaSpec("cpu", None, "cpu", process=True)
    replica = ProcessReplica("cpu", spec=spec, source=str(voxcpm_env), threads=1)
    replica.start()
    yield replica
    replica.close()


@pytest.fixture
def one_thread():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the child: another thread count sums in another order
    yield
    torch.set_num_threads(threads)


def test_a_process_replica_makes_the_same_audio_as_an_in_process_one(cpu_process_replica, voxcpm_env, one_thread):
    from voxcpm import VoxCPM

    here = Replica(
        "cpu",
        model=VoxCPM(
            voxcpm_model_path=str(voxcpm_env),
            zipenhancer_model_path=None,
            enable_denoiser=False,
            optimize=False,
            device="cpu",
        ),
    )
    text, check = "The lamps came on one by one.", DurationCheck()
    for seed in (3, 4):
        remote = cpu_process_replica.take(text, Voicing(style="calm"), Knobs(cfg_value=1.5), seed, check)
        local = here.take(text, Voicing(style="calm"), Knobs(cfg_value=1.5), seed, check)
        assert remote == local and remote.duration_s > 0
    streamed_remote = b"".join(cpu_process_replica.stream(text, Voicing(), Knobs(), 5, check, 200))
    streamed_local = b"".join(here.stream(text, Voicing(), Knobs(), 5, check, 200))
    assert streamed_remote == streamed_local
    # Leaving a stream early stops the child's generation; the replica serves the next one.
    chunks = cpu_process_replica.stream(text, Voicing(), Knobs(), 5, check, 200)
    next(chunks)
    chunks.close()
    assert cpu_process_replica.take(text, Voicing(), Knobs(), 3, check) == here.take(text, Voicing(), Knobs(), 3, check)


def test_the_backend_runs_rows_on_process_replicas(write_manifest, voxcpm_env, monkeypatch, tmp_path):
    monkeypatch.setenv("VOXCPM_REPLICA_PROCESSES", "always")
    monkeypatch.setattr(plain_replicas, "_pools", {})
    manifest = write_manifest("id,text,seed\na,The lamps came on one by one.,7\nb,Nobody looked up.,8\n")
    backend = voxcpm_local.VoxcpmBackend()
    assert backend.default_concurrency == 1
    try:
        made = [backend.generate_sync(job, tmp_path) for job in validate(manifest, "voxcpm").jobs]
        assert [m.extra["device"] for m in made] == ["cpu", "cpu"] and all(m.compute_s > 0 for m in made)
        (pool,) = plain_replicas._pools.values()
        assert isinstance(pool.replicas[0], ProcessReplica) and pool.replicas[0].served == 2
    finally:
        for pool in plain_replicas._pools.values():
            pool.close()


def test_a_replica_that_cannot_load_says_so(voxcpm_env, tmp_path):
    from mediamill.engines.voxcpm.pool import ModelLoadError

    spec = ReplicaSpec("cpu", None, "cpu", process=True)
    replica = ProcessReplica("cpu", spec=spec, source=str(tmp_path / "missing"))
    with pytest.raises(ModelLoadError, match="cannot load VoxCPM model"):
        replica.start()


@pytest.mark.gpu
def test_a_compiling_replica_compiles_on_its_gpu(voxcpm_env):
    import torch

    spec = plan_replicas([f"cuda:{torch.cuda.device_count() - 1}"], optimize=True)[0]
    replica = ProcessReplica(spec.label, spec=spec, source=str(voxcpm_env))
    replica.start()
    try:
        assert replica.info["device"] == "cuda" and replica.info["compiled"] is True
        take = replica.take("The lamps came on one by one.", Voicing(), Knobs(), 3, DurationCheck())
        assert take.duration_s > 0
    finally:
        replica.close()
