"""One prepared GPU run: plain VoxCPM against the batched engine, side by side, in a few minutes on one H200.

Phases, in this order, each recorded as it ends (a run cut short keeps what it measured):

1. probe: Python, torch, CUDA, GPU, triton, flash-attn, transformers, voxcpm,
   nano-vllm-voxcpm, xxhash, librosa versions; which attention nano-vllm gets;
2. attention: the sdpa stand-in against flash-attn (when installed) and an
   explicit softmax(QK^T)V, at nano-vllm's decode and prefill shapes;
3. checkpoint: VoxCPM2's full architecture (``--size full``, 2.3 B parameters,
   bf16) with random weights and a stop head that never stops, so every
   generation runs exactly to its step cap on every engine (same work
   everywhere), in the layout both engines load (``tests/helpers/tiny_voxcpm.py``);
4. plain loop: ``voxcpm.VoxCPM.generate`` in a loop, one row at a time, with
   the bounds mediamill computes (the baseline a user would write);
5. batched: the engine's servers start once (timed), then for each level of
   rows in flight (``--levels``, default 1,16,64,128): the rows through
   mediamill's adapter (the voxcpm backend's ``generate`` with as many lanes
   as rows in flight) and the same requests sent to nano-vllm's server pool
   directly with the same concurrency, alternating, on the same servers;
6. plain engine, compiled: the voxcpm backend's plain engine on a replica
   process with ``device="cuda"`` and ``torch.compile`` (``voxcpm_replicas``),
   last because compiling takes the longest and matters least.

Rows are single pieces (``VOXCPM_MAX_RATIO=1`` caps each at its predicted
length + 1.5 s; one take each, kept), so every path makes the same number of
steps per row. Reported per phase: audio seconds, wall seconds, aggregate
audio seconds per GPU second, GPU memory (device-wide peak from
``mem_get_info``, all processes), and for the batched levels the ratio of the
adapter's throughput to nano-vllm's own. JSON goes to ``$OUT/voxcpm_batch.json``
(or ``--out``) after every phase.

``--dry-run`` (= ``--device cpu --size tiny``) runs everything on CPU with the
stand-ins (tiny checkpoint, the CPU server pool, the flash-attn stand-in), to
show the script works end to end; its numbers mean nothing.

Usage: python bench/voxcpm_batch.py [--dry-run] [--budget-s 420] [--levels 1,16,64,128]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import wave
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


sys.path.insert(0, str(REPO))  # tests.tiny_voxcpm builds the checkpoints

WORDS = ("lamp", "street", "ladder", "flame", "evening", "harbour", "window", "rain", "bell", "market")


def texts(n: int, salt: int = 0) -> list[str]:
    """Rows of one to three clauses (about 4 to 12 s of speech), so lengths differ."""
    out = []
    for i in range(n):
        j = i + salt
        clause = (
            f"the {WORDS[j % 10]} and the {WORDS[(j * 3 + 1) % 10]} waited until the {WORDS[(j * 7 + 2) % 10]} was lit"
        )
        out.append(f"Line {j}: " + ", and ".join([clause] * (1 + j % 3)) + ".")
    return out


def version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def probe() -> dict:
    import torch

    doc = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "packages": {
            d: version(d)
            for d in (
                "triton",
                "flash-attn",
                "transformers",
                "voxcpm",
                "nano-vllm-voxcpm",
                "xxhash",
                "librosa",
                "soundfile",
                "numpy",
                "safetensors",
                "pydantic",
                "pydantic-settings",
                "anyio",
                "pyarrow",
                "huggingface-hub",
                "mediamill",
            )
        },
        "importable": {
            m: importlib.util.find_spec(m) is not None
            for m in ("triton", "flash_attn", "nanovllm_voxcpm", "xxhash", "librosa")
        },
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        doc["gpu"] = {
            "name": props.name,
            "count": torch.cuda.device_count(),
            "memory_gib": round(props.total_memory / 2**30, 1),
            "capability": f"{props.major}.{props.minor}",
        }
        with contextlib.suppress(Exception):
            doc["nvidia_smi"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout.strip()
    from mediamill.engines.voxcpm import flash_attn_sdpa

    doc["attention"] = (
        flash_attn_sdpa.active() if flash_attn_sdpa._real_flash_attn_present() else "sdpa stand-in (flash-attn missing)"
    )
    return doc


class Memory:
    """Device-wide GPU memory in use (every process), sampled every 0.2 s; on CPU, this process's peak RSS."""

    def __init__(self, cuda: bool) -> None:
        self.cuda, self.peak, self._stop = cuda, 0.0, threading.Event()

    def used_gib(self) -> float:
        if not self.cuda:
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        import torch

        free, total = torch.cuda.mem_get_info(0)
        return (total - free) / 2**30

    def __enter__(self) -> Memory:
        self.peak = self.used_gib()

        def sample() -> None:
            while not self._stop.wait(0.2):
                self.peak = max(self.peak, self.used_gib())

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.used_gib())


def wav_seconds(path: Path) -> float:
    with wave.open(str(path)) as f:
        return f.getnframes() / f.getframerate()


# -- phases -------------------------------------------------------------------------------


def phase_attention(cuda: bool) -> dict:
    """Milliseconds per call: stand-in, explicit math, and flash-attn when installed."""
    import torch

    from mediamill.engines.voxcpm import flash_attn_sdpa as standin

    device, dtype = ("cuda", torch.bfloat16) if cuda else ("cpu", torch.float32)
    batch, heads, kv_heads, dim, block = (64, 16, 2, 128, 256) if cuda else (8, 4, 2, 32, 256)
    ctx = 768 if cuda else 300
    n_blocks = batch * -(-ctx // block)
    q = torch.randn(batch, 1, heads, dim, device=device, dtype=dtype)
    k_cache = torch.randn(n_blocks, block, kv_heads, dim, device=device, dtype=dtype)
    v_cache = torch.randn_like(k_cache)
    table = torch.arange(n_blocks, device=device, dtype=torch.int32).view(batch, -1)
    lens = torch.full((batch,), ctx, device=device, dtype=torch.int32)

    def explicit() -> torch.Tensor:
        keys = k_cache[table.long()].flatten(1, 2)[:, :ctx].repeat_interleave(heads // kv_heads, 2)
        values = v_cache[table.long()].flatten(1, 2)[:, :ctx].repeat_interleave(heads // kv_heads, 2)
        scores = torch.einsum("bqhd,bkhd->bhqk", q.float(), keys.float()) * dim**-0.5
        return torch.einsum("bhqk,bkhd->bqhd", scores.softmax(-1), values.float()).to(dtype)

    def timed(fn, reps: int = 20) -> float:
        fn()
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(reps):
            fn()
        if cuda:
            torch.cuda.synchronize()
        return round((time.perf_counter() - start) / reps * 1000, 3)

    calls = {
        "standin": lambda: standin.flash_attn_with_kvcache(
            q, k_cache, v_cache, cache_seqlens=lens, block_table=table, causal=True
        ),
        "explicit": explicit,
    }
    if standin._spec_is_real():
        import flash_attn

        calls["flash_attn"] = lambda: flash_attn.flash_attn_with_kvcache(
            q, k_cache, v_cache, cache_seqlens=lens, block_table=table, causal=True
        )
    decode = {name: timed(fn) for name, fn in calls.items()}
    lengths = [ctx // 2 + (i * 37) % (ctx // 2) for i in range(batch // 2)]
    cu = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], device=device, dtype=torch.int32)
    total = int(cu[-1])
    pq = torch.randn(total, heads, dim, device=device, dtype=dtype)
    pk = torch.randn(total, kv_heads, dim, device=device, dtype=dtype)

    def explicit_prefill() -> list:
        out = []
        for start, end in zip(cu[:-1].tolist(), cu[1:].tolist(), strict=True):
            qs, ks = pq[start:end].float(), pk[start:end].float().repeat_interleave(heads // kv_heads, 1)
            scores = torch.einsum("qhd,khd->hqk", qs, ks) * dim**-0.5
            causal = torch.ones(end - start, end - start, dtype=torch.bool, device=device).tril()
            out.append(torch.einsum("hqk,khd->qhd", scores.masked_fill(~causal, float("-inf")).softmax(-1), ks))
        return out

    prefill_calls = {
        "standin": lambda: standin.flash_attn_varlen_func(pq, pk, pk, cu, cu, max(lengths), max(lengths), causal=True),
        "explicit": explicit_prefill,
    }
    if "flash_attn" in calls:
        import flash_attn

        prefill_calls["flash_attn"] = lambda: flash_attn.flash_attn_varlen_func(
            pq, pk, pk, cu, cu, max(lengths), max(lengths), causal=True
        )
    prefill = {name: timed(fn, 5) for name, fn in prefill_calls.items()}
    shape = f"decode: {batch} seqs x {ctx} cached tokens, {heads}/{kv_heads} heads of {dim}, {dtype}; prefill: {batch // 2} seqs, {total} tokens"
    return {"shape": shape, "decode_ms": decode, "prefill_ms": prefill}


def phase_checkpoint(folder: Path, size: str) -> dict:
    from tests.helpers.tiny_voxcpm import build

    started = time.perf_counter()
    build(folder, stop="never", size=size)  # never stops: every engine runs each piece to its cap
    return {"size": size, "build_s": round(time.perf_counter() - started, 1)}


def phase_plain_loop(folder: Path, device: str, rows: list[str], cuda: bool) -> dict:
    import torch
    from voxcpm import VoxCPM

    from mediamill.backends.voxcpm_local import default_seed
    from mediamill.engines.voxcpm.pool import Replica, VoxcpmSettings
    from mediamill.verify import DurationCheck

    if not cuda:
        torch.set_num_threads(int(os.environ["VOXCPM_CPU_THREADS"]))  # as the pool does; tiny ops crawl on more here
    model = VoxCPM(
        voxcpm_model_path=str(folder), zipenhancer_model_path=None, enable_denoiser=False, optimize=False, device=device
    )
    cfg = VoxcpmSettings()
    bounds = Replica(device, model=model, settings_min_len_ratio=cfg.min_len_ratio)
    check = DurationCheck(cfg.min_ratio, cfg.max_ratio)

    def one(text: str) -> float:
        min_len, max_len = bounds.bounds(text, check)
        torch.manual_seed(default_seed(text))
        wav = model.generate(text=text, min_len=min_len, max_len=max_len, retry_badcase=False)
        return len(wav) / model.tts_model.sample_rate

    one(rows[0])  # warm kernels
    with Memory(cuda) as mem:
        started = time.perf_counter()
        audio = sum(one(t) for t in rows)
        wall = time.perf_counter() - started
    bounds.model = None  # free the GPU for the engines that follow
    model.tts_model = None
    if cuda:
        torch.cuda.empty_cache()
    return {
        "rows": len(rows),
        "audio_s": round(audio, 2),
        "wall_s": round(wall, 2),
        "audio_s_per_s": round(audio / wall, 3),
        "peak_gib": round(mem.peak, 2),
    }


def _manifest(folder: Path, name: str, rows: list[str]) -> Path:
    path = folder / f"{name}.csv"
    path.write_text("id,text\n" + "".join(f'r{i:05d},"{t}"\n' for i, t in enumerate(rows)), encoding="utf-8")
    return path


def phase_batched(
    folder: Path, work: Path, levels: list[int], factor: int, deadline: float, cuda: bool, dry: bool
) -> dict:
    from mediamill.backends.voxcpm_local import VoxcpmBackend
    from mediamill.engines.voxcpm.batch import BatchVoice, VoxcpmSettings, get_engine, piece_request
    from mediamill.engines.voxcpm.batch import engine as batch_engine
    from mediamill.plan import validate
    from mediamill.verify import DurationCheck

    cfg = VoxcpmSettings()
    result: dict = {
        "settings": {
            "max_num_seqs": cfg.batch_max_seqs,
            "timesteps": cfg.batch_timesteps,
            "memory": cfg.batch_memory,
            "eager": cfg.batch_eager,
        },
        "levels": {},
    }
    with Memory(cuda) as mem:
        started = time.perf_counter()
        engine = get_engine(cfg, folder)
        engine.start_sync()
        result["start_s"] = round(time.perf_counter() - started, 1)
    result["engine"] = engine.identity
    result["idle_peak_gib"] = round(mem.peak, 2)
    (server,) = engine.servers(10)
    if dry:
        server.pool.length_rule = lambda text, seed, sps: 10**6  # like the GPU checkpoint: run to the cap
    backend = VoxcpmBackend()
    check = DurationCheck(cfg.min_ratio, cfg.max_ratio)

    async def adapter(jobs: list, lanes: int, out: Path) -> float:
        pending = list(enumerate(jobs))

        async def lane() -> float:
            audio = 0.0
            while pending:
                n, job = pending.pop(0)
                slot = out / f"{n:05d}"
                slot.mkdir(parents=True)
                made = await backend.generate(job, slot, None)
                audio += wav_seconds(made.path)
            return audio

        return sum(await asyncio.gather(*(lane() for _ in range(lanes))))

    async def direct(requests: list, lanes: int) -> float:
        pending = list(requests)
        samples = 0

        async def lane() -> None:
            nonlocal samples
            while pending:
                r = pending.pop(0)
                async for chunk in server.pool.generate(
                    target_text=r.text, max_generate_length=r.max_len, seed=r.seed, cfg_value=r.cfg_value
                ):
                    samples += len(chunk)

        await asyncio.gather(*(lane() for _ in range(lanes)))
        return samples / engine.sample_rate

    previous = 0.0
    for level in levels:
        if time.monotonic() + previous * 2.5 > deadline:
            result["levels"][str(level)] = "skipped: out of time"
            continue
        began = time.monotonic()
        rows = texts(max(4, factor * level), salt=level * 1000)
        jobs = validate(_manifest(work, f"level{level}", rows), "voxcpm").jobs
        requests = [
            piece_request(
                engine, j.spec.params["text"], BatchVoice(), j.spec.params["seed"], check, timesteps=10, cfg_value=2.0
            )
            for j in jobs
        ]
        entry: dict = {"rows": len(rows), "steps": sum(r.max_len for r in requests)}
        for name in ("direct", "adapter"):
            with Memory(cuda) as mem:
                t0 = time.perf_counter()
                if name == "direct":
                    audio = engine._loop.submit(direct(requests, level)).result()
                else:
                    audio = asyncio.run(adapter(jobs, level, work / f"out{level}"))
                wall = time.perf_counter() - t0
            entry[name] = {
                "audio_s": round(audio, 2),
                "wall_s": round(wall, 2),
                "audio_s_per_s": round(audio / wall, 3),
                "peak_gib": round(mem.peak, 2),
            }
        entry["adapter_vs_direct"] = round(entry["adapter"]["audio_s_per_s"] / entry["direct"]["audio_s_per_s"], 3)
        result["levels"][str(level)] = entry
        previous = time.monotonic() - began
        print(f"level {level}: {json.dumps(entry)}", flush=True)
    result["busy_s"] = round(server.meter.busy_s, 2)
    engine.stop_sync()
    batch_engine._engines.clear()
    return result


def phase_plain_compiled(folder: Path, work: Path, rows: list[str], cuda: bool) -> dict:
    from concurrent.futures import ThreadPoolExecutor

    from mediamill.backends import get_backend
    from mediamill.engines.voxcpm import replicas as plain_replicas
    from mediamill.plan import validate

    os.environ["VOXCPM_OPTIMIZE"] = "true" if cuda else "false"
    os.environ["VOXCPM_REPLICA_PROCESSES"] = "auto" if cuda else "always"
    name = "voxcpm"
    backend = get_backend(name)
    pool = plain_replicas.replica_pool()
    started = time.perf_counter()
    with contextlib.ExitStack() as held:
        replicas = [held.enter_context(pool.replica()) for _ in range(pool.size)]  # load (and compile) untimed
    load_s = time.perf_counter() - started
    info = [getattr(r, "info", {}) for r in replicas]
    warm = validate(_manifest(work, "warm", texts(2, salt=99)), name).jobs
    jobs = validate(_manifest(work, "plain", rows), name).jobs

    def one(n_job) -> float:
        n, job = n_job
        slot = work / "plain-out" / f"{n:05d}"
        slot.mkdir(parents=True)
        return wav_seconds(backend.generate_sync(job, slot).path)

    with ThreadPoolExecutor(backend.default_concurrency) as threads:
        list(threads.map(one, [(10_000 + i, j) for i, j in enumerate(warm)]))  # compile's first shapes
        with Memory(cuda) as mem:
            t0 = time.perf_counter()
            audio = sum(threads.map(one, enumerate(jobs)))
            wall = time.perf_counter() - t0
    pool.close()
    return {
        "rows": len(rows),
        "replicas": pool.size,
        "load_and_compile_s": round(load_s, 1),
        "compiled": [i.get("compiled") for i in info],
        "device_given": [i.get("device") for i in info],
        "audio_s": round(audio, 2),
        "wall_s": round(wall, 2),
        "audio_s_per_s": round(audio / wall, 3),
        "peak_gib": round(mem.peak, 2),
    }


# -- the run -------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--size", choices=["full", "tiny"], default="full")
    parser.add_argument("--dry-run", action="store_true", help="--device cpu --size tiny, with the stand-ins")
    parser.add_argument("--levels", default="1,16,64,128", help="rows in flight for the batched phases")
    parser.add_argument("--rows-factor", type=int, default=2, help="rows per level = factor x level (at least 4)")
    parser.add_argument("--plain-rows", type=int, default=6)
    parser.add_argument("--budget-s", type=float, default=420, help="stop starting phases after this long")
    parser.add_argument("--skip", default="", help="comma list of phases to leave out")
    parser.add_argument("--out", help="JSON path (default: $OUT/voxcpm_batch.json, else next to this script)")
    args = parser.parse_args()
    if args.dry_run:
        args.device, args.size = "cpu", "tiny"
    cuda = args.device == "cuda"
    levels = [int(x) for x in args.levels.split(",") if x.strip()]
    out = Path(args.out) if args.out else Path(os.environ.get("OUT") or HERE / "results") / "voxcpm_batch.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    deadline = t0 + args.budget_s
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}

    from mediamill.engines.voxcpm import flash_attn_sdpa

    doc: dict = {"args": vars(args), "probe": probe(), "phases": {}}
    if cuda and not doc["probe"]["cuda_available"]:
        doc["error"] = "no CUDA GPU"
        out.write_text(json.dumps(doc, indent=2))
        raise SystemExit("no CUDA GPU: run with --dry-run on CPU")
    if not flash_attn_sdpa._real_flash_attn_present():
        flash_attn_sdpa.install()  # nano-vllm imports flash_attn; the stand-in serves where it is missing
    os.environ.update(
        VOXCPM_DEVICE="cuda:0" if cuda else "cpu",
        VOXCPM_CPU_THREADS="0" if cuda else "1",
        VOXCPM_ENGINE="nanovllm",
        VOXCPM_BATCH_IMPL="standin" if args.dry_run or not cuda else "nanovllm",
        VOXCPM_BATCH_MAX_SEQS=str(max(levels)),
        VOXCPM_BATCH_TIMESTEPS="10",
        VOXCPM_ATTENTION="auto" if flash_attn_sdpa._spec_is_real() else "sdpa",
        VOXCPM_MAX_RATIO="1",
        VOXCPM_MAX_TAKES="1",
        VOXCPM_KEEP_BAD="true",
        MEDIAMILL_LIMITS="local",
    )

    if not cuda:
        import torch

        torch.set_num_threads(1)  # this process's CPU work; tiny tensors crawl with more threads on small machines

    def run(name: str, fn, *a, need_s: float = 0.0) -> None:
        if name in skip:
            doc["phases"][name] = "skipped: --skip"
        elif time.monotonic() + need_s > deadline:
            doc["phases"][name] = "skipped: out of time"
        else:
            began = time.monotonic()
            try:
                doc["phases"][name] = fn(*a)
            except Exception as exc:  # noqa: BLE001 - record it and go on to the next phase
                doc["phases"][name] = {
                    "error": f"{type(exc).__name__}: {exc}",
                    "traceback": traceback.format_exc()[-4000:],
                }
            if isinstance(doc["phases"][name], dict):
                doc["phases"][name]["phase_s"] = round(time.monotonic() - began, 1)
        doc["elapsed_s"] = round(time.monotonic() - t0, 1)
        out.write_text(json.dumps(doc, indent=2))
        print(f"{name}: {json.dumps(doc['phases'][name])[:600]}", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        folder = work / "checkpoint"
        os.environ["VOXCPM_MODEL"] = str(folder)
        run("attention", phase_attention, cuda)
        run("checkpoint", phase_checkpoint, folder, args.size)
        if not (folder / "config.json").is_file():
            raise SystemExit("no checkpoint; see the JSON")
        plain_rows = texts(args.plain_rows, salt=7)
        run("plain_loop", phase_plain_loop, folder, "cuda:0" if cuda else "cpu", plain_rows, cuda, need_s=30)
        run("batched", phase_batched, folder, work, levels, args.rows_factor, deadline, cuda, not cuda, need_s=90)
        run("plain_engine_compiled", phase_plain_compiled, folder, work, plain_rows, cuda, need_s=120 if cuda else 10)
    summary: dict = {}
    loop = doc["phases"].get("plain_loop")
    if isinstance(loop, dict) and "audio_s_per_s" in loop:
        summary["plain_loop_audio_s_per_s"] = loop["audio_s_per_s"]
    compiled = doc["phases"].get("plain_engine_compiled")
    if isinstance(compiled, dict) and "audio_s_per_s" in compiled:
        summary["plain_engine_compiled_audio_s_per_s"] = compiled["audio_s_per_s"]
    batched = doc["phases"].get("batched")
    if isinstance(batched, dict):
        for level, entry in batched.get("levels", {}).items():
            if isinstance(entry, dict):
                summary[f"batched_{level}"] = {
                    "adapter": entry["adapter"]["audio_s_per_s"],
                    "direct": entry["direct"]["audio_s_per_s"],
                    "adapter_vs_direct": entry["adapter_vs_direct"],
                }
    doc["summary"] = summary
    doc["elapsed_s"] = round(time.monotonic() - t0, 1)
    out.write_text(json.dumps(doc, indent=2))
    print(json.dumps({"summary": summary, "json": str(out)}, indent=2))


if __name__ == "__main__":
    main()
