"""The Wiro backend through the produce flow, against the Wiro emulator (real HTTP on loopback)."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from mediamill.backends import forget
from mediamill.flows import produce
from mediamill.media.probe import probe
from tests.helpers import runs
from tests.helpers.emulators.wiro import WiroEmulator
from tests.helpers.fakes import write_tone_wav
from tests.helpers.hosted import WIRO_KEY, WIRO_SECRET, point, wiro_env
from tests.helpers.paths import MANIFESTS
from tests.helpers.runs import results_by_id

pytestmark = pytest.mark.usefixtures("prefect_api", "fast_retries")

KEY, SECRET = WIRO_KEY, WIRO_SECRET


@pytest.fixture
def wiro(request, monkeypatch):
    """A Wiro emulator with signature auth, and the environment pointing the client at it.

    Parametrised indirectly with a Detail style: "documented" (the default) or "model_page".
    """
    style = getattr(request, "param", "documented")
    with WiroEmulator(api_key=KEY, api_secret=SECRET, queue_s=0.05, run_s=0.2, detail_style=style) as emulator:
        point(monkeypatch, "wiro", wiro_env(emulator.url))
        yield emulator


def run(manifest: Path, outputs: Path, backend: str | None = "wiro"):
    return runs.run(manifest, outputs, backend)


def speech_manifest(write_manifest, tmp_path: Path, n: int = 3, name: str = "speech") -> Path:
    body = "".join(f"s{i},Line number {i} spoken by the hosted model.\n" for i in range(n))
    return write_manifest("id,text\n" + body, name=name)


BOTH_SHAPES = pytest.mark.parametrize("wiro", ["documented", "model_page"], indirect=True)


@BOTH_SHAPES
def test_every_kind_end_to_end(wiro, tmp_path, write_manifest):
    assets = tmp_path / "assets"
    shutil.copytree(MANIFESTS / "images", assets / "images")
    shutil.copytree(MANIFESTS / "music", assets / "music")
    write_tone_wav(assets / "ref.wav", 1.0)
    manifest = write_manifest(
        """
id,kind,text,reference,reference_text,lyrics,genre,mood,clone_type,image,prompt,resolution,seed
say,tts,Hello from the cloud.,,,,,,,,,,
copy,clone,Say it like me.,assets/ref.wav,This is my voice.,,,,,,,,
copy2,clone,Again without a transcript.,assets/ref.wav,,,,,,,,,
tune,song,,assets/music/reference.mp3,,"[verse] la la [chorus] oh",pop; rock,happy,vocal,,,,3
clip,video,,,,,,,,assets/images/lighthouse.png,"He says, <S>Hi.<E> <AUDCAP>calm voice<ENDAUDCAP>",992x512,5
""",
        name="kinds",
    )
    out = tmp_path / "out"
    state = run(manifest, out)
    assert state.is_completed(), state.message
    rows = results_by_id(out, "kinds")
    assert {r["status"] for r in rows.values()} == {"done"}
    for r in rows.values():
        if wiro.detail_style == "documented":
            assert r["cost_usd"] == pytest.approx(0.0123) and r["cost_source"] == "reported"
        else:  # the model pages' shape reports no cost, and no price table is set here
            assert r["cost_usd"] is None and r["cost_source"] == "not reported"
        assert r["compute_s"] == pytest.approx(0.2, abs=0.01)
        assert r["queue_s"] is not None and r["task_id"].isdigit()
        assert r["attempts"] == 1
    assert rows["tune"]["model"] == "wiro/text-to-song-with-reference-yue"
    assert probe(out / "kinds" / rows["clip"]["output"]).video_codec == "h264"
    assert probe(out / "kinds" / rows["tune"]["output"]).audio_codec in ("mp3", "mp3float")

    by_model = {r["model"]: r for r in wiro.runs}
    assert len(wiro.runs) == 5
    song = next(r for r in wiro.runs if r["model"] == "wiro/text-to-song-with-reference-yue")
    assert song["inputs"]["audio_prompt_type"] == "vocal"
    assert song["inputs"]["inputAudioUrl"].startswith(wiro.url.rsplit("/v1", 1)[0])  # uploaded, then linked
    video = by_model["chetwinlow1/ovi"]
    assert video["files"]["inputImage"] == (MANIFESTS / "images" / "lighthouse.png").read_bytes()
    assert video["inputs"]["resolution"] == "992x512"
    clones = [
        r for r in wiro.runs if r["model"] == "openbmb/voxcpm" and r["inputs"]["prompt"] != "Hello from the cloud."
    ]
    modes = sorted(tuple(sorted(k for k in r["inputs"] if "Audio" in k or k == "referencePrompt")) for r in clones)
    assert modes == [("inputAudioReferenceUrl", "referencePrompt"), ("inputAudioUrl",)]
    assert sum(1 for endpoint, _ in wiro.requests if endpoint == "Upload") == 2  # the reference wav once, the mp3 once

    rerun = run(manifest, out)
    assert rerun.is_completed()
    assert len(wiro.runs) == 5  # nothing submitted again


def test_key_only_auth(monkeypatch, tmp_path, write_manifest):
    with WiroEmulator(api_key=KEY, api_secret=None, queue_s=0.05, run_s=0.1) as emulator:
        monkeypatch.setenv("WIRO_BASE_URL", emulator.url)
        monkeypatch.setenv("WIRO_API_KEY", KEY)
        monkeypatch.delenv("WIRO_API_SECRET", raising=False)
        monkeypatch.setenv("WIRO_POLL_INITIAL_S", "0.05")
        forget("wiro")
        assert run(speech_manifest(write_manifest, tmp_path, 2), tmp_path / "out").is_completed()
        assert len(emulator.runs) == 2


def test_wrong_secret_fails_fast_without_leaking_it(wiro, monkeypatch, tmp_path, write_manifest):
    monkeypatch.setenv("WIRO_API_SECRET", "wrong-secret-value-9876")
    state = run(speech_manifest(write_manifest, tmp_path, 2), tmp_path / "out")
    assert state.is_failed()
    for r in results_by_id(tmp_path / "out", "speech").values():
        assert r["status"] == "failed" and r["attempts"] == 1
        assert "refused the credentials" in r["error"]
    text = (tmp_path / "out" / "speech" / "results.csv").read_text()
    assert "wrong-secret-value-9876" not in text and KEY not in text
    assert wiro.runs == []


@pytest.mark.parametrize(
    ("fault", "times", "attempts"),
    [
        ("run_http500", 2, 3),  # the row is retried; no task was created by the failed calls
        ("run_code96", 3, 1),  # concurrency limit: waited out inside one attempt
        ("task_pexit1", 1, 2),  # a failed task: the retry submits a new one
        ("task_service_cancel", 1, 2),
        ("task_interim_errors", 1, 1),  # task_error is a log line, not a failure
        ("detail_http500", 3, 1),  # status checks are retried without resubmitting
        ("detail_malformed", 2, 1),
        ("download_broken", 1, 1),  # the download starts again; the task is not rerun
    ],
)
@BOTH_SHAPES
def test_faults_are_survived_exactly(wiro, tmp_path, write_manifest, fault, times, attempts):
    wiro.inject(fault, times)
    manifest = speech_manifest(write_manifest, tmp_path, 1)
    state = run(manifest, tmp_path / "out")
    assert state.is_completed(), state.message
    (row,) = results_by_id(tmp_path / "out", "speech").values()
    assert (row["status"], row["attempts"]) == ("done", attempts)
    created = [r for r in wiro.runs if r["taskid"]]
    assert len(created) == (2 if fault in ("task_pexit1", "task_service_cancel") else 1)
    assert not list((tmp_path / "out" / ".store" / "journal").glob("*.json"))


def test_a_slow_status_check_times_out_and_is_retried(wiro, monkeypatch, tmp_path, write_manifest):
    monkeypatch.setenv("WIRO_REQUEST_TIMEOUT_S", "0.3")
    wiro.slow_s = 1.0
    wiro.inject("detail_timeout", 1)
    state = run(speech_manifest(write_manifest, tmp_path, 1), tmp_path / "out")
    assert state.is_completed(), state.message
    assert len([r for r in wiro.runs if r["taskid"]]) == 1


def test_insufficient_balance_stops_every_row_without_retries(wiro, monkeypatch, tmp_path, write_manifest):
    monkeypatch.setenv("MEDIAMILL_CONCURRENCY", '{"wiro": 1}')
    wiro.inject("run_code97", 100)
    state = run(speech_manifest(write_manifest, tmp_path, 4), tmp_path / "out")
    assert state.is_failed() and state.message.startswith("4 of 4 rows failed")
    rows = results_by_id(tmp_path / "out", "speech").values()
    assert all(r["attempts"] == 1 and "insufficient balance" in r["error"] for r in rows)
    assert len(wiro.runs) == 1  # the first refusal trips the breaker: the other rows never call


def test_a_stuck_task_is_killed_at_its_deadline(wiro, monkeypatch, tmp_path, write_manifest):
    monkeypatch.setenv("WIRO_TASK_TIMEOUT_S", "1")
    wiro.inject("task_stuck", 1)
    state = run(speech_manifest(write_manifest, tmp_path, 1), tmp_path / "out")
    assert state.is_failed()
    (row,) = results_by_id(tmp_path / "out", "speech").values()
    assert row["attempts"] == 1 and "did not finish within 1 s" in row["error"]
    (task,) = wiro.tasks.values()
    assert task.killed and task.status == "task_cancel"


def test_a_fatal_task_error_fails_after_the_grace_period(wiro, monkeypatch, tmp_path, write_manifest):
    monkeypatch.setenv("WIRO_ERROR_GRACE_S", "0.5")
    monkeypatch.setenv("MEDIAMILL_RETRIES", "0")
    wiro.inject("task_fatal_error", 1)
    state = run(speech_manifest(write_manifest, tmp_path, 1), tmp_path / "out")
    assert state.is_failed()
    (row,) = results_by_id(tmp_path / "out", "speech").values()
    assert "failed (pexit 1)" in row["error"]


def test_rows_in_flight_never_exceed_the_backend_limit(wiro, monkeypatch, tmp_path, write_manifest):
    monkeypatch.setenv("MEDIAMILL_CONCURRENCY", '{"wiro": 3}')
    wiro.max_concurrent = 3  # the service refuses (code 96) a fourth active task
    state = run(speech_manifest(write_manifest, tmp_path, 12), tmp_path / "out")
    assert state.is_completed(), state.message
    assert len(wiro.runs) == 12  # no refusals: the limit held


def test_cancelling_the_flow_run_kills_its_hosted_tasks(wiro, monkeypatch, tmp_path, write_manifest):
    import threading
    import time

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
    from prefect.states import Cancelling

    monkeypatch.setenv("MEDIAMILL_CANCEL_CHECK_S", "0.2")
    wiro.run_s = 60.0
    manifest = speech_manifest(write_manifest, tmp_path, 3, name="tocancel")
    outcome = {}

    def produce_in_thread():
        outcome["state"] = asyncio.run(
            produce.with_options(flow_run_name="tocancel-run")(
                manifest=str(manifest), backend="wiro", outputs=str(tmp_path / "out"), return_state=True
            )
        )

    worker = threading.Thread(target=produce_in_thread)
    worker.start()
    deadline = time.monotonic() + 60
    while len([t for t in wiro.tasks.values() if t.status == "task_output"]) < 3:
        assert time.monotonic() < deadline and worker.is_alive()
        time.sleep(0.05)

    async def cancel_it():  # what the Prefect UI's Cancel button does
        async with get_client() as client:
            (run_,) = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=["tocancel-run"]))
            )
            await client.set_flow_run_state(run_.id, Cancelling(), force=True)

    asyncio.run(cancel_it())
    worker.join(timeout=30)
    assert not worker.is_alive()
    assert outcome["state"].is_cancelled(), outcome["state"]
    assert all(t.killed and t.status == "task_cancel" for t in wiro.tasks.values()), [
        t.snapshot() for t in wiro.tasks.values()
    ]
    rows = results_by_id(tmp_path / "out", "tocancel").values()
    assert {r["error"] for r in rows} == {"cancelled before it finished"}
    assert not list((tmp_path / "out" / ".store" / "journal").glob("*.json"))


def _noted_task(wiro, path, outputs, *, submitted_ago_s: float = 0.0):
    """Submit a row's task to the emulator directly and note it, as a killed run would have."""
    import time

    import httpx

    from mediamill.plan import validate
    from mediamill.store import Store

    job = validate(path, "wiro").jobs[0]
    answer = httpx.post(f"{wiro.url}/Run/openbmb/voxcpm", json=job.spec.params, headers=wiro.auth_headers()).json()
    record = {
        "backend": "wiro",
        "model": job.spec.model,
        "task_id": answer["taskid"],
        "token": answer["socketaccesstoken"],
        "submitted_at": time.time() - submitted_ago_s,
    }
    journal = Store(outputs).journal(job.key)
    journal.write(record)
    return journal


@BOTH_SHAPES
def test_a_task_noted_long_ago_is_collected_not_killed(wiro, tmp_path, write_manifest):
    path = speech_manifest(write_manifest, tmp_path, 1)
    journal = _noted_task(wiro, path, tmp_path / "out", submitted_ago_s=7200)  # older than the task timeout
    import time

    while not all(t.finished for t in wiro.tasks.values()):  # it finished while no run was watching
        time.sleep(0.05)
    state = run(path, tmp_path / "out")
    assert state.is_completed(), state.message
    assert len(wiro.runs) == 1  # only the noted one
    (task,) = wiro.tasks.values()
    assert not task.killed
    (row,) = results_by_id(tmp_path / "out", "speech").values()
    assert (row["status"], row["task_id"]) == ("done", task.taskid)
    assert not journal.path.exists()


def test_refused_credentials_while_resuming_keep_the_note(wiro, monkeypatch, tmp_path, write_manifest):
    path = speech_manifest(write_manifest, tmp_path, 1)
    journal = _noted_task(wiro, path, tmp_path / "out")
    monkeypatch.setenv("WIRO_API_SECRET", "a-wrong-secret-000000")
    assert run(path, tmp_path / "out").is_failed()
    assert journal.path.exists()  # the paid task is still ours to collect
    monkeypatch.setenv("WIRO_API_SECRET", SECRET)
    assert run(path, tmp_path / "out").is_completed()
    assert len(wiro.runs) == 1 and not journal.path.exists()


def test_a_run_request_without_a_clear_answer_is_not_resubmitted(wiro, monkeypatch, tmp_path, write_manifest):
    monkeypatch.setenv("WIRO_REQUEST_TIMEOUT_S", "0.3")
    wiro.slow_s = 1.0
    wiro.inject("run_timeout", 1)
    state = run(speech_manifest(write_manifest, tmp_path, 1), tmp_path / "out")
    assert state.is_failed()
    (row,) = results_by_id(tmp_path / "out", "speech").values()
    assert row["attempts"] == 1 and "check Wiro before rerunning" in row["error"]


@BOTH_SHAPES
def test_clips_are_cut_into_one_video_with_the_song_under_them(wiro, tmp_path, write_manifest):
    assets = tmp_path / "assets"
    shutil.copytree(MANIFESTS / "images", assets / "images")
    manifest = write_manifest(
        """
id,kind,lyrics,image,prompt,seed
tune,song,"[verse] la la [chorus] oh",,,3
c1,video,,assets/images/lighthouse.png,"The lamp comes on. <AUDCAP>waves<ENDAUDCAP>",5
c2,video,,assets/images/lighthouse.png,"The beam sweeps the sea. <AUDCAP>wind<ENDAUDCAP>",6
""",
        name="cut",
        sidecar='profiles = ["video"]\n[video]\ntrack = "tune"\nmode = "mix"\n',
    )
    out = tmp_path / "out"
    state = run(manifest, out)
    assert state.is_completed(), state.message
    video = probe(out / "cut" / "video" / "cut.mp4")
    assert video.video_codec == "h264" and video.audio_codec == "aac"
    assert video.duration_s == pytest.approx(4.0, abs=0.15)  # two 2 s clips from the emulator
    qc = json.loads((out / "cut" / "qc.json").read_text())
    assert qc["profiles"]["video"]["ok"] and qc["profiles"]["video"]["files"][0]["path"] == "video/cut.mp4"


@pytest.mark.parametrize("wiro", ["model_page"], indirect=True)
def test_finished_tasks_without_an_exit_code_are_successes_paid_once(wiro, monkeypatch, tmp_path, write_manifest):
    """Answered as the model pages show Detail (no pexit, no totalcost), every row is one paid Run."""
    state = run(speech_manifest(write_manifest, tmp_path, 2), tmp_path / "out")
    assert state.is_completed(), state.message
    assert len(wiro.runs) == 2 and all(
        r["status"] == "done" for r in results_by_id(tmp_path / "out", "speech").values()
    )
    summary = json.loads((tmp_path / "out" / "speech" / "summary.json").read_text())
    assert summary["cost_not_reported"] == 2 and summary["cost_usd"] == 0

    monkeypatch.setenv("MEDIAMILL_PRICES", '{"wiro:openbmb/voxcpm": {"per_request": 0.002, "per_1k_chars": 0.01}}')
    state = run(speech_manifest(write_manifest, tmp_path, 3, name="priced"), tmp_path / "out")
    assert state.is_completed(), state.message
    priced = results_by_id(tmp_path / "out", "priced")["s2"]
    text = "Line number 2 spoken by the hosted model."
    assert priced["cost_source"] == "price table" and priced["cost_usd"] == pytest.approx(
        0.002 + 0.01 * len(text) / 1000
    )


@BOTH_SHAPES
def test_a_finished_task_without_usable_output_fails_with_its_id_and_is_not_resubmitted(wiro, tmp_path, write_manifest):
    wiro.inject("task_no_outputs", 1)
    state = run(speech_manifest(write_manifest, tmp_path, 1), tmp_path / "out")
    assert state.is_failed()
    (row,) = results_by_id(tmp_path / "out", "speech").values()
    (task,) = wiro.tasks.values()
    assert len(wiro.runs) == 1  # its retries looked at the same task again; none paid for another
    assert task.taskid in row["error"] and "not submitted again" in row["error"]
    assert list((tmp_path / "out" / ".store" / "journal").glob("*.json"))  # a rerun (a nightly sweep) cannot pay again
    assert run(speech_manifest(write_manifest, tmp_path, 1), tmp_path / "out").is_failed() and len(wiro.runs) == 1


def test_a_failed_task_that_was_billed_is_not_submitted_again(wiro, tmp_path, write_manifest):
    wiro.inject("task_pexit1_billed", 1)
    state = run(speech_manifest(write_manifest, tmp_path, 1), tmp_path / "out")
    assert state.is_failed()
    (row,) = results_by_id(tmp_path / "out", "speech").values()
    assert len(wiro.runs) == 1 and row["attempts"] == 1 and "billed" in row["error"] and "pexit 1" in row["error"]
