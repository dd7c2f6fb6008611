"""Self-tests of the Wiro and Pixazo emulators, driven with plain httpx (not mediamill's clients)."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time

import httpx
import pytest

from tests.helpers.emulators.pixazo import PixazoEmulator
from tests.helpers.emulators.server import sample_media
from tests.helpers.emulators.wiro import WiroEmulator

KEY, SECRET = "wiro-test-key-0123456789", "wiro-test-secret-abcdefghij"
SIGNATURE_REQUIRED = "Project requires signature authentication. x-signature and x-nonce headers are required."
TERMINAL = {"task_postprocess_end", "task_cancel"}
SEQUENCE = [
    "task_queue",
    "task_accept",
    "task_assign",
    "task_start",
    "task_output",
    "task_end",
    "task_postprocess_start",
    "task_postprocess_end",
]


def signed(nonce: str = "1734513809", key: str = KEY, secret: str = SECRET) -> dict:
    # computed here independently of the emulator: HMAC key = API key, message = secret + nonce
    return {
        "x-api-key": key,
        "x-nonce": nonce,
        "x-signature": hmac.new(key.encode(), (secret + nonce).encode(), hashlib.sha256).hexdigest(),
    }


@pytest.fixture
def wiro(request):
    # A test marked slow_tasks gets runs long enough that its mid-run states last well over the
    # poll interval of a busy CI machine.
    run_s = 1.0 if request.node.get_closest_marker("slow_tasks") else 0.2
    with WiroEmulator(queue_s=0.05, run_s=run_s, slow_s=1.0) as emu:
        with httpx.Client(base_url=emu.url, headers=signed(), timeout=5) as client:
            emu.client = client
            yield emu


def run(emu, model="openbmb/voxcpm", **inputs) -> dict:
    return emu.client.post(f"/Run/{model}", json=inputs or {"prompt": "Hello there."}).json()


def detail(emu, taskid: str) -> dict:
    answer = emu.client.post("/Task/Detail", json={"taskid": taskid}).json()
    assert answer["result"] is True, answer
    return answer["tasklist"][0]


def poll(emu, taskid: str, until=TERMINAL, timeout: float = 3.0) -> list[str]:
    """Distinct statuses seen, in order, until one in `until` (or task_error when asked)."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = detail(emu, taskid)["status"]
        if not seen or seen[-1] != status:
            seen.append(status)
        if status in until:
            return seen
        time.sleep(0.005)
    raise AssertionError(f"task {taskid} still at {seen} after {timeout}s")


# ---------------------------------------------------------------------------------------------
# Wiro: auth and routing


def test_wiro_signature_accepted_and_refused(wiro):
    assert run(wiro)["result"] is True
    raw = httpx.Client(base_url=wiro.url, timeout=5)
    cases = [
        (signed(secret="wrong-secret"), "Project authorization is not valid."),
        ({**signed(), "x-nonce": "999"}, "Project authorization is not valid."),  # signature of another nonce
        (signed(key="unknown-key"), "Project authorization is not founded."),
        ({}, "Project authorization is not founded."),
        ({"x-api-key": KEY}, SIGNATURE_REQUIRED),
    ]
    for headers, message in cases:
        r = raw.post("/Run/openbmb/voxcpm", json={"prompt": "hi"}, headers=headers)
        assert r.status_code == 401
        assert r.json() == {"result": False, "errors": [{"code": 0, "message": message}]}
    r = raw.post("/Nope/Nothing", headers=signed())
    assert r.status_code == 404 and r.json()["errors"][0] == {"code": 0, "message": "Error parsing url."}
    assert [op for op, _ in wiro.requests] == ["Run"] * 6
    assert len(wiro.runs) == 1 and wiro.runs[0]["taskid"]  # refused credentials never reach the project


def test_wiro_key_only_project():
    with WiroEmulator(api_secret=None, queue_s=0.05, run_s=0.1) as emu:
        ok = httpx.post(f"{emu.url}/Run/openbmb/voxcpm", json={"prompt": "hi"}, headers={"x-api-key": KEY})
        assert ok.status_code == 200 and ok.json()["result"] is True
        bad = httpx.post(f"{emu.url}/Run/openbmb/voxcpm", json={"prompt": "hi"}, headers={"x-api-key": "nope"})
        assert bad.status_code == 401
        assert bad.json()["errors"][0]["message"] == "Project authorization is not founded."


# ---------------------------------------------------------------------------------------------
# Wiro: tasks


def test_wiro_task_lifecycle_and_download(wiro):
    answer = run(wiro, prompt="Hello there.", cfgValue=2.0)
    assert answer["result"] is True and answer["errors"] == []
    assert answer["taskid"].isdigit() and len(answer["socketaccesstoken"]) == 30
    assert answer["socketaccesstoken"].isalnum()
    taskid = answer["taskid"]

    first = detail(wiro, taskid)
    assert first["status"] == "task_queue"
    assert (first["pexit"], first["starttime"], first["endtime"]) == ("", "", "")
    assert (first["elapsedseconds"], first["totalcost"], first["outputs"]) == ("0", "0", [])

    seen = poll(wiro, taskid)
    assert seen[0] == "task_queue" and seen[-1] == "task_postprocess_end"
    assert seen == [s for s in SEQUENCE if s in seen]  # in documented order, nothing else
    assert "task_start" in seen or "task_output" in seen

    # the token works as well as the id, and every scalar is a string
    by_token = wiro.client.post("/Task/Detail", json={"tasktoken": answer["socketaccesstoken"]}).json()
    assert by_token["total"] == "1"
    task = by_token["tasklist"][0]
    assert task["id"] == taskid and task["pexit"] == "0" and task["elapsedseconds"] == "0.2000"
    assert float(task["totalcost"]) == pytest.approx(0.0123)
    assert int(task["endtime"]) >= int(task["starttime"]) > 0
    assert (task["modelslugowner"], task["modelslugproject"]) == ("openbmb", "voxcpm")
    assert task["parameters"] == {"prompt": "Hello there.", "cfgValue": 2.0}
    for field in ("id", "status", "pexit", "starttime", "endtime", "elapsedseconds", "totalcost"):
        assert isinstance(task[field], str)
    (output,) = task["outputs"]
    assert output["name"] == "0.wav" and output["contenttype"] == "audio/wav"

    r = httpx.get(output["url"])
    assert r.status_code == 200 and r.content == sample_media("wav")
    assert r.headers["content-type"] == "audio/wav" and r.headers["content-length"] == output["size"]
    assert wiro.tasks[taskid].status == "task_postprocess_end" and wiro.tasks[taskid].pexit == "0"
    assert wiro.detail_count(taskid) >= 2
    assert ("Download", taskid) in wiro.requests
    assert wiro.balance_usd == pytest.approx(100 - 0.0123)

    gone = wiro.client.post("/Task/Detail", json={"taskid": "1"}).json()
    assert gone == {"result": False, "errors": [{"code": 1, "message": "There is no task yet."}]}


def test_wiro_models_validation_and_multipart(wiro):
    mixed = wiro.client.post("/Run/openbmb/VoxCPM", json={"prompt": "hi"}).json()
    assert mixed["result"] is True and wiro.runs[-1]["model"] == "openbmb/voxcpm"
    assert run(wiro, "someone/else", prompt="x")["errors"][0] == {"code": 1, "message": "slug-owner-project-not-exist"}
    assert run(wiro, "openbmb/voxcpm", cfgValue=2)["errors"][0]["message"] == "Request parameter [prompt] required"
    song = "wiro/text-to-song-with-reference-yue"
    assert run(wiro, song, prompt="no tags here")["result"] is False
    assert run(wiro, song, prompt="[verse]\nLa la\n\n[chorus]\nOh")["result"] is True
    assert run(wiro, "chetwinlow1/ovi", prompt="koala")["errors"][0]["code"] == 0
    assert run(wiro, "chetwinlow1/ovi", inputImage="https://x.test/a.jpg", resolution="1x1")["result"] is False
    assert run(wiro, "chetwinlow1/ovi", inputImage="https://x.test/a.jpg", resolution="720x720")["result"] is True

    image = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4 + b"\r\n--not-a-boundary\r\n"
    r = wiro.client.post(
        "/Run/chetwinlow1/ovi",
        data={"prompt": "A koala says hi", "resolution": "default"},
        files={"inputImage": ("koala.png", image, "image/png")},
    ).json()
    assert r["result"] is True
    last = wiro.runs[-1]
    assert last["files"] == {"inputImage": image}
    assert last["inputs"] == {"prompt": "A koala says hi", "resolution": "default"}
    assert last["taskid"] == r["taskid"] and wiro.tasks[r["taskid"]].model == "chetwinlow1/ovi"
    assert detail(wiro, r["taskid"])["parameters"]["inputImage"] == "koala.png"
    poll(wiro, r["taskid"])
    out = detail(wiro, r["taskid"])
    assert out["outputs"][0]["contenttype"] == "video/mp4"
    assert httpx.get(out["outputs"][0]["url"]).content == sample_media("mp4")


def test_wiro_cancel_queued_and_kill_running():
    with WiroEmulator(queue_s=5, run_s=0.2) as emu, httpx.Client(base_url=emu.url, headers=signed()) as client:
        taskid = client.post("/Run/openbmb/voxcpm", json={"prompt": "hi"}).json()["taskid"]
        kill = client.post("/Task/Kill", json={"taskid": taskid}).json()
        assert kill["result"] is False and kill["errors"][0]["message"].startswith("Task could not be killed: ")
        ok = client.post("/Task/Cancel", json={"taskid": taskid}).json()
        assert ok == {"result": True, "errors": [], "tasklist": []}
        task = client.post("/Task/Detail", json={"taskid": taskid}).json()["tasklist"][0]
        assert task["status"] == "task_cancel" and task["totalcost"] == "0"
        assert emu.tasks[taskid].cancelled and not emu.tasks[taskid].killed
        again = client.post("/Task/Cancel", json={"taskid": taskid}).json()
        assert again["errors"][0] == {"code": 1, "message": "Task is not in a cancellable state."}
        assert emu.balance_usd == pytest.approx(100.0)  # not billed

    with WiroEmulator(queue_s=0, run_s=60) as emu, httpx.Client(base_url=emu.url, headers=signed()) as client:
        answer = client.post("/Run/openbmb/voxcpm", json={"prompt": "hi"}).json()
        taskid, token = answer["taskid"], answer["socketaccesstoken"]
        time.sleep(0.2)  # the hand-off steps are short even when the run is long
        assert emu.tasks[taskid].status == "task_output"
        refused = client.post("/Task/Cancel", json={"taskid": taskid}).json()
        assert refused["errors"][0]["message"] == "Task is not in a cancellable state."
        assert client.post("/Task/Kill", json={"socketaccesstoken": token}).json()["result"] is True
        task = client.post("/Task/Detail", json={"taskid": taskid}).json()["tasklist"][0]
        assert (task["status"], task["totalcost"], task["outputs"]) == ("task_cancel", "0", [])
        assert emu.tasks[taskid].killed
        assert [op for op, _ in emu.requests] == ["Run", "Cancel", "Kill", "Detail"]


def test_wiro_concurrency_and_balance_limits():
    with WiroEmulator(queue_s=5, max_concurrent=1) as emu, httpx.Client(base_url=emu.url, headers=signed()) as c:
        assert c.post("/Run/openbmb/voxcpm", json={"prompt": "a"}).json()["result"] is True
        busy = c.post("/Run/openbmb/voxcpm", json={"prompt": "b"}).json()
        assert busy["errors"][0]["code"] == 96
        assert busy["errors"][0]["message"].startswith("You have reached your concurrent task limit.")
        assert emu.runs[-1]["taskid"] is None
    with WiroEmulator(balance_usd=0.01) as emu, httpx.Client(base_url=emu.url, headers=signed()) as c:
        poor = c.post("/Run/openbmb/voxcpm", json={"prompt": "a"}).json()
        assert poor == {"result": False, "errors": [{"code": 97, "message": "Insufficient balance"}]}


# ---------------------------------------------------------------------------------------------
# Wiro: faults


def test_wiro_counts_the_most_tasks_in_flight_at_once():
    durations = {"a": (0.0, 0.4), "b": (0.1, 0.4), "c": (0.0, 5.0), "d": (0.0, 5.0)}
    with WiroEmulator(durations=lambda model, inputs: durations[inputs["prompt"]]) as emu:
        with httpx.Client(base_url=emu.url, headers=signed(), timeout=5) as c:
            for prompt in ("a", "b"):  # overlapping: two at once
                assert c.post("/Run/openbmb/voxcpm", json={"prompt": prompt}).json()["result"] is True
            assert emu.active == 2
            time.sleep(0.7)  # both finished
            assert emu.active == 0 and emu.peak_active() == 2
            c_id = c.post("/Run/openbmb/voxcpm", json={"prompt": "c"}).json()["taskid"]
            time.sleep(0.2)  # running (past task_accept): Kill stops it, and its interval ends there
            assert c.post("/Task/Kill", json={"taskid": c_id}).json()["result"] is True
            c.post("/Run/openbmb/voxcpm", json={"prompt": "d"})
            assert emu.active == 1 and emu.peak_active() == 2  # c ended before d began


def test_wiro_run_faults(wiro):
    wiro.inject("run_http500")
    wiro.inject("run_code96")
    wiro.inject("run_code97")
    r = wiro.client.post("/Run/openbmb/voxcpm", json={"prompt": "hi"})
    assert r.status_code == 500
    with pytest.raises(ValueError):
        r.json()
    assert run(wiro)["errors"][0]["code"] == 96
    assert run(wiro)["errors"][0] == {"code": 97, "message": "Insufficient balance"}
    assert run(wiro)["result"] is True  # faults are used up
    assert [r["taskid"] is None for r in wiro.runs] == [True, True, True, False]


def test_wiro_detail_faults(wiro):
    taskid = run(wiro)["taskid"]
    wiro.inject("detail_http500")
    assert wiro.client.post("/Task/Detail", json={"taskid": taskid}).status_code == 500
    wiro.inject("detail_malformed")
    r = wiro.client.post("/Task/Detail", json={"taskid": taskid})
    assert r.status_code == 200 and r.text.startswith('{"result": true')
    with pytest.raises(json.JSONDecodeError):
        json.loads(r.text)

    # detail_timeout delays that answer only: another request is answered meanwhile
    wiro.inject("detail_timeout")
    slow: dict = {}

    def slow_detail():
        start = time.monotonic()
        slow["answer"] = httpx.post(f"{wiro.url}/Task/Detail", json={"taskid": taskid}, headers=signed(), timeout=5)
        slow["took"] = time.monotonic() - start

    thread = threading.Thread(target=slow_detail)
    thread.start()
    # The slow request must reach the emulator (and take the fault) before the fast one is sent: on a loaded
    # machine the thread may start late, and then the fast request would take the fault instead.
    deadline = time.monotonic() + 30
    while wiro.detail_count(taskid) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert wiro.detail_count(taskid) == 3
    assert detail(wiro, taskid)["id"] == taskid
    # Answered while the slow one still waits (a clock would measure the machine's load, not the emulator).
    assert thread.is_alive()
    thread.join()
    assert slow["took"] >= 0.9 and slow["answer"].json()["result"] is True
    assert wiro.detail_count(taskid) == 4


def test_wiro_download_faults(wiro):
    taskid = run(wiro)["taskid"]
    poll(wiro, taskid)
    url = detail(wiro, taskid)["outputs"][0]["url"]
    wiro.inject("download_http500")
    assert httpx.get(url).status_code == 500
    wiro.inject("download_broken")
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(url)
    assert httpx.get(url).content == sample_media("wav")


def test_wiro_task_pexit1_and_fatal_error(wiro):
    wiro.inject("task_pexit1")
    wiro.inject("task_fatal_error")
    failed, fatal, fine = run(wiro)["taskid"], run(wiro)["taskid"], run(wiro)["taskid"]

    assert poll(wiro, failed)[-1] == "task_postprocess_end"
    task = detail(wiro, failed)
    assert (task["pexit"], task["outputs"], task["totalcost"]) == ("1", [], "0") and task["debugerror"]

    seen = poll(wiro, fatal, until={"task_error"})
    assert seen[-1] == "task_error" and "task_start" not in seen
    time.sleep(0.3)  # it stays failed
    task = detail(wiro, fatal)
    assert (task["status"], task["pexit"], task["totalcost"]) == ("task_error", "1", "0") and task["debugerror"]

    poll(wiro, fine)
    assert detail(wiro, fine)["pexit"] == "0"
    assert wiro.balance_usd == pytest.approx(100 - 0.0123)  # only the good task is billed


@pytest.mark.slow_tasks
def test_wiro_task_service_cancel_interim_errors_and_stuck(wiro):
    # Each task is created just before it is watched: its life runs on the clock from creation,
    # so a slow machine watching one task must not miss another's interim states.
    wiro.inject("task_service_cancel")
    cancelled = run(wiro)["taskid"]
    seen = poll(wiro, cancelled)
    assert seen[-1] == "task_cancel" and ("task_start" in seen or "task_output" in seen)
    assert detail(wiro, cancelled)["totalcost"] == "0"
    assert not wiro.tasks[cancelled].cancelled and not wiro.tasks[cancelled].killed

    wiro.inject("task_interim_errors")
    noisy = run(wiro)["taskid"]
    seen = poll(wiro, noisy)
    assert "task_error" in seen and seen[-1] == "task_postprocess_end"
    assert seen.index("task_error") < seen.index("task_postprocess_end")
    assert detail(wiro, noisy)["pexit"] == "0"

    wiro.inject("task_stuck")
    stuck = run(wiro)["taskid"]
    time.sleep(2.1)  # twice its queue + run time
    assert detail(wiro, stuck)["status"] == "task_start" and wiro.tasks[stuck].status == "task_start"
    assert wiro.client.post("/Task/Kill", json={"taskid": stuck}).json()["result"] is True
    assert detail(wiro, stuck)["status"] == "task_cancel"


def test_wiro_upload(wiro):
    data = sample_media("mp3")
    answer = wiro.client.post("/File/Upload", files={"file": ("ref.mp3", data, "audio/mpeg")}).json()
    assert answer["result"] is True
    (item,) = answer["list"]
    assert set(item) == {"id", "name", "contenttype", "size", "parentid", "url", "addedtime", "accesskey"}
    assert item["name"] == "ref.mp3" and item["size"] == str(len(data))
    assert wiro.uploads == {item["url"]: data}
    assert httpx.get(item["url"]).content == data


def test_wiro_rejects_unknown_fault():
    with pytest.raises(ValueError):
        WiroEmulator().inject("no_such_fault")


# ---------------------------------------------------------------------------------------------
# Pixazo

PIXAZO_KEY = {"Ocp-Apim-Subscription-Key": "pixazo-test-key-0123456789"}


@pytest.fixture
def pixazo():
    with PixazoEmulator(latency_s=0.01, slow_s=1.0) as emu:
        with httpx.Client(base_url=emu.url + "/voxcpm/v1", headers=PIXAZO_KEY, timeout=5) as client:
            emu.client = client
            yield emu


def test_pixazo_text_to_speech_and_voice_cloning(pixazo):
    r = pixazo.client.post("/text-to-speech", json={"text": "(calm) Hello.", "cfg_value": 2.0, "dit_steps": 10})
    assert r.status_code == 200 and set(r.json()) == {"output"}
    wav = httpx.get(r.json()["output"])
    assert wav.content == sample_media("wav") and wav.headers["content-type"] == "audio/wav"

    body = {"text": "Hello.", "reference_audio_url": "https://x.test/ref.wav", "prompt_text": "Hi."}
    answer = pixazo.client.post("/voice-cloning", json=body).json()
    assert answer["url"] == answer["audio_url"] and answer["sample_rate"] == 48000
    assert answer["status"] == "success" and isinstance(answer["elapsed_s"], float)
    assert httpx.get(answer["url"]).content == sample_media("wav")
    assert pixazo.requests == [
        ("text-to-speech", {"text": "(calm) Hello.", "cfg_value": 2.0, "dit_steps": 10}),
        ("voice-cloning", body),
    ]
    assert pixazo.downloads == 2


def test_pixazo_auth_and_validation(pixazo):
    for headers in ({}, {"Ocp-Apim-Subscription-Key": "wrong"}):
        r = httpx.post(f"{pixazo.url}/voxcpm/v1/text-to-speech", json={"text": "hi"}, headers=headers)
        assert r.status_code == 401 and r.json()["statusCode"] == 401
    assert r.json()["message"].startswith("Access denied due to invalid subscription key.")
    for op, body in [
        ("text-to-speech", {}),
        ("text-to-speech", {"text": "hi", "cfg_value": 3.5}),
        ("text-to-speech", {"text": "hi", "dit_steps": 2}),
        ("voice-cloning", {"text": "hi"}),
    ]:
        r = pixazo.client.post(f"/{op}", json=body)
        assert r.status_code == 400 and isinstance(r.json()["error"], str), (op, body)
    assert len(pixazo.requests) == 6


@pytest.mark.parametrize(
    "fault, status",
    [
        ("http400", 400),
        ("http401", 401),
        ("http402", 402),
        ("http403", 403),
        ("http429", 429),
        ("http500", 500),
        ("http502", 502),
    ],
)
def test_pixazo_status_faults(pixazo, fault, status):
    pixazo.inject(fault)
    r = pixazo.client.post("/text-to-speech", json={"text": "hi"})
    assert r.status_code == status
    if fault == "http402":
        assert r.json() == {"error": "Insufficient credits"}
    if fault == "http429":
        assert r.headers["retry-after"] == "0.1" and r.json()["statusCode"] == 429
    assert pixazo.client.post("/text-to-speech", json={"text": "hi"}).status_code == 200


def test_pixazo_malformed_timeout_and_download_faults(pixazo):
    pixazo.inject("malformed")
    r = pixazo.client.post("/voice-cloning", json={"text": "hi", "reference_audio_url": "https://x.test/r.wav"})
    assert r.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(r.text)

    pixazo.inject("timeout")
    with pytest.raises(httpx.ReadTimeout):
        pixazo.client.post("/text-to-speech", json={"text": "hi"}, timeout=0.3)

    url = pixazo.client.post("/text-to-speech", json={"text": "hi"}).json()["output"]
    pixazo.inject("download_404")
    assert httpx.get(url).status_code == 404
    pixazo.inject("download_broken")
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(url)
    assert httpx.get(url).content == sample_media("wav")
    assert pixazo.downloads == 3
