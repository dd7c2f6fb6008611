"""Pixazo: hosted VoxCPM2 text-to-speech and voice cloning.

Both calls are synchronous: the response carries the URL of a WAV file.
Settings: ``PIXAZO_API_KEY`` (required), ``PIXAZO_BASE_URL`` (default the
public gateway), ``PIXAZO_TIMEOUT_S``. Pixazo reports no cost; the price
table (``MEDIAMILL_PRICES``, key ``pixazo`` or ``pixazo:voxcpm2``) prices rows,
and is 0 by default since VoxCPM2 is a free model there.
"""

from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path
from typing import Any

import anyio
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from ..config import from_environment
from ..manifest import CloneRow, Row, SpeechRow, is_url
from ..store import Journal
from .base import Backend, BackendError, CostEstimate, Generated, Job, JobSpec, PermanentError
from .hosted import (
    CreditBreaker,
    LoopClients,
    Price,
    ServiceError,
    download,
    error_text,
    is_http_url,
    json_object,
    lookup_price,
    post,
    priced,
    retry_wait,
)

MODEL = "voxcpm2"
CFG_RANGE = (1.0, 3.0)
STEPS_RANGE = (4, 30)
RATE_LIMIT_RETRIES = 5
# Cloudflare in front of Pixazo's file host refuses some library user agents.
USER_AGENT = "Mozilla/5.0 (compatible; mediamill/0.1)"


class PixazoSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PIXAZO_", extra="ignore")

    api_key: SecretStr | None = None
    base_url: str = "https://gateway.pixazo.ai"
    timeout_s: float = Field(300.0, gt=0, description="Longest wait for one API answer, body included.")


class PixazoError(ServiceError):
    pass


class PixazoClient:
    """The two VoxCPM2 calls, with Pixazo's status codes mapped to mediamill's errors."""

    def __init__(self, settings: PixazoSettings, clients: LoopClients, breaker: CreditBreaker):
        self.settings = settings
        self.clients = clients
        self.breaker = breaker

    def _headers(self) -> dict[str, str]:
        if self.settings.api_key is None:
            raise PermanentError("PIXAZO_API_KEY is not set")
        return {
            "Ocp-Apim-Subscription-Key": self.settings.api_key.get_secret_value(),
            "Cache-Control": "no-cache",
        }

    async def call(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        self.breaker.check()
        url = f"{self.settings.base_url.rstrip('/')}/voxcpm/v1/{operation}"
        where = f"pixazo {operation}"
        for attempt in range(RATE_LIMIT_RETRIES + 1):
            response = await post(
                self.clients,
                url,
                where,
                setting="PIXAZO_BASE_URL",
                timeout=self.settings.timeout_s,
                headers=self._headers(),
                json=body,
            )
            status = response.status_code
            if status == 429 and attempt < RATE_LIMIT_RETRIES:
                await asyncio.sleep(retry_wait(response, attempt, base=2.0))
                continue
            if status == 200:
                return json_object(response, where)
            message = error_text(response)
            if status == 400:
                raise PermanentError(f"pixazo rejected the request: {message}")
            if status in (401, 403):
                raise PermanentError(f"pixazo refused the API key (HTTP {status}): check PIXAZO_API_KEY")
            if status == 402:
                text = "pixazo account is out of credit (HTTP 402): top up, then rerun"
                self.breaker.trip(text)
                raise PermanentError(text)
            if status == 429:
                raise PixazoError(f"pixazo rate limit persisted after {RATE_LIMIT_RETRIES} waits")
            raise PixazoError(f"pixazo {operation} failed: HTTP {status} {message}")
        raise AssertionError("unreachable")


def output_url(doc: dict[str, Any], operation: str = "call") -> str:
    for key in ("output", "url", "audio_url"):
        value = doc.get(key)
        if is_http_url(value):
            return value
    shown = {k: str(doc[k])[:60] for k in list(doc)[:5]}
    raise PixazoError(f"pixazo {operation}: answered without an http(s) output URL ({shown or 'empty object'})")


def _seconds(value: Any) -> float | None:
    """A duration the service reported, if it is a sane number (not a bool, NaN or negative)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
        return None
    return float(value)


class PixazoBackend(Backend):
    name = "pixazo"
    kinds = frozenset({"tts", "clone"})
    default_concurrency = 4
    limit_scope = "fleet"
    unused_columns = frozenset({"seed"})
    speed_as_tempo = True  # the service has no rate control
    defaults = {"pixazo": Price(per_request=0.0)}

    def __init__(self) -> None:
        self.clients = LoopClients(headers={"User-Agent": USER_AGENT})
        self.breaker = CreditBreaker()

    async def close(self) -> None:
        await self.clients.close()

    def client(self) -> PixazoClient:
        return PixazoClient(from_environment(PixazoSettings, "PIXAZO_"), self.clients, self.breaker)

    def check(self, row: Row, base_dir: Path) -> list[tuple[str | None, str]]:
        assert isinstance(row, SpeechRow)
        problems = self.check_unused(row)
        if row.model and row.model != MODEL:
            problems.append(("model", f"pixazo offers only '{MODEL}'"))
        if row.voice:
            problems.append(("voice", "pixazo has no named voices: describe one in 'style', or clone with 'reference'"))
        if row.cfg_value is not None and not CFG_RANGE[0] <= row.cfg_value <= CFG_RANGE[1]:
            problems.append(("cfg_value", f"pixazo takes cfg_value from {CFG_RANGE[0]} to {CFG_RANGE[1]}"))
        if row.inference_timesteps is not None and not STEPS_RANGE[0] <= row.inference_timesteps <= STEPS_RANGE[1]:
            problems.append(("inference_timesteps", f"pixazo takes {STEPS_RANGE[0]} to {STEPS_RANGE[1]} steps"))
        if isinstance(row, CloneRow) and row.reference and not is_url(row.reference):
            problems.append(("reference", "pixazo fetches the reference itself: give a public http(s) URL"))
        if row.options:
            problems.append(("options", "pixazo takes no extra options"))
        return problems

    def estimate(self, texts: list[str], speech_s: float) -> CostEstimate:
        requests = len(texts)  # one request per row
        free = CostEstimate(self.name, 0.0, f"{requests} requests, not priced in MEDIAMILL_PRICES (free by default)")
        return priced(self.name, lookup_price(self.name, MODEL, {}), requests, sum(map(len, texts)), free)

    def spec(self, row: Row, base_dir: Path) -> JobSpec:
        assert isinstance(row, SpeechRow)
        text = f"({row.style}) {row.text}" if row.style else row.text
        params: dict[str, Any] = {
            "text": text,
            "cfg_value": row.cfg_value or 2.0,
            "dit_steps": row.inference_timesteps or 10,
        }
        if isinstance(row, CloneRow):
            params = {"text": text, "reference_audio_url": row.reference, "dit_steps": params["dit_steps"]}
            if row.reference_text:
                params["prompt_text"] = row.reference_text
            if row.cfg_value is not None:
                params["cfg_value"] = row.cfg_value
        return JobSpec(model=MODEL, params=params)

    async def generate(self, job: Job, workdir: Path, journal: Journal) -> Generated:
        operation = "voice-cloning" if job.kind == "clone" else "text-to-speech"
        record = journal.read()
        resumed = bool(record and record.get("output_url"))
        if resumed:
            assert record is not None  # resumed says so
            url, elapsed = record["output_url"], record.get("elapsed_s")  # generated before a crash: fetch it
        else:
            started = time.perf_counter()
            doc = await self.client().call(operation, dict(job.spec.params))
            url = output_url(doc, operation)
            elapsed = _seconds(doc.get("elapsed_s"))
            elapsed = elapsed if elapsed is not None else round(time.perf_counter() - started, 3)
            note = {"backend": self.name, "output_url": url, "elapsed_s": elapsed, "at": time.time()}
            await anyio.to_thread.run_sync(journal.write, note)
        try:
            path = await download(self.clients.get(), url, workdir / "speech.wav", slot=self.clients.slot())
        except PermanentError as exc:
            journal.clear()
            if resumed:  # the noted file is gone: generate anew on the next attempt
                raise BackendError(f"{exc} (file noted by an earlier run)") from None
            raise
        price = lookup_price(self.name, MODEL, self.defaults)
        return Generated(
            path=path,
            compute_s=float(elapsed),  # type: ignore[arg-type]  # a journal note always has elapsed_s
            cost_usd=price.cost(len(job.spec.params["text"])) if price else None,
            cost_source="price table" if price else None,
        )
