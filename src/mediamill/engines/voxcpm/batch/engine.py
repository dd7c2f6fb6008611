"""The batched VoxCPM engine: nano-vllm-voxcpm server pools behind one small async interface.

Contract (``BatchEngine``):

- ``take(request) -> BatchTake``: generate one piece (one engine request) and
  return its 16-bit PCM, its length in steps, whether it ran to its cap, its
  share of GPU time and how long it waited to be admitted. ``stream(request)``
  yields the PCM chunk by chunk instead. Both can be awaited from any event
  loop; ``take_sync``/``stream_sync`` serve threads. A ``TakeRequest`` carries
  its own seed (nano-vllm seeds each request, not the process), its step cap
  (``max_generate_length``), its diffusion steps and its voice as latents.
- ``latents(path, denoise)``: a recording encoded by the engine's VAE, cached
  by the file's bytes, for prompts (with a transcript) and references.
- ``capacity``: sequences the engine runs at once (``max_num_seqs`` per server,
  summed), the number of rows its backend keeps in flight.

Inside: one nano-vllm server (``VoxCPM.from_pretrained(..., devices=[gpu])``,
its own process) per GPU and per ``inference_timesteps`` value served
(``VOXCPM_BATCH_TIMESTEPS``): diffusion steps are fixed per server, so
requests are grouped by steps. The servers of one GPU split
``VOXCPM_BATCH_MEMORY`` between them. The engine admits at most
``max_num_seqs`` requests into each server and holds the rest itself, so it,
not nano-vllm's FIFO, decides who goes next: the longest expected piece first
(fewest stragglers at the end of a batch), with ``VOXCPM_BATCH_AGING`` steps of
priority gained per second of waiting so short pieces are not starved; a freed
slot goes to the least loaded server of the group, which spreads rows over
GPUs. Each server has a ``GpuMeter``: a take's ``compute_s`` is its share of
that server's busy time (see ``meter``).

The servers and their bookkeeping live on one private event loop in a daemon
thread, for the life of the process (starting a server costs minutes of
loading and CUDA-graph capture; mediamill runs a fresh event loop per run).
``VOXCPM_BATCH_IMPL=standin`` swaps nano-vllm for ``StandInServerPool`` (CPU,
deterministic audio) for tests and dry runs.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import heapq
import itertools
import json
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import BackendError, PermanentError
from ..pool import to_pcm16
from ..settings import VoxcpmSettings
from .meter import GpuMeter
from .settings import (
    attention_kind,
    chosen_engine,
    engine_capacity,
    engine_devices,
    engine_identity,
    engine_missing,
    model_rates,
    nanovllm_usable,
    served_timesteps,
)

__all__ = [
    "BatchEngine",
    "BatchTake",
    "TakeRequest",
    "chosen_engine",
    "engine_capacity",
    "engine_devices",
    "engine_identity",
    "engine_missing",
    "get_engine",
    "model_rates",
    "nanovllm_usable",
    "served_timesteps",
]


@dataclass(frozen=True)
class TakeRequest:
    text: str  # what the model reads, voice-design prefix included
    seed: int
    max_len: int  # step cap: nano-vllm's max_generate_length
    timesteps: int = 10
    cfg_value: float = 2.0
    prompt_latents: bytes | None = None  # prompt continuation (with prompt_text)
    prompt_text: str = ""
    ref_latents: bytes | None = None  # VoxCPM2 reference: timbre without a transcript
    expected_steps: int = 0  # admission order (longest first); 0 means max_len
    temperature: float = 1.0


@dataclass
class BatchTake:
    pcm: bytes
    sample_rate: int
    steps: int
    hit_cap: bool
    compute_s: float  # this request's share of its server's busy time
    queue_s: float  # waiting for a slot in a server
    device: str

    @property
    def duration_s(self) -> float:
        return len(self.pcm) / 2 / self.sample_rate if self.sample_rate else 0.0


@dataclass
class _Server:
    pool: Any
    device: str
    timesteps: int
    capacity: int
    meter: GpuMeter = field(default_factory=GpuMeter)
    active: int = 0
    dead: bool = False
    served: int = 0

    def alive(self) -> bool:
        if self.dead:
            return False
        servers = getattr(self.pool, "servers", None)
        if servers is not None:  # nano-vllm: one worker process per server
            return all(s.process.is_alive() for s in servers)
        return bool(getattr(self.pool, "alive", True))


class _Group:
    """The servers of one diffusion-step count, and the requests waiting for them."""

    def __init__(self, timesteps: int, aging: float) -> None:
        self.timesteps = timesteps
        self.aging = aging
        self.servers: list[_Server] = []
        self._heap: list[tuple[float, int, asyncio.Future]] = []
        self._order = itertools.count()
        self._dispatch_pending = False

    def acquire(self, expected_steps: int) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future = loop.create_future()
        # Min-heap key: longest first; aging * enqueue time lets older requests overtake longer, newer ones.
        heapq.heappush(self._heap, (self.aging * time.monotonic() - expected_steps, next(self._order), fut))
        if not self._dispatch_pending:  # one dispatch per loop turn: a burst of pieces is ordered as a whole
            self._dispatch_pending = True
            loop.call_soon(self._dispatch)
        return fut

    def release(self, server: _Server) -> None:
        server.active -= 1
        self._dispatch()

    def _free(self) -> _Server | None:
        live = [s for s in self.servers if not s.dead and s.active < s.capacity]
        return max(live, key=lambda s: (s.capacity - s.active, -s.served)) if live else None

    def _dispatch(self) -> None:
        self._dispatch_pending = False
        while self._heap:
            server = self._free()
            if server is None:
                if all(s.dead for s in self.servers):
                    for _, _, fut in self._heap:
                        if not fut.done():
                            fut.set_exception(BackendError(f"every {self.timesteps}-step engine server has died"))
                    self._heap.clear()
                return
            _, _, fut = heapq.heappop(self._heap)
            if fut.done():  # cancelled while waiting
                continue
            server.active += 1
            server.served += 1
            fut.set_result(server)

    @property
    def waiting(self) -> int:
        return sum(not f.done() for _, _, f in self._heap)


class _LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="mediamill-batch-engine", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def submit(self, coro) -> concurrent.futures.Future:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def here(self) -> bool:
        try:
            return asyncio.get_running_loop() is self.loop
        except RuntimeError:
            return False

    async def call(self, coro):
        if self.here():
            return await coro
        return await asyncio.wrap_future(self.submit(coro))  # cancelling the caller cancels the task there


ServerFactory = Callable[..., Any]  # async (model_dir, device, timesteps, memory, cfg) -> pool


async def nanovllm_server(model_dir: str, device: str, timesteps: int, memory: float, cfg: VoxcpmSettings) -> Any:
    """One nano-vllm-voxcpm server pool on one GPU ("cuda:N"), for one diffusion-step count."""
    from .. import flash_attn_sdpa

    if attention_kind(cfg).startswith("sdpa"):
        flash_attn_sdpa.install(force=cfg.attention == "sdpa")
    from nanovllm_voxcpm import VoxCPM

    pool = VoxCPM.from_pretrained(
        model=model_dir,
        inference_timesteps=timesteps,
        max_num_batched_tokens=cfg.batch_max_tokens,
        max_num_seqs=cfg.batch_max_seqs,
        max_model_len=cfg.batch_max_model_len,
        gpu_memory_utilization=memory,
        enforce_eager=cfg.batch_eager,
        devices=[int(device.split(":")[1])],
    )
    await pool.wait_for_ready()
    return pool


async def standin_server(model_dir: str, device: str, timesteps: int, memory: float, cfg: VoxcpmSettings) -> Any:
    from .standin import StandInServerPool

    return StandInServerPool(
        model_path=model_dir,
        inference_timesteps=timesteps,
        max_num_seqs=cfg.batch_max_seqs,
        max_num_batched_tokens=cfg.batch_max_tokens,
        max_model_len=cfg.batch_max_model_len,
        gpu_memory_utilization=memory,
        devices=[device],
    )


class BatchEngine:
    def __init__(self, cfg: VoxcpmSettings, model_dir: Path, factory: ServerFactory | None = None) -> None:
        self.cfg = cfg
        self.model_dir = Path(model_dir)
        self.factory = factory or (standin_server if cfg.batch_impl == "standin" else nanovllm_server)
        missing = engine_missing(cfg)
        if missing:
            raise PermanentError(missing)
        self.devices = engine_devices(cfg)
        self.timesteps = served_timesteps(cfg)
        self.identity = engine_identity(cfg)
        self.steps_per_s, self.sample_rate = model_rates(self.model_dir)
        config = json.loads((self.model_dir / "config.json").read_text(encoding="utf-8"))
        self.feat_dim, self.patch_size = int(config.get("feat_dim", 64)), int(config.get("patch_size", 4))
        self._groups: dict[int, _Group] = {t: _Group(t, cfg.batch_aging) for t in self.timesteps}
        self._loop: _LoopThread | None = None
        self._started: concurrent.futures.Future | None = None
        self._lock = threading.Lock()
        self._latents: OrderedDict[tuple, bytes] = OrderedDict()
        self._encoding: dict[tuple, asyncio.Future] = {}

    # -- life cycle ------------------------------------------------------------------
    @property
    def capacity(self) -> int:
        return self.cfg.batch_max_seqs * len(self.devices) * len(self.timesteps)

    def capacity_for(self, timesteps: int) -> int:
        return self.cfg.batch_max_seqs * len(self.devices) if timesteps in self._groups else 0

    def _ensure_started(self) -> concurrent.futures.Future:
        with self._lock:
            if self._started is None:
                self._loop = _LoopThread()
                self._started = self._loop.submit(self._start())
            return self._started

    async def start(self) -> None:
        """Start the servers (once per process); safe to await from any loop, the engine's own included."""
        await asyncio.wrap_future(self._ensure_started())

    def start_sync(self, timeout: float | None = None) -> None:
        self._ensure_started().result(timeout)

    async def _start(self) -> None:
        try:
            await self._start_servers()
        except PermanentError:
            raise
        except Exception as exc:  # noqa: BLE001 - a start that failed fails every row the same way: do not retry it
            raise PermanentError(
                f"the batched engine could not start on {', '.join(self.devices)}: {_last_line(exc)}"
            ) from exc

    async def _start_servers(self) -> None:
        share = self.cfg.batch_memory / len(self.timesteps)  # the servers of one GPU split its memory

        async def one_device(device: str) -> list[_Server]:
            made = []
            for steps in self.timesteps:  # one at a time per GPU: each sizes its KV cache from what is free
                pool = await self.factory(str(self.model_dir), device, steps, share, self.cfg)
                made.append(_Server(pool, device, steps, self.cfg.batch_max_seqs))
            return made

        for servers in await asyncio.gather(*(one_device(d) for d in self.devices)):
            for server in servers:
                self._groups[server.timesteps].servers.append(server)
        info = await self._groups[self.timesteps[0]].servers[0].pool.get_model_info()
        if int(info["output_sample_rate"]) != self.sample_rate:
            raise PermanentError(
                f"the engine makes {info['output_sample_rate']} Hz audio; its config says {self.sample_rate}"
            )

    def stop_sync(self, timeout: float = 60) -> None:
        if self._loop is None or self._started is None:
            return

        async def stop() -> None:
            for group in self._groups.values():
                for server in group.servers:
                    await server.pool.stop()
                group.servers.clear()

        try:
            with contextlib.suppress(PermanentError):  # a start that failed leaves nothing to stop but the loop
                self._started.result(timeout)
            self._loop.submit(stop()).result(timeout)
        finally:
            self._loop.loop.call_soon_threadsafe(self._loop.loop.stop)
            self._loop = self._started = None

    # -- requests --------------------------------------------------------------------
    def prompt_tokens(self, req: TakeRequest) -> int:
        """An upper bound on the request's prompt length in engine tokens (UTF-8 bytes bound BPE tokens)."""
        per_patch = 4 * self.feat_dim * self.patch_size
        prompt = len(req.prompt_latents) // per_patch if req.prompt_latents else 0
        ref = len(req.ref_latents) // per_patch + 2 if req.ref_latents else 0
        return len((req.prompt_text + req.text).encode("utf-8")) + 2 + prompt + ref

    async def run(self, coro: Any) -> Any:
        """Run a coroutine on the engine's loop (where pieces are orchestrated) and await it from any loop."""
        try:
            await self.start()
        except BaseException:
            coro.close()
            raise
        return await self._loop.call(coro)  # type: ignore[union-attr]  # set by start()

    async def take(self, req: TakeRequest) -> BatchTake:
        await self.start()
        return await self._loop.call(  # type: ignore[union-attr]  # set by start()
            self.generate_piece(req, None, keep=True)
        )

    def take_sync(self, req: TakeRequest) -> BatchTake:
        self.start_sync()
        return self._loop.submit(  # type: ignore[union-attr]  # set by start_sync()
            self.generate_piece(req, None, keep=True)
        ).result()

    async def stream(self, req: TakeRequest) -> AsyncIterator[bytes]:
        await self.start()
        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue = asyncio.Queue()
        done = object()
        fut = self._loop.submit(  # type: ignore[union-attr]  # set by start()
            self.generate_piece(req, lambda pcm: loop.call_soon_threadsafe(chunks.put_nowait, pcm), keep=False)
        )
        fut.add_done_callback(lambda _: loop.call_soon_threadsafe(chunks.put_nowait, done))
        try:
            while (item := await chunks.get()) is not done:
                yield item
            fut.result()  # raises what the take raised
        finally:
            fut.cancel()

    def stream_sync(self, req: TakeRequest) -> Iterator[bytes]:
        self.start_sync()
        chunks: queue.Queue = queue.Queue()
        done = object()
        fut = self._loop.submit(  # type: ignore[union-attr]  # set by start_sync()
            self.generate_piece(req, chunks.put, keep=False)
        )
        fut.add_done_callback(lambda _: chunks.put(done))
        try:
            while (item := chunks.get()) is not done:
                yield item
            fut.result()
        finally:
            fut.cancel()

    def submit(self, coro: Any) -> concurrent.futures.Future:
        """Run a coroutine on the engine's loop from a thread (the engine must be started); its future."""
        if self._loop is None:
            coro.close()
            raise RuntimeError("start the engine first")
        return self._loop.submit(coro)

    async def generate_piece(self, req: TakeRequest, on_chunk: Callable[[bytes], Any] | None, keep: bool) -> BatchTake:
        """One piece, on the engine's loop: ``on_chunk`` gets PCM as it is made, ``keep`` joins it into the take."""
        group = self._groups.get(req.timesteps)
        if group is None:
            raise PermanentError(
                f"the batched engine serves inference_timesteps {self.cfg.batch_timesteps}, not "
                f"{req.timesteps} (add it to VOXCPM_BATCH_TIMESTEPS)"
            )
        if req.max_len < 1:
            raise PermanentError("a piece needs a step cap of at least 1")
        waited = time.perf_counter()
        server: _Server = await group.acquire(req.expected_steps or req.max_len)
        queue_s = time.perf_counter() - waited
        key = object()
        server.meter.start(key, self.prompt_tokens(req))
        chunks: list = []
        steps = 0
        try:
            kwargs: dict[str, Any] = dict(
                target_text=req.text,
                prompt_latents=req.prompt_latents,
                prompt_text=req.prompt_text,
                max_generate_length=req.max_len,
                temperature=req.temperature,
                cfg_value=req.cfg_value,
                seed=req.seed,
            )
            if req.ref_latents is not None:  # keyword only: VoxCPM 1.x servers have no reference argument
                kwargs["ref_audio_latents"] = req.ref_latents
            async for chunk in server.pool.generate(**kwargs):
                if steps == 0:
                    server.meter.reweigh(key, 1.0)  # prefill done: one token per decode step from now on
                steps += 1
                # Per chunk only what must happen now: hundreds of sequences each send a chunk every step.
                if keep:
                    chunks.append(chunk)
                if on_chunk is not None:
                    on_chunk(to_pcm16(chunk))
        except (RuntimeError, ValueError) as exc:
            if not server.alive():
                server.dead = True
                raise BackendError(f"engine server on {server.device} died: {_last_line(exc)}") from None
            if "ValueError" in str(exc) or isinstance(exc, ValueError):
                raise PermanentError(f"the engine refused the piece: {_last_line(exc)}") from None
            raise BackendError(f"engine error on {server.device}: {_last_line(exc)}") from None
        finally:
            compute_s = server.meter.finish(key)
            group.release(server)
        pcm = b"".join(to_pcm16(chunk) for chunk in chunks)
        return BatchTake(pcm, self.sample_rate, steps, steps >= req.max_len, compute_s, queue_s, server.device)

    # -- voices ----------------------------------------------------------------------
    async def latents(self, path: Path, denoise: Callable[[Path], bytes] | None = None) -> bytes:
        """VAE latents of a recording (cached by its bytes; ``denoise`` returns cleaned audio bytes first)."""
        await self.start()
        return await self._loop.call(  # type: ignore[union-attr]  # set by start()
            self._latents_here(Path(path), denoise)
        )

    async def _latents_here(self, path: Path, denoise: Callable[[Path], bytes] | None) -> bytes:
        loop = asyncio.get_running_loop()
        data = await loop.run_in_executor(None, path.read_bytes)
        key = (hashlib.sha256(data).hexdigest(), denoise is not None)
        if key in self._latents:
            self._latents.move_to_end(key)
            return self._latents[key]

        async def encode() -> bytes:
            audio = await loop.run_in_executor(None, denoise, path) if denoise else data
            server = self._groups[self.timesteps[0]].servers[0]
            latents = await server.pool.encode_latents(audio, path.suffix.lstrip(".").lower() or "wav")
            self._latents[key] = latents
            while len(self._latents) > 256:
                self._latents.popitem(last=False)
            return latents

        task = self._encoding.get(key)
        if task is None:  # one encode per recording, however many pieces ask for it at once
            task = self._encoding[key] = asyncio.ensure_future(encode())
            task.add_done_callback(lambda _: self._encoding.pop(key, None))
        return await asyncio.shield(task)

    # -- for /health and tests -----------------------------------------------------------
    def load(self) -> dict[str, Any]:
        """Per server: requests in flight, requests served, busy seconds; and requests waiting for a slot."""
        servers = {
            f"{s.device}/{s.timesteps}": {
                "active": s.active,
                "served": s.served,
                "busy_s": round(s.meter.busy_s, 3),
                "dead": s.dead,
            }
            for s in self.servers()
        }
        return {"servers": servers, "waiting": sum(g.waiting for g in self._groups.values())}

    def servers(self, timesteps: int | None = None) -> list[_Server]:
        return [s for g in self._groups.values() if timesteps in (None, g.timesteps) for s in g.servers]


def _last_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else type(exc).__name__


_engines: dict[tuple, BatchEngine] = {}
_engines_lock = threading.Lock()


def get_engine(cfg: VoxcpmSettings, model_dir: Path) -> BatchEngine:
    """The process-wide engine for a model and these settings (servers start on first use)."""
    key = (
        str(Path(model_dir).resolve()),
        cfg.device,
        cfg.batch_impl,
        cfg.batch_max_seqs,
        cfg.batch_max_tokens,
        cfg.batch_max_model_len,
        cfg.batch_memory,
        tuple(served_timesteps(cfg)),
        cfg.batch_eager,
        cfg.attention,
        cfg.batch_standin_devices,
    )
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = BatchEngine(cfg, model_dir)
        return engine
