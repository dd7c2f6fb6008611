"""Credentials appear in no log line, results file, artifact, journal or error message."""

from __future__ import annotations

import asyncio
import logging

import pytest

from mediamill.backends import _instances
from mediamill.flows import produce

from .emulators.pixazo import PixazoEmulator
from .emulators.wiro import WiroEmulator

pytestmark = pytest.mark.usefixtures("prefect_api", "fast_retries")

WIRO_KEY, WIRO_SECRET = "WIROKEY-d41d8cd98f00b204", "WIROSECRET-e9800998ecf8427e"
PIXAZO_KEY = "PIXAZOKEY-7215ee9c7d9dc229"
SECRETS = (WIRO_KEY, WIRO_SECRET, PIXAZO_KEY)


def test_credentials_never_leave_the_environment(monkeypatch, tmp_path, write_manifest, caplog):
    caplog.set_level(logging.DEBUG)
    manifest = write_manifest(
        "id,text,backend\nw1,A good wiro line.,wiro\nw2,A failing wiro line.,wiro\np1,A pixazo line.,pixazo\np2,Refused.,pixazo\n",
        name="secrets",
    )
    with WiroEmulator(api_key=WIRO_KEY, api_secret=WIRO_SECRET, queue_s=0.05, run_s=0.1) as wiro, PixazoEmulator(
        api_key=PIXAZO_KEY
    ) as pixazo:
        monkeypatch.setenv("WIRO_BASE_URL", wiro.url)
        monkeypatch.setenv("WIRO_API_KEY", WIRO_KEY)
        monkeypatch.setenv("WIRO_API_SECRET", WIRO_SECRET)
        monkeypatch.setenv("WIRO_POLL_INITIAL_S", "0.05")
        monkeypatch.setenv("PIXAZO_BASE_URL", pixazo.url)
        monkeypatch.setenv("PIXAZO_API_KEY", PIXAZO_KEY)
        monkeypatch.setenv("MEDIAMILL_CONCURRENCY", '{"wiro": 1, "pixazo": 1}')
        for name in ("wiro", "pixazo"):
            _instances.pop(name, None)
        wiro.inject("task_pexit1", 10)  # every retry of the second wiro row fails: errors get written
        pixazo.inject("http401", 1)
        out = tmp_path / "out"
        state = asyncio.run(produce(manifest=str(manifest), outputs=str(out), return_state=True))
        assert state.is_failed()

    written = [p for p in out.rglob("*") if p.is_file()]
    assert any(p.name == "results.csv" for p in written)
    for path in written:
        data = path.read_bytes()
        for secret in SECRETS:
            assert secret.encode() not in data, f"{secret} found in {path}"
    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert "failed (pexit 1)" in logged or "refused the API key" in logged  # the failures were logged
    for secret in SECRETS:
        assert secret not in logged
        assert secret not in str(state.message)

    async def stored_in_prefect() -> str:
        from prefect.client.orchestration import get_client

        async with get_client() as client:
            artifacts = await client.read_artifacts()
            logs = await client.read_logs()
        return "\n".join([str(a.data) for a in artifacts] + [log.message for log in logs])

    stored = asyncio.run(stored_in_prefect())
    assert "secrets" in stored  # the run's artifacts and logs are there
    for secret in SECRETS:
        assert secret not in stored
