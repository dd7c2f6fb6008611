"""VoxCPM run locally: on the GPUs of this machine (one model replica each), or on CPU.

Rows:

- ``tts``: plain speech. ``style`` is VoxCPM2 voice design ("a warm, older
  narrator"); ``voice`` may name a voice from the registry, which then
  voices the row as in ``clone``.
- ``clone``: speech in the voice of a reference recording. With a transcript
  (``reference_text``, or the registered voice's ``.txt``) the model continues
  from the recording (prompt continuation, closest to the speaker); without
  one, VoxCPM2 clones the timbre from the recording alone (reference mode).

Options: ``normalize`` and ``denoise`` (booleans, VoxCPM's text normaliser and
reference denoiser). Columns ``cfg_value``, ``inference_timesteps`` and
``seed`` map to VoxCPM's arguments; the seed seeds torch before each call.
Long text is read in pieces (``longform``); implausible pieces are retaken.
Settings: ``VoxcpmSettings`` (env prefix ``VOXCPM_``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..engines.reading import BadCaseError, hearing, read_aloud, recipe
from ..engines.voxcpm import (
    INSTALL_HINT,
    Knobs,
    Voicing,
    VoxcpmSettings,
    architecture,
    current_settings,
    default_seed,  # noqa: F401 - the backend's seed rule, where its callers have always found it
    installed,
    model_identity,
    replica_pool,
    seed_for,
)
from ..engines.voxcpm.batch import chosen_engine, engine_capacity, engine_identity
from ..manifest import CloneRow, Row, SpeechRow, TtsRow, is_url, resolve_input
from ..verify.takes import join
from ..voices import find_voice
from .base import CostEstimate, Generated, Job, JobSpec, PermanentError, ThreadedBackend
from .voxcpm_batched import batch_problems, generate_batched

BOOL_OPTIONS = ("normalize", "denoise")
# Seconds of speech per second of device time, for estimates before a run: VoxCPM2 on one H200 at batch
# size 1 (mediamill's benchmark). A slower GPU or the CPU takes longer, so estimates are lower bounds.
AUDIO_S_PER_GPU_S = 1.45
DEFAULT_CFG = 2.0
DEFAULT_STEPS = 10


class VoxcpmBackend(ThreadedBackend):
    hardware = "gpu"
    name = "voxcpm"
    kinds = frozenset({"tts", "clone"})
    speed_as_tempo = True  # VoxCPM has no rate control (style can still ask for a pace)

    @property
    def settings(self) -> VoxcpmSettings:
        return current_settings()  # read for every row: a long-lived worker sees changed settings

    def engine(self, cfg: VoxcpmSettings | None = None) -> str:
        """``plain`` (the model pool) or ``nanovllm`` (the batched engine), as VOXCPM_ENGINE decides here."""
        return chosen_engine(cfg or self.settings)

    @property
    def default_concurrency(self) -> int:  # type: ignore[override]  # the base's constant, computed from settings
        cfg = self.settings
        if self.engine(cfg) == "plain":  # one row per replica: a replica serves one generation at a time
            return replica_pool(cfg).size
        return engine_capacity(cfg)  # every row in flight at once: the engine batches their pieces

    def estimate(self, texts: list[str], speech_s: float) -> CostEstimate:
        rate = self.settings.price_per_hour
        gpu_s = speech_s / AUDIO_S_PER_GPU_S
        return CostEstimate(
            self.name,
            round(gpu_s / 3600 * rate, 4),
            f"{gpu_s / 3600:.2f} device-hours (at {AUDIO_S_PER_GPU_S} s of audio per GPU second, "
            f"one H200) x VOXCPM_PRICE_PER_HOUR ${rate:g}",
        )

    # -- checks and keys -------------------------------------------------
    def _voicing(self, row: SpeechRow, base_dir: Path) -> tuple[Path | None, str | None]:
        """The reference recording and its transcript, if the row has a voice to clone."""
        if isinstance(row, CloneRow) and row.reference:
            return resolve_input(row.reference, base_dir), row.reference_text
        if row.voice:
            voice = find_voice(row.voice, base_dir)
            if voice is not None:
                return voice.audio, voice.transcript
        return None, None

    def check(self, row: Row, base_dir: Path) -> list[tuple[str | None, str]]:
        assert isinstance(row, SpeechRow)
        problems = self.check_unused(row)
        if not installed():
            return [("backend", INSTALL_HINT)]
        arch = architecture(row.model or self.settings.model)
        if row.model and not Path(row.model).expanduser().is_dir() and "/" not in row.model:
            problems.append(
                ("model", f"'{row.model}' is neither a checkpoint folder nor a hub id like openbmb/VoxCPM2")
            )
        if isinstance(row, TtsRow) and row.voice and find_voice(row.voice, base_dir) is None:
            problems.append(("voice", f"unknown voice '{row.voice}': add it with `mediamill voices add`"))
        if isinstance(row, CloneRow) and row.reference and is_url(row.reference):
            problems.append(("reference", "local VoxCPM needs a reference file, not a URL"))
        reference, transcript = self._voicing(row, base_dir)
        if arch == "voxcpm" and reference is not None and not transcript:
            problems.append(("reference_text", "VoxCPM 1.x clones only with a transcript of the reference"))
        if arch == "voxcpm" and row.style:
            problems.append(("style", "voice design needs VoxCPM2"))
        for key, value in row.options.items():
            if key not in BOOL_OPTIONS:
                problems.append(("options", f"unknown voxcpm option '{key}' (known: {', '.join(BOOL_OPTIONS)})"))
            elif not isinstance(value, bool):
                problems.append(("options", f"voxcpm option '{key}' must be true or false"))
        if row.options.get("denoise") and not self.settings.denoiser:
            problems.append(("options", "denoise needs a denoiser model: set VOXCPM_DENOISER"))
        cfg = self.settings
        if self.engine(cfg) != "plain":
            problems += batch_problems(cfg, row)
        return problems

    def spec(self, row: Row, base_dir: Path) -> JobSpec:
        assert isinstance(row, SpeechRow)
        cfg = self.settings
        reference, transcript = self._voicing(row, base_dir)
        params: dict[str, Any] = {
            "text": row.text,
            "style": row.style,
            "prompt_text": transcript if reference is not None else None,
            "cfg_value": row.cfg_value if row.cfg_value is not None else DEFAULT_CFG,
            "inference_timesteps": row.inference_timesteps or DEFAULT_STEPS,
            "seed": seed_for(row.text, row.seed),
            "normalize": bool(row.options.get("normalize", False)),
            "denoise": bool(row.options.get("denoise", False)),
            # How the text is cut and joined changes the audio, so it is part of the key.
            "max_chars": cfg.max_chars,
            "pauses": [cfg.piece_pause_s, cfg.paragraph_pause_s],
        }
        if params["denoise"] and cfg.denoiser:  # the denoiser's weights decide the cleaned reference
            params["denoiser"] = model_identity(cfg.denoiser, cfg.local_files_only)
        if self.engine(cfg) != "plain":
            # Another engine makes other audio for the same seed. Plain rows keep their keys (existing stores).
            params["engine"] = engine_identity(cfg)
        inputs = {"reference": reference} if reference is not None else {}
        return JobSpec(model=model_identity(row.model or cfg.model, cfg.local_files_only), params=params, inputs=inputs)

    # -- generation ------------------------------------------------------
    async def generate(self, job: Job, workdir: Path, journal: Any) -> Generated:
        cfg = self.settings
        if self.engine(cfg) != "plain":
            return await generate_batched(job, workdir, cfg)
        return await super().generate(job, workdir, journal)

    def generate_sync(self, job: Job, workdir: Path) -> Generated:
        cfg = self.settings
        p = job.spec.params
        pool = replica_pool(cfg if not job.row.model else cfg.model_copy(update={"model": job.row.model}))
        voicing = Voicing.of(job.spec.inputs.get("reference"), p["prompt_text"], p["style"])
        knobs = Knobs(p["cfg_value"], p["inference_timesteps"], p["normalize"], p["denoise"])
        plan = recipe(p["text"], cfg, p["seed"], job.take)
        out = workdir / "speech.wav"
        waited = time.perf_counter()
        with pool.replica() as replica:
            started = time.perf_counter()
            try:
                reading = read_aloud(
                    plan.pieces,
                    # Each retake of a piece gets its own seed; the first take of every piece uses the row's.
                    lambda text, attempt: replica.take(text, voicing, knobs, plan.seed_of(attempt), plan.check),
                    out,
                    plan.check,
                    max_takes=cfg.max_takes,
                    keep_bad=cfg.keep_bad,
                    hear=hearing(job.check_piece, workdir),  # each piece is checked as it is made
                )
            except BadCaseError as exc:
                raise PermanentError(f"implausible speech: {exc}") from None
            compute_s = time.perf_counter() - started
            device = replica.device
        price = cfg.price_per_hour
        return Generated(
            path=out,
            compute_s=compute_s,
            queue_s=started - waited,
            cost_usd=round(compute_s / 3600.0 * price, 6),
            cost_source="gpu time" if device.startswith("cuda") else "cpu time",
            attempts_inside=reading.generations,
            extra={
                "device": device,
                "pieces": reading.pieces,
                "regenerated": reading.regenerated,
                "check": join(reading.checks) if reading.checks else None,
                "kept_bad": reading.kept_bad,
            },
        )
