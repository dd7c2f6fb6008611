"""Verification in the pipeline: real pocketsphinx on real Piper takes, retakes until a take says its text,
rows that never do, stored takes checked later, the lexicon, and the verdict in results, store and UI."""

from __future__ import annotations

import asyncio
import json

import pytest

from mediamill.manifest import ManifestError
from mediamill.plan import validate
from mediamill.store import Store
from tests.helpers.runs import results_by_id, run

pytestmark = pytest.mark.usefixtures("prefect_api", "fast_retries")

MISREADING = "tests.helpers.fakes:MisreadingPiperBackend"
NOISELESS = '"{""noise_scale"": 0, ""noise_w_scale"": 0}"'


@pytest.fixture
def verifying(monkeypatch):
    monkeypatch.setenv("MEDIAMILL_VERIFY", "pocketsphinx")


async def _task_runs(flow_run_id, prefix: str) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async with get_client() as client:
        runs = await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return [r.name for r in runs if r.name.startswith(prefix)]


def test_piper_takes_are_verified_and_timed_word_by_word(verifying, write_manifest, tmp_path):
    manifest = write_manifest(
        "id,text,options\n"
        f"a,The lamp was lit at dusk.,{NOISELESS}\n"
        f'b,"Then, at 9 o\'clock, the street went dark again.",{NOISELESS}\n'
    )
    out = tmp_path / "out"
    state = run(manifest, out, "piper")
    assert state.is_completed(), state.message
    rows = results_by_id(out, "book")
    for r in rows.values():
        assert r["verified"] == "pass" and r["verify_engine"].startswith("pocketsphinx 5.")
        assert r["retakes"] == 0 and r["wer"] == 0 and r["missing"] is None
    store = Store(out)
    job = validate(manifest, "piper").jobs[1]
    entry = store.get(job.key)
    words = json.loads(store.extra(entry, "words.json").read_text())["words"]
    assert [w["word"] for w in words][:4] == ["then", "at", "nine", "o'clock"]
    assert all(0 <= w["start_s"] < w["end_s"] <= entry.duration_s + 0.02 for w in words)  # 10 ms frames
    assert all(a["end_s"] <= b["start_s"] + 1e-6 for a, b in zip(words, words[1:]))
    detail = json.loads(store.extra(entry, "verify.json").read_text())
    assert detail["verified"] == "pass" and detail["pieces"][0]["engine"] == "pocketsphinx"


def test_a_take_that_misreads_is_taken_again_until_one_says_its_text(verifying, write_manifest, tmp_path):
    manifest = write_manifest("id,text,options\na,The lighthouse keeper climbed the stairs at dusk.,\n")
    out = tmp_path / "out"
    state = run(manifest, out, MISREADING)
    assert state.is_completed(), state.message
    (row,) = results_by_id(out, "book").values()
    assert (row["status"], row["verified"], row["retakes"]) == ("done", "pass", 1)
    assert row["cost_usd"] == pytest.approx(0.02)  # both takes were paid for
    assert row["task_id"] == "take-1"  # the kept take is the one that says the text
    names = asyncio.run(_task_runs(state.state_details.flow_run_id, "verify:"))
    assert sorted(names) == ["verify:tts:a", "verify:tts:a take 2"]  # each take's check is its own task run


def test_a_row_whose_every_take_misreads_fails_with_what_is_missing(verifying, write_manifest, tmp_path, monkeypatch):
    monkeypatch.setenv("MEDIAMILL_VERIFY_MAX_TAKES", "2")
    manifest = write_manifest(
        'id,text,options\na,The lighthouse keeper climbed the stairs at dusk.,"{""misreads"": 5}"\n'
    )
    out = tmp_path / "out"
    state = run(manifest, out, MISREADING)
    assert state.is_failed() and "1 of 1 rows failed" in state.message
    (row,) = results_by_id(out, "book").values()
    assert row["status"] == "failed" and row["verified"] == "fail" and row["retakes"] == 1
    assert row["cost_usd"] == pytest.approx(0.02) and row["attempts"] == 1  # retakes are not retried again
    assert "no take says its text after 2 take(s)" in row["error"] and "missing" in row["error"]

    monkeypatch.setenv("MEDIAMILL_VERIFY_KEEP_FAILED", "true")  # keep the best, flagged
    monkeypatch.setenv("MEDIAMILL_VERIFY_MAX_TAKES", "1")
    state = run(manifest, out, MISREADING)
    assert state.is_completed(), state.message
    (row,) = results_by_id(out, "book").values()
    assert row["status"] == "done" and row["verified"] == "fail" and row["missing"]
    qc = json.loads((out / "book" / "qc.json").read_text())
    (flagged,) = qc["verification"]["failed"]
    assert flagged["id"] == "a" and flagged["missing"] == row["missing"] and " s" in flagged["missing"]


def test_stored_takes_made_before_verification_are_checked_not_regenerated(write_manifest, tmp_path, monkeypatch):
    manifest = write_manifest(f"id,text,options\na,The lamp was lit at dusk.,{NOISELESS}\n")
    out = tmp_path / "out"
    assert run(manifest, out, "piper").is_completed()  # verification off
    (row,) = results_by_id(out, "book").values()
    assert row["verified"] is None
    before = Store(out).get(row["key"]).path.stat().st_mtime_ns
    monkeypatch.setenv("MEDIAMILL_VERIFY", "pocketsphinx")
    assert run(manifest, out, "piper").is_completed()
    (row,) = results_by_id(out, "book").values()
    assert (row["status"], row["verified"]) == ("cached", "pass")
    assert Store(out).get(row["key"]).path.stat().st_mtime_ns == before  # the media was not touched


def test_the_lexicon_decides_the_spoken_text_and_the_keys_of_exactly_the_rows_it_touches(write_manifest, tmp_path):
    (tmp_path / "names.csv").write_text("word,say,match,piper\nNguyen,win,,\nSiobhan,shiv awn,,ʃɪvˈɔːn\n")
    manifest = write_manifest(
        "id,text\na,Mister Nguyen waved.\nb,Siobhan smiled.\nc,Nobody else spoke.\n",
        sidecar='lexicon = "names.csv"\n',
    )
    jobs = {j.id: j for j in validate(manifest, "piper").jobs}
    assert jobs["a"].spec.params["text"] == "Mister win waved." and jobs["a"].spoken == "Mister win waved."
    assert jobs["b"].spec.params["text"] == "[[ ʃɪvˈɔːn ]] smiled."  # Piper takes the phonemes
    assert jobs["b"].spoken == "shiv awn smiled."  # verification hears the say form
    assert jobs["c"].spoken is None and jobs["a"].row.text == "Mister Nguyen waved."  # captions keep the text
    (tmp_path / "names.csv").write_text("word,say,match,piper\nNguyen,nwin,,\nSiobhan,shiv awn,,ʃɪvˈɔːn\n")
    changed = {j.id: j for j in validate(manifest, "piper").jobs}
    assert [i for i in "abc" if changed[i].key != jobs[i].key] == ["a"]  # one entry changed, one row regenerates


def test_a_bad_lexicon_is_reported_line_by_line(write_manifest, tmp_path):
    (tmp_path / "names.csv").write_text("word,say,accent\nNguyen,win,x\n")
    manifest = write_manifest("id,text\na,Hi.\n", sidecar='lexicon = "names.csv"\n')
    with pytest.raises(ManifestError, match="unknown column"):
        validate(manifest, "piper")
    (tmp_path / "names.csv").write_text("word,say,match\nNguyen,win,\nnguyen,wen,\n([a-z,oops,regex\n")
    with pytest.raises(ManifestError) as err:
        validate(manifest, "piper")
    text = str(err.value)
    assert "line 3" in text and "duplicate word 'nguyen'" in text and "line 4" in text and "does not compile" in text


def test_rows_in_a_language_the_recogniser_lacks_are_skipped_with_the_reason(verifying, write_manifest, tmp_path):
    manifest = write_manifest(f"id,text,language,options\na,Guten Abend.,de,{NOISELESS}\n")
    out = tmp_path / "out"
    assert run(manifest, out, "piper").is_completed()
    (row,) = results_by_id(out, "book").values()
    assert row["verified"] == "skipped"
    entry = Store(out).get(row["key"])
    assert "does not hear 'de'" in entry.meta["verify_reason"]


def test_the_verify_command_judges_any_takes_with_exit_codes_and_json_lines(tmp_path, capsys):
    from mediamill.cli import main
    from tests.helpers import verify_corpus as corpus
    from tests.helpers.verify_takes import LONG

    synth = corpus.Synth()
    takes = tmp_path / "takes"
    takes.mkdir()
    text = " ".join(LONG)
    for name, said in (("clean", text), ("short", LONG[0])):
        pcm, _ = synth.say(said, noise_scale=0.0, noise_w=0.0)
        corpus.write_wav(takes / f"{name}.wav", pcm, synth.rate)
    good = tmp_path / "good.csv"
    good.write_text(f'audio,text\ntakes/clean.wav,"{text}"\n')
    assert main(["verify", str(good), "--json"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    doc = json.loads(line)
    assert doc["audio"] == "takes/clean.wav" and doc["ok"] is True and doc["missing"] == [] and doc["extra"] == []

    mixed = tmp_path / "mixed.csv"
    mixed.write_text(f'audio,text,language\ntakes/clean.wav,"{text}",en\ntakes/short.wav,"{text}",en\n')
    assert main(["verify", str(mixed), "--json"]) == 1
    docs = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [d["ok"] for d in docs] == [True, False]
    assert "father" in docs[1]["missing"] and docs[1]["wer"] > 0.3

    bad = tmp_path / "bad.csv"
    bad.write_text("audio,text,speaker\ntakes/missing.wav,Hello.,x\n,Nothing.,y\n")
    assert main(["verify", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "column 'speaker': unknown" in err
    bad.write_text("audio,text\ntakes/missing.wav,Hello.\n,Nothing.\n")
    assert main(["verify", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "row 1 (line 2), column 'audio': file not found" in err and "row 2 (line 3), column 'audio': is empty" in err


SAME_FAULT = "tests.helpers.fakes:SameFaultPiperBackend"


def test_a_short_extra_sound_in_the_same_place_twice_is_kept_flagged_and_the_book_delivered(
    verifying, write_manifest, tmp_path
):
    """A deterministic engine's retake says what the first take said: stop after the repeat, keep the take
    (a short extra sound is worth a listen, not a failed book), flag it in results and qc."""
    manifest = write_manifest(
        "id,text,options\n"
        'a,"O Father! chiefly known, the keeper climbed the stairs.","{""insert"": ""exclamation"", ""at"": 2}"\n'
        "b,The lamp was lit at dusk.,\n"
    )
    out = tmp_path / "out"
    state = run(manifest, out, SAME_FAULT)
    assert state.is_completed(), state.message
    rows = results_by_id(out, "book")
    assert (rows["a"]["status"], rows["a"]["verified"], rows["a"]["retakes"]) == ("done", "flagged", 1)
    assert rows["a"]["extra"] and rows["a"]["cost_usd"] == pytest.approx(0.02)  # two takes, not three
    assert rows["b"]["verified"] == "pass"
    qc = json.loads((out / "book" / "qc.json").read_text())
    (flagged,) = qc["verification"]["failed"]
    assert flagged["id"] == "a" and flagged["verified"] == "flagged" and flagged["extra"] == rows["a"]["extra"]
    assert "flagged" in (out / "book" / "qc.md").read_text()
    assert list((out / "book").rglob("*.m4b")), "the book is delivered"


def test_words_missing_in_the_same_place_twice_fail_the_row_without_a_third_take(verifying, write_manifest, tmp_path):
    manifest = write_manifest(
        'id,text,options\na,The lighthouse keeper climbed the stairs at dusk and lit the lamp.,"{""drop"": 4}"\n'
    )
    out = tmp_path / "out"
    state = run(manifest, out, SAME_FAULT)
    assert state.is_failed()
    (row,) = results_by_id(out, "book").values()
    assert row["status"] == "failed" and row["retakes"] == 1 and row["cost_usd"] == pytest.approx(0.02)
    assert "after 2 take(s)" in row["error"] and "missing" in row["error"]
