"""Plain VoxCPM replicas that really compile on their GPU, and more than one per GPU.

Why: voxcpm 2.0.3 compiles (``torch.compile``, mode reduce-overhead) only when
the model's device is exactly ``"cuda"``: ``VoxCPM2Model.optimize`` raises on
anything else, catches its own error, prints "torch.compile disabled" and goes
on uncompiled. mediamill passes ``"cuda:N"``, so ``VOXCPM_OPTIMIZE=true`` did
nothing on a GPU.

The fix: a replica that compiles runs in its own process started with
``CUDA_VISIBLE_DEVICES=N``; there its GPU is the only one, voxcpm gets
``device="cuda"``, and compile applies. Processes are also what scales several
batch-size-1 replicas on one GPU: generation at batch size 1 is bound by
kernel launches on the CPU side, and threads of one process share one GIL;
compile's CUDA-graph trees are also kept per thread and device, which a pool
of changing worker threads would defeat.

``plan_replicas(devices, per_device, optimize, processes)`` decides, with no
GPU needed, what each replica gets (``ReplicaSpec``):

- CPU: one replica in this process, never compiled (voxcpm compiles on CUDA
  only), unless ``processes="always"`` (tests, isolation);
- GPU ``cuda:N``, ``per_device`` replicas (``VOXCPM_REPLICAS_PER_DEVICE``),
  each in its own process (device ``"cuda"``, env ``CUDA_VISIBLE_DEVICES=N``,
  compiled if ``VOXCPM_OPTIMIZE``) when ``VOXCPM_REPLICA_PROCESSES`` is
  ``always``, or ``auto`` (default) and compiling or more than one per GPU;
  otherwise in this process as today (``"cuda:N"``, not compiled).

``ReplicaPool`` is mediamill's ``ModelPool`` over those specs: a row takes
whichever replica is free; process replicas start on first use. A
``ProcessReplica`` is a ``Replica`` whose model lives in the child: the
parent computes bounds and arguments exactly as in-process, sends them with
the seed (the child calls ``torch.manual_seed``, which on its one visible GPU
seeds the same generator the in-process replica seeds), and receives 16-bit
PCM. Labels (the ``device`` column): ``cuda:N``, or ``cuda:N#k`` with several
per GPU. ``replica_pool(settings)`` is the process-wide pool, one per
(model, replica plan) pair.
"""

from __future__ import annotations

import importlib
import multiprocessing as mp
import os
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...verify import DurationCheck
from ..errors import BackendError
from ..reading import Take
from .pool import ModelLoadError, ModelPool, Replica, model_identity, resolve_devices
from .settings import VoxcpmSettings, current_settings

__all__ = [
    "ReplicaSettings",
    "ReplicaSpec",
    "ProcessReplica",
    "ReplicaPool",
    "plan_replicas",
    "replica_pool",
    "load_voxcpm",
]


# The replicas' settings are fields of ``VoxcpmSettings`` (one place for every VOXCPM_ setting).
ReplicaSettings = VoxcpmSettings


@dataclass(frozen=True)
class ReplicaSpec:
    label: str  # what results call it: cuda:N, cuda:N#k, cpu
    gpu: int | None  # the physical GPU index
    device: str  # what voxcpm is given
    env: dict[str, str] = field(default_factory=dict)  # set in the replica's process before CUDA starts
    optimize: bool = False  # torch.compile requested (and possible: device "cuda")
    process: bool = False


def plan_replicas(
    devices: list[str], per_device: int = 1, optimize: bool = False, processes: str = "auto"
) -> list[ReplicaSpec]:
    """One spec per replica for the resolved devices (``cpu`` or ``cuda:N`` strings)."""
    specs: list[ReplicaSpec] = []
    for device in devices:
        if device == "cpu":
            specs.append(ReplicaSpec("cpu", None, "cpu", process=processes == "always"))
            continue
        gpu = int(device.split(":")[1])
        own_process = processes == "always" or (processes == "auto" and (optimize or per_device > 1))
        if optimize and not own_process:
            warnings.warn(
                f"VOXCPM_OPTIMIZE: {device} runs in this process, where voxcpm cannot compile "
                "(it needs the device to be exactly 'cuda'); set VOXCPM_REPLICA_PROCESSES=auto",
                stacklevel=2,
            )
        for k in range(per_device):
            label = device if per_device == 1 else f"{device}#{k}"
            if own_process:
                specs.append(ReplicaSpec(label, gpu, "cuda", {"CUDA_VISIBLE_DEVICES": str(gpu)}, optimize, True))
            else:
                specs.append(ReplicaSpec(label, gpu, device))
    return specs


# -- the replica's process -------------------------------------------------------------


def load_voxcpm(
    source: str, device: str, optimize: bool, denoiser: str | None = None, local_files_only: bool = False
) -> Any:
    """What a replica process loads by default: ``voxcpm.VoxCPM`` as the in-process pool loads it."""
    import warnings as _w

    from .pool import _quiet_progress_bars

    with _w.catch_warnings():
        _w.simplefilter("ignore", FutureWarning)
        from voxcpm import VoxCPM

        local = Path(source).expanduser()
        model = VoxCPM.from_pretrained(
            hf_model_id=str(local) if local.is_dir() else source,
            load_denoiser=denoiser is not None,
            zipenhancer_model_id=denoiser or "",
            local_files_only=local_files_only,
            optimize=optimize,
            device=device,
        )
    _quiet_progress_bars()
    return model


def _resolve(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def _describe(model: Any, spec: ReplicaSpec, load_s: float) -> dict[str, Any]:
    tts = model.tts_model
    encode_rate = getattr(tts, "_encode_sample_rate", None) or tts.audio_vae.sample_rate
    return {
        "sample_rate": int(tts.sample_rate),
        "steps_per_s": float(encode_rate) / (int(tts.audio_vae.hop_length) * int(tts.patch_size)),
        "device": str(getattr(tts, "device", spec.device)),
        # voxcpm keeps the uncompiled encoder aside only when torch.compile was applied.
        "compiled": hasattr(tts, "_feat_encoder_raw"),
        "visible": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "pid": os.getpid(),
        "load_s": load_s,
    }


def _replica_main(
    conn: Any, spec: ReplicaSpec, source: str, load_kwargs: dict[str, Any], loader: str, threads: int
) -> None:
    os.environ.update(spec.env)  # before torch touches CUDA: this GPU becomes the process's only "cuda"
    try:
        import torch

        from .pool import to_pcm16

        if threads:
            torch.set_num_threads(threads)
        started = time.perf_counter()
        model = _resolve(loader)(source, spec.device, spec.optimize, **load_kwargs)
        conn.send(("ready", _describe(model, spec, time.perf_counter() - started)))
    except Exception as exc:  # noqa: BLE001 - the parent reports it as a load failure
        conn.send(("load_error", f"{type(exc).__name__}: {exc}"))
        return
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        kind = message[0]
        if kind == "stop":
            return
        _, arguments, seed = message
        try:
            torch.manual_seed(seed)
            if kind == "generate":
                wav = model.generate(**arguments)
                conn.send(("ok", to_pcm16(wav), int(len(wav))))
                continue
            chunks = model.generate_streaming(**arguments)
            try:
                for chunk in chunks:
                    if conn.poll() and conn.recv()[0] == "cancel":
                        break
                    conn.send(("chunk", to_pcm16(chunk)))
            finally:
                chunks.close()
            conn.send(("end",))
        except Exception as exc:  # noqa: BLE001 - one failed generation; the replica stays up
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


# -- the parent's side -----------------------------------------------------------------


_IN_CHILD = "in its own process"


@dataclass
class ProcessReplica(Replica):
    spec: ReplicaSpec | None = None
    source: str = ""
    load_kwargs: dict[str, Any] = field(default_factory=dict)
    loader: str = "mediamill.engines.voxcpm.replicas:load_voxcpm"
    threads: int = 0
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._conn: Any = None
        self._process: Any = None
        self._seed = 0

    def start(self) -> None:
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        self._process = ctx.Process(
            target=_replica_main,
            name=f"voxcpm-{self.device}",
            daemon=True,
            args=(child, self.spec, self.source, self.load_kwargs, self.loader, self.threads),
        )
        self._process.start()
        child.close()
        self._conn = parent
        kind, payload = self._receive()
        if kind != "ready":
            self.close()
            raise ModelLoadError(f"cannot load VoxCPM model '{self.source}' on {self.device}: {payload}")
        self.info = payload
        self.load_s = payload["load_s"]
        self.model = _IN_CHILD  # ModelPool loads a replica whose model is None

    def _receive(self) -> tuple:
        while not self._conn.poll(0.5):
            if not self._process.is_alive():
                raise BackendError(f"VoxCPM replica {self.device} exited (code {self._process.exitcode})")
        try:
            return self._conn.recv()
        except EOFError:
            raise BackendError(f"VoxCPM replica {self.device} exited") from None

    def close(self) -> None:
        if self._process is None:
            return
        try:
            if self._process.is_alive():
                self._conn.send(("stop",))
                self._process.join(5)
        except (OSError, BrokenPipeError):
            pass
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(5)
        self._process = None
        self.model = None

    @property
    def sample_rate(self) -> int:
        return int(self.info["sample_rate"])

    @property
    def steps_per_s(self) -> float:
        return float(self.info["steps_per_s"])

    def seed(self, seed: int) -> None:
        self._seed = seed  # sent with the next generation; the child seeds torch

    def take(self, text: str, voicing, knobs, seed: int, check: DurationCheck, max_len: int | None = None) -> Take:
        arguments = self._arguments(text, voicing, knobs, seed, check, max_len)
        self._conn.send(("generate", arguments, self._seed))
        kind, *payload = self._receive()
        if kind != "ok":
            raise BackendError(f"VoxCPM replica {self.device}: {payload[0]}")
        pcm, samples = payload
        samples_per_step = self.sample_rate / self.steps_per_s
        return Take(pcm, self.sample_rate, hit_cap=samples >= arguments["max_len"] * samples_per_step - 1)

    def stream(self, text: str, voicing, knobs, seed: int, check: DurationCheck, max_len: int) -> Iterator[bytes]:
        self._conn.send(("stream", self._arguments(text, voicing, knobs, seed, check, max_len), self._seed))
        ended = False
        try:
            while True:
                kind, *payload = self._receive()
                if kind == "end":
                    ended = True
                    return
                if kind == "error":
                    ended = True
                    raise BackendError(f"VoxCPM replica {self.device}: {payload[0]}")
                yield payload[0]
        finally:
            if not ended:  # the caller stopped listening: stop the child, read up to its end marker
                self._conn.send(("cancel",))
                while self._receive()[0] not in ("end", "error"):
                    pass


@dataclass
class ReplicaPool(ModelPool):
    specs: list[ReplicaSpec] = field(default_factory=list)

    def __post_init__(self) -> None:
        import queue

        cfg = self.settings
        load = {"denoiser": cfg.denoiser, "local_files_only": cfg.local_files_only}
        self.replicas = []
        for spec in self.specs:
            if spec.process:
                self.replicas.append(
                    ProcessReplica(
                        spec.label,
                        settings_min_len_ratio=cfg.min_len_ratio,
                        spec=spec,
                        source=self.source,
                        load_kwargs=load,
                        threads=cfg.cpu_threads if spec.device == "cpu" else 0,
                    )
                )
            else:
                self.replicas.append(Replica(spec.device, settings_min_len_ratio=cfg.min_len_ratio))
        self.devices = [spec.label for spec in self.specs]
        self._free: queue.Queue = queue.Queue()
        for replica in self.replicas:
            self._free.put(replica)
        self._load_lock = threading.Lock()

    def _load(self, replica: Replica) -> None:
        if isinstance(replica, ProcessReplica):
            replica.start()
        else:
            super()._load(replica)  # in this process: never compiled (self.settings has optimize off)

    def close(self) -> None:
        for replica in self.replicas:
            if isinstance(replica, ProcessReplica):
                replica.close()


_pools: dict[tuple, ReplicaPool] = {}
_pools_lock = threading.Lock()


def replica_pool(settings: VoxcpmSettings | None = None) -> ReplicaPool:
    """The process-wide pool of plain replicas for the configured model, devices and replica settings."""
    cfg = settings or current_settings()
    devices = resolve_devices(cfg.device)
    specs = plan_replicas(devices, cfg.replicas_per_device, cfg.optimize, cfg.replica_processes)
    key = (
        model_identity(cfg.model, cfg.local_files_only),
        tuple((s.label, s.device, s.optimize, s.process) for s in specs),
        cfg.denoiser,
        cfg.cpu_threads,
    )
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None:
            # In-process replicas are never compiled (their device is cuda:N or cpu); process replicas carry optimize.
            pool = _pools[key] = ReplicaPool(
                cfg.model, devices, cfg.model_copy(update={"optimize": False}), specs=specs
            )
        return pool
