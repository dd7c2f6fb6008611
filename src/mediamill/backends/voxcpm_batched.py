"""Rows of the ``voxcpm`` backend on the batched engine (``engines.voxcpm.batch``): its extra checks and one row.

``VoxcpmBackend`` (``voxcpm_local``) keeps its rows, checks, voices, seeds,
long-form splitting, bad-case rules and results whichever engine runs them;
with ``VOXCPM_ENGINE`` at ``nanovllm`` (or ``auto`` where it can run: CUDA,
nano-vllm-voxcpm and triton importable, an attention kernel available) it
hands its rows to the functions here. On the batched engine:

- ``default_concurrency`` is what the engine holds (``max_num_seqs`` x GPUs x
  step servers), so mediamill keeps that many rows in flight, and each row's
  ``generate`` submits all its pieces at once (``reading.read_row``);
- the content key gains ``engine`` (``nano-vllm-voxcpm <version> (<attention>)``):
  the same seed makes different audio on another engine. Plain rows keep their
  keys, so existing stores stay valid;
- a voice is VAE latents: a registry voice or a clone reference with a
  transcript is a prompt (``prompt_latents`` + ``prompt_text``), one without is
  a VoxCPM2 reference (``ref_audio_latents``); ``denoise`` cleans the recording
  with ZipEnhancer first (``VOXCPM_DENOISER``), ``normalize`` runs voxcpm's
  text normaliser before the text reaches the engine;
- rows must use a served ``inference_timesteps`` (``VOXCPM_BATCH_TIMESTEPS``):
  anything else is a problem reported at planning, not a failure mid-run;
- ``compute_s`` is the row's share of GPU time (``meter``), ``cost_usd``
  that share x ``VOXCPM_PRICE_PER_HOUR``; ``device`` lists the GPUs its pieces
  ran on; ``queue_s`` is the wait for its first slot.
"""

from __future__ import annotations

from pathlib import Path

import anyio

from ..engines.reading import BadCaseError, hearing, recipe
from ..engines.voxcpm import VoxcpmSettings
from ..engines.voxcpm.batch import (
    BatchEngine,
    BatchVoice,
    WavSink,
    denoiser,
    engine_missing,
    get_engine,
    model_folder,
    read_row,
    requests_of,
    served_timesteps,
    text_normalizer,
)
from ..manifest import Row, SpeechRow
from ..verify.takes import join
from .base import Generated, Job, PermanentError


def batch_problems(cfg: VoxcpmSettings, row: Row) -> list[tuple[str | None, str]]:
    """What the batched engine adds to a row's checks: it runs here, one model, steps it serves."""
    assert isinstance(row, SpeechRow)
    missing = engine_missing(cfg)
    if missing:
        return [("backend", missing)]
    problems: list[tuple[str | None, str]] = []
    if row.model and row.model != cfg.model:
        # One model per process: a second engine would need a second share of every GPU.
        problems.append(
            (
                "model",
                "the batched engine serves VOXCPM_MODEL only; run rows of other models with "
                "VOXCPM_ENGINE=plain or in another worker",
            )
        )
    steps = row.inference_timesteps or 10
    try:
        served = served_timesteps(cfg)
    except PermanentError as exc:
        return [*problems, ("inference_timesteps", str(exc))]
    if steps not in served:
        problems.append(
            (
                "inference_timesteps",
                f"the batched engine serves {', '.join(map(str, served))} steps, "
                f"not {steps}: add it to VOXCPM_BATCH_TIMESTEPS or set VOXCPM_ENGINE=plain",
            )
        )
    return problems


async def generate_batched(job: Job, workdir: Path, cfg: VoxcpmSettings) -> Generated:
    """One row on the batched engine: every piece submitted at once, each judged (and heard) and retaken."""
    p = job.spec.params
    source = job.row.model or cfg.model
    folder = await anyio.to_thread.run_sync(model_folder, source, cfg.local_files_only)
    engine = get_engine(cfg, folder)
    await engine.start()  # once per process: loading and CUDA-graph capture take minutes
    voice = await _voice(engine, job, cfg)
    normalize = await anyio.to_thread.run_sync(text_normalizer) if p["normalize"] else None
    plan = recipe(p["text"], cfg, p["seed"], job.take)
    pieces, check = plan.pieces, plan.check
    request_for = requests_of(
        engine, plan, voice, timesteps=p["inference_timesteps"], cfg_value=p["cfg_value"], normalize=normalize
    )

    out = workdir / "speech.wav"
    sink = WavSink(out)
    try:
        reading = await read_row(
            engine,
            pieces,
            request_for,
            check,
            sink,
            cfg.max_takes,
            cfg.keep_bad,
            hear=hearing(job.check_piece, workdir),
        )
    except BadCaseError as exc:
        raise PermanentError(f"implausible speech: {exc}") from None
    finally:
        sink.close()
    devices = sorted(reading.devices)
    return Generated(
        path=out,
        compute_s=round(reading.compute_s, 6),
        queue_s=reading.queue_s,
        cost_usd=round(reading.compute_s / 3600.0 * cfg.price_per_hour, 6),
        cost_source="gpu time" if any(d.startswith("cuda") for d in devices) else "cpu time",
        attempts_inside=reading.generations,
        extra={
            "device": ",".join(devices),
            "pieces": reading.pieces,
            "regenerated": reading.regenerated,
            "kept_bad": reading.kept_bad,
            "engine": engine.identity,
            "check": join(reading.checks) if reading.checks else None,
        },
    )


async def _voice(engine: BatchEngine, job: Job, cfg: VoxcpmSettings) -> BatchVoice:
    p = job.spec.params
    reference = job.spec.inputs.get("reference")
    if reference is None:
        return BatchVoice(style=p["style"])
    clean = await anyio.to_thread.run_sync(denoiser, cfg.denoiser) if p["denoise"] and cfg.denoiser else None
    latents = await engine.latents(reference, clean)
    if p["prompt_text"]:
        return BatchVoice(style=p["style"], prompt_latents=latents, prompt_text=p["prompt_text"])
    return BatchVoice(style=p["style"], ref_latents=latents)
