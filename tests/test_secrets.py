"""Credentials appear in no log line, results file, artifact, journal or error message."""

from __future__ import annotations

import asyncio
import logging
import tempfile
from pathlib import Path

import pytest

from mediamill.backends import forget
from mediamill.flows import produce
from tests.helpers.cli import shared_api_database
from tests.helpers.emulators.pixazo import PixazoEmulator
from tests.helpers.emulators.wiro import WiroEmulator

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
    with (
        WiroEmulator(api_key=WIRO_KEY, api_secret=WIRO_SECRET, queue_s=0.05, run_s=0.1) as wiro,
        PixazoEmulator(api_key=PIXAZO_KEY) as pixazo,
    ):
        monkeypatch.setenv("WIRO_BASE_URL", wiro.url)
        monkeypatch.setenv("WIRO_API_KEY", WIRO_KEY)
        monkeypatch.setenv("WIRO_API_SECRET", WIRO_SECRET)
        monkeypatch.setenv("WIRO_POLL_INITIAL_S", "0.05")
        monkeypatch.setenv("PIXAZO_BASE_URL", pixazo.url)
        monkeypatch.setenv("PIXAZO_API_KEY", PIXAZO_KEY)
        monkeypatch.setenv("MEDIAMILL_CONCURRENCY", '{"wiro": 1, "pixazo": 1}')
        forget("wiro", "pixazo")
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

    stored = stored_in_prefect()
    assert "secrets" in stored  # the run's artifacts and logs are there
    for secret in SECRETS:
        assert secret not in stored


# -- voxcpm-http against `mediamill serve` with an API key ------------------------------------------

SERVE_KEY = "SERVEKEY-3c59dc048e885024"  # the server's key, which the client sends as its VOXCPM_HTTP_API_KEY
WRONG_KEY = "WRONGKEY-a87ff679a2f3e71d"  # a client key the server refuses
URL_PASSWORD = "URLPASS-e4da3b7fbbce2345"  # basic-auth credentials written into VOXCPM_HTTP_URL
HTTP_SECRETS = (SERVE_KEY, WRONG_KEY, URL_PASSWORD)


def _files_under(*roots: Path) -> list[Path]:
    return [p for root in roots for p in root.rglob("*") if p.is_file() and not p.is_symlink()]


def test_voxcpm_http_key_never_leaves_the_environment(tiny_voxcpm, monkeypatch, tmp_path, write_manifest, caplog):
    from tests.helpers.fakes import write_tone_wav
    from tests.helpers.loadgen import serve_process

    caplog.set_level(logging.DEBUG)
    scratch = tmp_path / "scratch"  # every temporary file of this run, ours and the server's
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    voices = tmp_path / "server-voices"
    env = {
        "VOXCPM_MODEL": str(tiny_voxcpm),
        "VOXCPM_DEVICE": "cpu",
        "VOXCPM_CPU_THREADS": "1",
        "MEDIAMILL_SERVE_API_KEY": SERVE_KEY,
        "TMPDIR": str(scratch),
    }
    write_tone_wav(tmp_path / "guest.wav", 1.5)
    good = write_manifest(
        "id,kind,text,reference,reference_text,style\n"
        "plain,tts,The lamps came on along the street.,,,\n"
        "designed,tts,Nobody looked up.,,,a warm voice\n"
        "cont,clone,In the guest's voice.,guest.wav,Hello from the guest.,\n"
        "ref,clone,Only the guest's timbre.,guest.wav,,\n",
        name="http-good",
    )
    refused = write_manifest(
        "id,kind,text,reference\nr1,tts,Refused at the door.,\nr2,clone,A refused clone.,guest.wav\n",
        name="http-refused",
    )
    proxied = write_manifest("id,text\np1,Through a proxy that wants a password.\n", name="http-proxied")
    out = tmp_path / "out"
    monkeypatch.setenv("VOXCPM_HTTP_MAX_CHARS", "60")
    monkeypatch.setenv("MEDIAMILL_RETRIES", "1")
    states = {}
    with serve_process(env, ["--voices", str(voices)], tmp_path / "server.log") as served:
        host = served.url.removeprefix("http://")
        runs = [
            (good, served.url, SERVE_KEY),
            (refused, served.url, WRONG_KEY),  # the server answers 401: an auth error, raised and logged
            (proxied, f"http://mediamill:{URL_PASSWORD}@{host}", SERVE_KEY),  # basic auth replaces the key: 401 too
        ]
        for manifest, url, key in runs:
            monkeypatch.setenv("VOXCPM_HTTP_URL", url)
            monkeypatch.setenv("VOXCPM_HTTP_API_KEY", key)
            forget("voxcpm-http")
            states[manifest.stem] = asyncio.run(
                produce(manifest=str(manifest), backend="voxcpm-http", outputs=str(out), return_state=True)
            )
        server_output = served.output()

    assert states["http-good"].is_completed(), states["http-good"].message
    assert states["http-refused"].is_failed() and states["http-proxied"].is_failed()
    import pyarrow.parquet as pq

    for name in ("http-refused", "http-proxied"):
        rows = pq.read_table(out / name / "results.parquet").to_pylist()
        assert {r["status"] for r in rows} == {"failed"}
        assert all("401" in r["error"] and "VOXCPM_HTTP_API_KEY" in r["error"] for r in rows), rows
    assert any(p.name.startswith("ref-") for p in voices.iterdir())  # the clone rows uploaded their reference

    assert shared_api_database(), "the Prefect database is among the files searched"
    written = _files_under(out, scratch, voices, tmp_path / "server.log") + shared_api_database()
    assert any(p.name == "results.csv" for p in written) and any(p.suffix == ".json" for p in written)
    for path in written:
        data = path.read_bytes()
        for secret in HTTP_SECRETS:
            assert secret.encode() not in data, f"{secret} found in {path}"
    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert "HTTP 401" in logged  # the refusals were logged
    failures = []
    for state in states.values():
        failures.append(str(state.message))
        if state.is_failed():
            failures.append(repr(state.result(raise_on_failure=False)))
    for secret in HTTP_SECRETS:
        assert secret not in logged
        assert secret not in server_output
        for text in failures:
            assert secret not in text

    stored = stored_in_prefect()
    assert "http-refused" in stored and "HTTP 401" in stored  # the run's artifacts and logs are there
    for secret in HTTP_SECRETS:
        assert secret not in stored


def stored_in_prefect() -> str:
    """Every artifact and log line the Prefect API holds, as one text (read page by page: the API is shared with
    the other tests of this process, and one read returns at most a page)."""

    async def read() -> str:
        from prefect.client.orchestration import get_client

        texts: list[str] = []
        async with get_client() as client:
            for reader, text in (
                (client.read_artifacts, lambda a: str(a.data)),
                (client.read_logs, lambda g: g.message),
            ):
                offset = 0
                while page := await reader(limit=200, offset=offset):
                    texts += [text(item) for item in page]
                    offset += len(page)
        return "\n".join(texts)

    return asyncio.run(read())
