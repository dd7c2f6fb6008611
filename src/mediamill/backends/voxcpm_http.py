"""VoxCPM through any OpenAI-style speech server (``/v1/audio/speech``), ``mediamill serve`` included.

Settings (env prefix ``VOXCPM_HTTP_``): ``URL`` (required, e.g.
http://gpu-box:8000), ``API_KEY`` (sent as a bearer token), ``MODEL`` (the
request's model field), ``TIMEOUT_S``, ``CONCURRENCY``, ``MAX_CHARS``.

Long text is split here, one request per piece, so each piece is judged
and retaken like local generation. Voices: a ``voice`` names one the server
knows; a clone row's reference recording is uploaded once to the server's
registry (POST ``/v1/voices``) under a name made from its bytes, then used
by name. Rows' ``style`` is sent as ``instructions``.
"""

from __future__ import annotations

import hashlib
import io
import threading
import time
import wave
from pathlib import Path
from typing import Any

import httpx
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from ..config import from_environment
from ..core.hashing import file_digest
from ..core.waits import doubling
from ..engines.reading import BadCaseError, Take, hearing, pieces_of, read_aloud, take_seed
from ..manifest import CloneRow, Row, SpeechRow, is_url, resolve_input
from ..verify.duration import DurationCheck
from ..verify.takes import join
from .base import BackendError, CostEstimate, Generated, Job, JobSpec, PermanentError, ThreadedBackend
from .hosted import ServiceError, error_text, lookup_price, max_download_bytes, priced, request_sync, retry_wait

RETRY_STATUSES = {408, 429, 500, 502, 503, 504}


class VoxcpmHttpSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VOXCPM_HTTP_", extra="ignore")

    url: str | None = None
    api_key: SecretStr | None = None
    model: str | None = None
    timeout_s: float = Field(600.0, gt=0)
    concurrency: int = Field(2, ge=1, le=256)
    max_chars: int = Field(400, ge=20, le=4096)
    max_takes: int = Field(3, ge=1, le=10)
    keep_bad: bool = False
    piece_pause_s: float = Field(0.3, ge=0, le=5)
    paragraph_pause_s: float = Field(0.7, ge=0, le=10)
    retries: int = Field(4, ge=0, le=20, description="Per request, for busy or failing servers.")


def _split_url(url: str | None) -> tuple[str, httpx.BasicAuth | None]:
    """The server's address without any ``user:password@`` in it, and those credentials as basic auth.

    The address is shown in messages and recorded as the rows' model (it decides
    their content keys), so credentials written into it must not travel with it.
    """
    if not url:
        return "", None
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        return url, None
    if not (parsed.username or parsed.password):
        return url, None
    return str(parsed.copy_with(userinfo=b"")), httpx.BasicAuth(parsed.username, parsed.password)


class VoxcpmHttpBackend(ThreadedBackend):
    name = "voxcpm-http"
    kinds = frozenset({"tts", "clone"})
    # Not sent as the request's speed: each piece is judged by its length against its text, and not every
    # OpenAI-style server honours speed (servers drop fields they do not know, silently).
    speed_as_tempo = True
    limit_scope = "fleet"  # one speech server shared by every worker

    def __init__(self) -> None:
        self._clients: dict[tuple, httpx.Client] = {}
        self._uploaded: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    @property
    def settings(self) -> VoxcpmHttpSettings:
        return from_environment(VoxcpmHttpSettings, "VOXCPM_HTTP_")

    @property
    def default_concurrency(self) -> int:  # type: ignore[override]  # the base's constant, computed from settings
        return self.settings.concurrency

    def estimate(self, texts: list[str], speech_s: float) -> CostEstimate:
        cfg = self.settings
        requests = sum(len(pieces_of(text, cfg)) for text in texts)  # one request per piece, cut as a run cuts it
        free = CostEstimate(self.name, 0.0, f"{requests} requests, not priced in MEDIAMILL_PRICES (free by default)")
        return priced(
            self.name, lookup_price(self.name, cfg.model or "default", {}), requests, sum(map(len, texts)), free
        )

    # -- checks and keys -------------------------------------------------
    def check(self, row: Row, base_dir: Path) -> list[tuple[str | None, str]]:
        assert isinstance(row, SpeechRow)
        problems = self.check_unused(row)
        if not self.settings.url:
            problems.append(("backend", "voxcpm-http needs the server's address: set VOXCPM_HTTP_URL"))
        if isinstance(row, CloneRow) and row.reference and is_url(row.reference):
            problems.append(("reference", "voxcpm-http uploads the reference; give a file, not a URL"))
        if row.options:
            problems.append(("options", "voxcpm-http takes no options"))
        return problems

    def spec(self, row: Row, base_dir: Path) -> JobSpec:
        assert isinstance(row, SpeechRow)
        cfg = self.settings
        params: dict[str, Any] = {
            "text": row.text,
            "voice": row.voice,
            "style": row.style,
            "cfg_value": row.cfg_value if row.cfg_value is not None else 2.0,
            "inference_timesteps": row.inference_timesteps or 10,
            "seed": row.seed,
            "max_chars": cfg.max_chars,
            "pauses": [cfg.piece_pause_s, cfg.paragraph_pause_s],
        }
        inputs: dict[str, Path] = {}
        if isinstance(row, CloneRow) and row.reference:
            inputs["reference"] = resolve_input(row.reference, base_dir)
            params["reference_text"] = row.reference_text
            params["voice"] = None
        # The server decides the model: its address (never its credentials) and model name are the key's model.
        address, _ = _split_url(cfg.url)
        return JobSpec(model=f"{address.rstrip('/')}#{cfg.model or 'default'}", params=params, inputs=inputs)

    # -- HTTP ------------------------------------------------------------
    def _client(self, cfg: VoxcpmHttpSettings) -> httpx.Client:
        key = (cfg.url, cfg.api_key.get_secret_value() if cfg.api_key else None, cfg.timeout_s)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                headers = {"Authorization": f"Bearer {key[1]}"} if key[1] else {}
                # Credentials in the URL go as client auth, so no URL httpx logs or raises carries them.
                address, auth = _split_url(cfg.url)
                client = self._clients[key] = httpx.Client(
                    base_url=address, auth=auth, headers=headers, timeout=httpx.Timeout(cfg.timeout_s, connect=10.0)
                )
            return client

    def _request(self, cfg: VoxcpmHttpSettings, method: str, path: str, **kw: Any) -> httpx.Response:
        client = self._client(cfg)
        where = f"voxcpm-http {method} {path}"
        for attempt in range(cfg.retries + 1):
            try:
                response = request_sync(
                    client, method, path, where, setting="VOXCPM_HTTP_URL", max_bytes=max_download_bytes(), **kw
                )
            except ServiceError as exc:  # a speech server's reading is not paid for: sending it again is safe
                if attempt == cfg.retries:
                    raise BackendError(f"voxcpm-http: cannot reach {_split_url(cfg.url)[0]}: {exc}") from None
                time.sleep(doubling(attempt))
                continue
            if response.status_code < 400:
                return response
            message = f"voxcpm-http: HTTP {response.status_code}: {error_text(response)}"
            if response.status_code in (401, 403):
                raise PermanentError(message + " (check VOXCPM_HTTP_API_KEY)")
            if response.status_code not in RETRY_STATUSES:
                raise PermanentError(message)
            if attempt == cfg.retries:
                raise BackendError(message)
            time.sleep(retry_wait(response, attempt))
        raise AssertionError("unreachable")

    def _upload(self, cfg: VoxcpmHttpSettings, reference: Path, transcript: str | None) -> str:
        """Put a reference recording in the server's registry once; return its voice name."""
        # Named by content: the same recording and transcript are one voice, across runs and machines.
        tag = hashlib.sha256(f"{file_digest(reference)}\n{transcript or ''}".encode()).hexdigest()[:20]
        name = f"ref-{tag}"
        if (cfg.url or "", name) in self._uploaded:
            return name
        listed = self._request(cfg, "GET", "/voices").json()
        if name not in listed.get("voices", []):
            with reference.open("rb") as fh:
                data = {"name": name, **({"text": transcript} if transcript else {})}
                self._request(cfg, "POST", "/v1/voices", data=data, files={"file": (reference.name, fh)})
        self._uploaded.add((cfg.url or "", name))
        return name

    # -- generation ------------------------------------------------------
    def generate_sync(self, job: Job, workdir: Path) -> Generated:
        cfg = self.settings
        p = job.spec.params
        voice = p["voice"]
        if "reference" in job.spec.inputs:
            voice = self._upload(cfg, job.spec.inputs["reference"], p.get("reference_text"))
        base: dict[str, Any] = {
            "response_format": "wav",
            "cfg_value": p["cfg_value"],
            "inference_timesteps": p["inference_timesteps"],
        }
        for field, value in (("model", cfg.model), ("voice", voice), ("instructions", p["style"])):
            if value:
                base[field] = value

        def take(text: str, attempt: int) -> Take:
            body = dict(base, input=text)
            if p["seed"] is not None:
                body["seed"] = take_seed(p["seed"], attempt, job.take)
            response = self._request(cfg, "POST", "/v1/audio/speech", json=body)
            try:
                with wave.open(io.BytesIO(response.content)) as wav:
                    if wav.getsampwidth() != 2 or wav.getnchannels() != 1:
                        raise PermanentError("voxcpm-http: the server sent audio that is not 16-bit mono")
                    return Take(wav.readframes(wav.getnframes()), wav.getframerate())
            except (wave.Error, EOFError) as exc:
                raise BackendError(f"voxcpm-http: the server sent an unreadable WAV ({exc})") from None

        check = DurationCheck()
        pieces = pieces_of(p["text"], cfg)
        out = workdir / "speech.wav"
        try:
            reading = read_aloud(
                pieces,
                take,
                out,
                check,
                max_takes=cfg.max_takes,
                keep_bad=cfg.keep_bad,
                hear=hearing(job.check_piece, workdir),
            )
        except BadCaseError as exc:
            raise PermanentError(f"implausible speech: {exc}") from None
        # The server reports no cost; MEDIAMILL_PRICES may price it per request and characters.
        price = lookup_price(self.name, cfg.model or "default", {})
        return Generated(
            path=out,
            cost_usd=price.cost(len(p["text"])) if price else 0.0,
            cost_source="price table" if price else "free",
            attempts_inside=reading.generations,
            extra={
                "pieces": reading.pieces,
                "kept_bad": reading.kept_bad,
                "check": join(reading.checks) if reading.checks else None,
            },
        )

    async def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()
