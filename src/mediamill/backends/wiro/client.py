"""Wiro's REST calls: request signatures, answers read, errors mapped (see the package doc for the protocol)."""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from ..base import PermanentError
from ..hosted import LoopClients, ServiceError, Uncertain, is_http_url, json_object, post
from .protocol import QUEUED

__all__ = ["ApiError", "WiroClient", "WiroError", "WiroSettings", "shown", "signature"]


class WiroSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WIRO_", extra="ignore")

    api_key: SecretStr | None = None
    api_secret: SecretStr | None = None
    base_url: str = "https://api.wiro.ai/v1"
    request_timeout_s: float = Field(60.0, gt=0, description="Longest wait for one API answer, body included.")
    poll_initial_s: float = Field(2.0, gt=0, description="First wait between status checks.")
    poll_max_s: float = Field(10.0, gt=0, description="Longest wait between status checks.")
    task_timeout_s: float = Field(3600.0, gt=0, description="A task not finished by then is killed.")
    concurrency_wait_s: float = Field(1800.0, ge=0, description="How long to wait out Wiro's concurrency limit.")
    concurrency_retry_s: float = Field(5.0, gt=0, description="First wait after a concurrency refusal.")
    error_grace_s: float = Field(300.0, gt=0, description="A task that shows only task_error this long has failed.")
    poll_failures: int = Field(8, ge=1, description="Consecutive failed status checks before giving up.")


class WiroError(ServiceError):
    """A Wiro call or task that failed; retried unless a subclass says otherwise."""


@dataclass
class ApiError(Exception):
    code: int | None
    message: str


def signature(api_key: str, api_secret: str, nonce: str) -> str:
    """Wiro's request signature: hex HMAC-SHA256 keyed by the API key over secret + nonce."""
    return hmac.new(api_key.encode(), (api_secret + nonce).encode(), hashlib.sha256).hexdigest()


class WiroClient:
    """Wiro's REST calls, one shared HTTP client, errors mapped to exceptions."""

    _last_nonce = 0  # class-wide: nonces stay unique across clients made in quick succession

    def __init__(self, settings: WiroSettings, clients: LoopClients):
        self.settings = settings
        self.clients = clients
        self.base = settings.base_url.rstrip("/")

    @classmethod
    def _nonce(cls) -> str:
        # A microsecond timestamp, as documented, made strictly increasing for back-to-back calls.
        cls._last_nonce = max(time.time_ns() // 1000, cls._last_nonce + 1)
        return str(cls._last_nonce)

    def _headers(self) -> dict[str, str]:
        if self.settings.api_key is None:
            raise PermanentError("WIRO_API_KEY is not set")
        key = self.settings.api_key.get_secret_value()
        headers = {"x-api-key": key}
        if self.settings.api_secret is not None:
            nonce = self._nonce()
            headers["x-nonce"] = nonce
            headers["x-signature"] = signature(key, self.settings.api_secret.get_secret_value(), nonce)
        return headers

    async def post(self, path: str, json: dict | None = None, data: dict | None = None, files: Any = None) -> dict:
        """POST and return the JSON body of a successful call; raise ApiError, NotSent or Uncertain otherwise."""
        where = f"wiro {path}"
        response = await post(
            self.clients,
            f"{self.base}/{path}",
            where,
            setting="WIRO_BASE_URL",
            timeout=self.settings.request_timeout_s,
            headers=self._headers(),
            json=json,
            data=data,
            files=files,
        )
        if response.status_code in (401, 403):
            raise PermanentError(
                f"wiro refused the credentials (HTTP {response.status_code}): check WIRO_API_KEY/WIRO_API_SECRET"
            )
        if response.status_code == 429 or response.status_code >= 500:
            raise WiroError(f"{where}: HTTP {response.status_code}")
        body = json_object(response, where)
        if body.get("result") is not True:
            errors = body.get("errors") or [{}]
            first = errors[0] if isinstance(errors, list) and isinstance(errors[0], dict) else {}
            code = first.get("code")
            raise ApiError(
                int(code) if str(code).isdigit() else None,  # type: ignore[arg-type]  # isdigit() rules out None
                str(first.get("message") or "request failed"),
            )
        return body

    async def run(self, model: str, inputs: dict[str, Any], files: dict[str, Path]) -> tuple[str, str]:
        if files:  # multipart: files as parts, everything else as text fields
            data = {k: _form_value(v) for k, v in inputs.items()}
            parts = [
                (name, (path.name, await anyio.to_thread.run_sync(path.read_bytes))) for name, path in files.items()
            ]
            body = await self.post(f"Run/{model}", data=data, files=parts)
        else:
            body = await self.post(f"Run/{model}", json=inputs)
        taskid, token = body.get("taskid"), body.get("socketaccesstoken")
        if not _scalar(taskid):
            # The call was accepted, so a task may exist: uncertain, never simply resubmitted.
            raise Uncertain(f"wiro Run/{model}: answered without a usable taskid ({shown(taskid)})")
        return str(taskid), str(token) if _scalar(token) else ""

    async def detail(self, taskid: str, token: str = "") -> dict[str, Any]:
        body = await self.post("Task/Detail", json={"taskid": taskid, **({"tasktoken": token} if token else {})})
        tasks = body.get("tasklist")
        if not isinstance(tasks, list) or not tasks or not isinstance(tasks[0], dict):
            raise WiroError(f"wiro Task/Detail answered without the task (tasklist: {shown(tasks)})")
        if not isinstance(tasks[0].get("status"), str):  # an unknown status would be polled until the task timeout
            raise WiroError(f"wiro Task/Detail answered a status that is no text ({shown(tasks[0].get('status'))})")
        return tasks[0]

    async def stop(self, taskid: str, token: str, status: str) -> bool:
        """Cancel a queued task or kill a running one (whichever its status allows).

        Returns False when Wiro refused both: the task had already ended.
        """
        ident = {"taskid": taskid, **({"tasktoken": token, "socketaccesstoken": token} if token else {})}
        order = ["Task/Cancel", "Task/Kill"] if status in QUEUED else ["Task/Kill", "Task/Cancel"]
        for path in order:
            try:
                await self.post(path, json=ident)
                return True
            except ApiError:
                continue  # the task moved on between our look and our call: try the other
        return False

    async def upload(self, path: Path) -> str:
        content = await anyio.to_thread.run_sync(path.read_bytes)
        body = await self.post("File/Upload", files=[("file", (path.name, content))])
        listing = body.get("list")
        url = listing[0].get("url") if isinstance(listing, list) and listing and isinstance(listing[0], dict) else None
        if not is_http_url(url):
            raise WiroError(f"wiro File/Upload answered without a usable URL ({shown(url)})")
        return url


def _form_value(value: Any) -> Any:
    if isinstance(value, list):
        return [str(v) for v in value]
    return str(value)


def _scalar(value: Any) -> bool:
    """A usable id: a non-empty string or an integer (JSON ids come either way)."""
    return (isinstance(value, str) and value.strip() != "") or (isinstance(value, int) and not isinstance(value, bool))


def shown(value: Any) -> str:
    """A value from an answer, short enough for an error message."""
    return f"{type(value).__name__} {str(value)[:60]!r}" if value is not None else "missing"
