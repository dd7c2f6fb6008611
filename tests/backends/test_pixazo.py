"""The Pixazo backend through the produce flow, against the Pixazo emulator."""

from __future__ import annotations

from pathlib import Path

import pytest

from mediamill.plan import validate
from mediamill.store import Store
from tests.helpers import runs
from tests.helpers.emulators.pixazo import PixazoEmulator
from tests.helpers.hosted import PIXAZO_KEY, pixazo_env, point

pytestmark = pytest.mark.usefixtures("prefect_api", "fast_retries")

KEY = PIXAZO_KEY


@pytest.fixture
def pixazo(monkeypatch):
    with PixazoEmulator(api_key=KEY, latency_s=0.02) as emulator:
        point(monkeypatch, "pixazo", pixazo_env(emulator.url))
        yield emulator


def run(manifest: Path, outputs: Path):
    return runs.run(manifest, outputs, "pixazo")


def results(outputs: Path, name: str = "px") -> dict[str, dict]:
    return runs.results_by_id(outputs, name)


def manifest(write_manifest, n: int = 2, name: str = "px") -> Path:
    return write_manifest("id,text\n" + "".join(f"p{i},Pixazo line {i}.\n" for i in range(n)), name=name)


def test_speech_and_cloning(pixazo, write_manifest, tmp_path, monkeypatch):
    monkeypatch.setenv("MEDIAMILL_ALLOW_PRIVATE_URLS", "true")  # the reference lives on the emulator, on loopback
    ref = f"{pixazo.url}/files/reference.wav"
    path = write_manifest(
        f"""
id,kind,text,style,reference,reference_text,cfg_value,inference_timesteps
plain,tts,A designed voice.,"calm, warm",,,2.5,12
copy,clone,In the voice of the reference.,,{ref},What the reference says.,,
""",
        name="px",
    )
    state = run(path, tmp_path / "out")
    assert state.is_completed(), state.message
    rows = results(tmp_path / "out")
    assert {r["status"] for r in rows.values()} == {"done"}
    assert all(r["cost_usd"] == 0 and r["cost_source"] == "price table" and r["compute_s"] > 0 for r in rows.values())
    ops = dict(pixazo.requests)
    assert ops["text-to-speech"] == {"text": "(calm, warm) A designed voice.", "cfg_value": 2.5, "dit_steps": 12}
    assert ops["voice-cloning"]["reference_audio_url"] == ref
    assert ops["voice-cloning"]["prompt_text"] == "What the reference says."


def test_price_table_prices_rows(pixazo, write_manifest, tmp_path, monkeypatch):
    monkeypatch.setenv("MEDIAMILL_PRICES", '{"pixazo:voxcpm2": {"per_request": 0.001, "per_1k_chars": 0.02}}')
    run(manifest(write_manifest, 1), tmp_path / "out")
    (row,) = results(tmp_path / "out").values()
    assert row["cost_usd"] == pytest.approx(0.001 + 0.02 * len("Pixazo line 0.") / 1000)


def test_rate_limit_is_waited_out_inside_one_attempt(pixazo, write_manifest, tmp_path):
    pixazo.inject("http429", 2)
    assert run(manifest(write_manifest, 1), tmp_path / "out").is_completed()
    (row,) = results(tmp_path / "out").values()
    assert row["attempts"] == 1
    assert len(pixazo.requests) == 3


@pytest.mark.parametrize(
    ("fault", "attempts"), [("http500", 2), ("http502", 2), ("malformed", 2), ("download_broken", 1)]
)
def test_transient_faults_are_retried(pixazo, write_manifest, tmp_path, fault, attempts):
    pixazo.inject(fault, 1)
    assert run(manifest(write_manifest, 1), tmp_path / "out").is_completed()
    (row,) = results(tmp_path / "out").values()
    assert (row["status"], row["attempts"]) == ("done", attempts)


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("http400", "pixazo rejected the request"),
        ("http401", "refused the API key (HTTP 401)"),
        ("http403", "refused the API key (HTTP 403)"),
        ("http402", "out of credit (HTTP 402)"),
    ],
)
def test_client_errors_fail_fast_with_a_clear_message(pixazo, write_manifest, tmp_path, fault, message):
    pixazo.inject(fault, 10)
    state = run(manifest(write_manifest, 1), tmp_path / "out")
    assert state.is_failed()
    (row,) = results(tmp_path / "out").values()
    assert row["attempts"] == 1 and message in row["error"]
    assert KEY not in row["error"]


def test_out_of_credit_stops_the_other_rows_without_calls(pixazo, write_manifest, tmp_path, monkeypatch):
    monkeypatch.setenv("MEDIAMILL_CONCURRENCY", '{"pixazo": 1}')
    pixazo.inject("http402", 10)
    state = run(manifest(write_manifest, 5), tmp_path / "out")
    assert state.message.startswith("5 of 5 rows failed")
    assert len(pixazo.requests) == 1


def test_a_noted_result_is_downloaded_not_generated_again(pixazo, write_manifest, tmp_path):
    path = manifest(write_manifest, 1)
    job = validate(path, "pixazo").jobs[0]
    # A run that got its answer and was killed before downloading left this note.
    Store(tmp_path / "out").journal(job.key).write(
        {"backend": "pixazo", "output_url": f"{pixazo.url}/files/noted.wav", "elapsed_s": 1.5}
    )
    assert run(path, tmp_path / "out").is_completed()
    assert pixazo.requests == [] and pixazo.downloads == 1
    (row,) = results(tmp_path / "out").values()
    assert row["compute_s"] == 1.5
    assert not Store(tmp_path / "out").journal(job.key).path.exists()
