"""VoxCPM through mediamill vs ``VoxCPM.generate`` called in a plain loop, on the same rows.

Direct: load the model once, then for each row seed torch, call
``generate`` with the same length bounds mediamill uses, and write a WAV.
mediamill: the produce flow with the ``voxcpm`` backend on a manifest of the
same rows (fresh store, model loaded by the pool), which adds planning,
Prefect task runs, the store, stitching and the results table.

Without ``--model`` it builds the tiny random checkpoint the tests use, so
the figure is mediamill's per-row overhead, not the model's speed. On a GPU
machine, ``--device cuda --size full`` builds VoxCPM2's real architecture with
random weights (they take as long per step as trained ones; the stop head is
set to stop as soon as the length bounds allow, so both sides make the same
audio), or ``--model DIR`` loads a checkpoint: audio seconds per wall second
for the pool (one replica per GPU) against the plain loop on one GPU.

``--no-flow`` leaves Prefect and ffmpeg out (for GPU machines that have
neither): mediamill's side is then the ``voxcpm`` backend itself, planning the
manifest and generating every row through the model pool (long-form reading,
length checks, WAV writing), one thread per replica.

Usage: python bench/voxcpm_speed.py [--rows 200] [--device cpu|cuda] [--model DIR | --size tiny|full] [--no-flow]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import wave
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import Timer, prefect_api, save  # noqa: E402

WORDS = ("lamp", "street", "ladder", "flame", "evening", "harbour", "window", "rain", "bell", "market")


def lines(n: int) -> list[str]:
    return [
        f"Line {i}: the {WORDS[i % 10]} and the {WORDS[(i * 3 + 1) % 10]} waited until the {WORDS[(i * 7 + 2) % 10]} was lit."
        for i in range(n)
    ]


def direct(model_dir: str, device: str, texts: list[str], out: Path) -> float:
    """The plain loop a user would write; returns seconds of audio made."""
    import torch
    from voxcpm import VoxCPM

    from mediamill.backends.voxcpm_local import default_seed
    from mediamill.engines.voxcpm.pool import Replica, VoxcpmSettings, to_pcm16
    from mediamill.verify import DurationCheck

    model = VoxCPM(
        voxcpm_model_path=model_dir, zipenhancer_model_path=None, enable_denoiser=False, optimize=False, device=device
    )
    cfg = VoxcpmSettings()
    bounds = Replica(device, model=model, settings_min_len_ratio=cfg.min_len_ratio)
    check = DurationCheck(cfg.min_ratio, cfg.max_ratio)
    audio = 0.0
    for n, text in enumerate(texts):
        min_len, max_len = bounds.bounds(text, check)  # the same lengths mediamill asks for
        torch.manual_seed(default_seed(text))
        wav = model.generate(text=text, min_len=min_len, max_len=max_len, retry_badcase=False)
        with wave.open(str(out / f"{n}.wav"), "wb") as f:
            f.setnchannels(1)
            f.setsampwidth(2)
            f.setframerate(model.tts_model.sample_rate)
            f.writeframes(to_pcm16(wav))
        audio += len(wav) / model.tts_model.sample_rate
    return audio


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", help="checkpoint folder (default: build the tiny test checkpoint)")
    parser.add_argument(
        "--size", choices=["tiny", "full"], default="tiny", help="random checkpoint to build without --model"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--no-flow", action="store_true", help="time the backend and its pool without Prefect")
    parser.add_argument("--loop-again", action="store_true", help="time the plain loop again after mediamill")
    args = parser.parse_args()

    import torch

    from mediamill.engines.voxcpm import replicas as voxcpm_replicas

    torch.set_num_threads(args.threads)
    texts = lines(args.rows)
    with contextlib.nullcontext() if args.no_flow else prefect_api(), tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model
        if model_dir is None:
            from tests.helpers.tiny_voxcpm import build

            with Timer() as t_build:
                model_dir = str(build(Path(tmp, "random"), size=args.size))
            print(f"built the {args.size} random checkpoint in {t_build.seconds:.1f} s", flush=True)
        # Random weights say nothing a recogniser could hear; checking takes is measured in bench/verify.py.
        os.environ.update(
            VOXCPM_MODEL=model_dir,
            VOXCPM_DEVICE=args.device,
            VOXCPM_CPU_THREADS=str(args.threads),
            MEDIAMILL_VERIFY="off",
        )
        manifest = Path(tmp, "bench.csv")
        manifest.write_text("id,text\n" + "".join(f'r{i:05d},"{t}"\n' for i, t in enumerate(texts)))
        Path(tmp, "direct").mkdir()
        first_device = "cuda:0" if args.device.startswith("cuda") else args.device
        direct(model_dir, first_device, texts[:5], Path(tmp, "direct"))  # warm caches and kernels for both
        with Timer() as t_direct:
            audio = direct(model_dir, first_device, texts, Path(tmp, "direct"))
        print(f"plain loop: {audio:.1f} s of audio in {t_direct.seconds:.2f} s", flush=True)
        voxcpm_replicas._pools.clear()  # mediamill loads its own replicas, as a fresh worker would
        if args.no_flow:
            pool = voxcpm_replicas.replica_pool()
            with contextlib.ExitStack() as held:  # load every replica first: the plain loop's load is untimed too
                for _ in range(pool.size):
                    held.enter_context(pool.replica())
            with Timer() as t_mm:
                mm_audio, devices = backend_only(manifest, Path(tmp, "mm"))
            rows_s = t_mm.seconds
            assert abs(mm_audio - audio) < 0.01 * audio, (mm_audio, audio)  # the same rows, the same audio
        else:
            from mediamill.flows import produce

            with Timer() as t_mm:
                state = asyncio.run(produce(str(manifest), backend="voxcpm", outputs=f"{tmp}/mm", return_state=True))
            assert state.is_completed(), state.message
            summary = json.loads(Path(tmp, "mm", "bench", "summary.json").read_text())
            rows_s = summary["phases_s"]["plan"] + summary["phases_s"]["generate"]
            import pyarrow.parquet as pq

            devices = sorted(
                {r["device"] for r in pq.read_table(Path(tmp, "mm", "bench", "results.parquet")).to_pylist()}
            )
        replicas = next(iter(voxcpm_replicas._pools.values())).size
        direct_after = None
        if args.loop_again:  # the plain loop once more, after mediamill: shows drift between the two timings
            voxcpm_replicas._pools.clear()
            with Timer() as t_again:
                direct(model_dir, first_device, texts, Path(tmp, "direct"))
            direct_after = round(t_again.seconds, 2)
    doc = {
        "rows": args.rows,
        "device": args.device,
        "replicas": replicas,
        "devices_used": devices,
        "model": f"{args.size} random checkpoint" if args.model is None else Path(args.model).name,
        "gpu": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else None,
        "mediamill_side": "voxcpm backend and pool, no Prefect" if args.no_flow else "produce flow",
        "audio_s": round(audio, 1),
        "direct_s": round(t_direct.seconds, 2),
        "direct_audio_s_per_s": round(audio / t_direct.seconds, 2),
        "direct_again_s": direct_after,
        "rows_phase_s": round(rows_s, 2),
        "rows_phase_audio_s_per_s": round(audio / rows_s, 2),
        "rows_phase_ratio_vs_direct": round(rows_s / t_direct.seconds, 2),
        "overhead_ms_per_row": round((rows_s - t_direct.seconds) / args.rows * 1000, 1),
        "mediamill_s": round(t_mm.seconds, 2),
        "mediamill_ratio_vs_direct": round(t_mm.seconds / t_direct.seconds, 2),
    }
    save(f"voxcpm_speed_{args.device.replace(':', '')}_{args.size}{'_noflow' if args.no_flow else ''}", doc)


def backend_only(manifest: Path, out: Path) -> tuple[float, list[str]]:
    """Plan the manifest and generate every row through the ``voxcpm`` backend, one thread per replica."""
    from concurrent.futures import ThreadPoolExecutor

    from mediamill.backends import get_backend
    from mediamill.plan import validate

    name = "mediamill.backends.voxcpm_local:VoxcpmBackend"  # by path: works where mediamill is only on sys.path
    backend = get_backend(name)
    jobs = validate(manifest, name).jobs

    def one(n_job: tuple[int, object]) -> tuple[float, str]:
        n, job = n_job
        folder = out / f"{n:05d}"
        folder.mkdir(parents=True)
        made = backend.generate_sync(job, folder)
        with wave.open(str(made.path)) as f:
            return f.getnframes() / f.getframerate(), made.extra["device"]

    with ThreadPoolExecutor(backend.default_concurrency) as workers:
        made = list(workers.map(one, enumerate(jobs)))
    return sum(a for a, _ in made), sorted({d for _, d in made})


if __name__ == "__main__":
    main()
