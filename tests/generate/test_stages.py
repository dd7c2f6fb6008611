"""The stages `produce` is made of, each on its own, without Prefect: the run's records, the lanes, the
timeline, the table writer, and the registries (profiles, manifest suffixes) the rest reads from."""

from __future__ import annotations

import asyncio
import logging

import pytest

from mediamill.assemble import build_timeline
from mediamill.deliver import RUNNERS
from mediamill.generate import ProductionRun, RowOutcome, Slots, open_run, run_lanes
from mediamill.inbox import find_manifests
from mediamill.manifest import MANIFEST_SUFFIXES, ManifestError, load_manifest, read_table, write_table
from mediamill.plan import validate
from mediamill.profiles import PROFILES
from mediamill.store import Store
from tests.helpers.fakes import write_tone_wav

log = logging.getLogger("test")


def _store_row(store: Store, job, tmp_path, seconds: float):
    produced = write_tone_wav(tmp_path / f"{job.id}.wav", seconds)
    return store.put(
        job.key,
        produced,
        {"duration_s": seconds, "sample_rate": 16000, "compute_s": 1.5, "cost_usd": 0.02, "cost_source": "price table"},
    )


def test_a_run_records_stored_rows_as_cached_and_outcomes_as_done_or_failed(write_manifest, tmp_path):
    path = write_manifest("id,text\na,One line.\nb,Same words.\nc,Same words.\nd,Another line.\n")
    run = open_run(path, "silence", tmp_path / "out")
    a, b, c, d = run.plan.jobs
    _store_row(run.store, a, tmp_path, 0.5)

    waiting = run.record_stored()
    assert run.results["a"].status == "cached" and run.results["a"].cost_usd == 0.0
    assert (run.out_dir / "segments" / "a.wav").is_file()
    assert [[j.id for j in group] for group in waiting] == [["b", "c"], ["d"]]  # b and c share one key

    entry = _store_row(run.store, b, tmp_path, 0.7)
    done = run.record(RowOutcome([b, c], entry=entry, fresh=True, attempts=2, elapsed_s=1.25))
    assert [(r.id, r.status, r.attempts) for r in done] == [("b", "done", 2), ("c", "cached", 0)]
    assert done[0].cost_usd == 0.02 and done[1].cost_usd == 0.0

    assert run.unreached([[b, c]], "no slot") == []  # already recorded
    [missing] = run.unreached([[d]], "no slot")
    run.record(missing)
    assert run.results["d"].status == "failed" and run.results["d"].error == "no slot"
    assert [r.id for r in run.ordered()] == ["a", "b", "c", "d"]


def test_rows_never_reached_are_failed_in_the_ordered_results(write_manifest, tmp_path):
    run = open_run(write_manifest("id,text\na,One.\nb,Two.\n"), "silence", tmp_path / "out")
    ordered = run.ordered()
    assert [(r.status, r.error) for r in ordered] == [("failed", "cancelled before it finished")] * 2


def test_opening_a_run_refuses_a_bad_manifest_before_writing_anything(write_manifest, tmp_path):
    with pytest.raises(ManifestError):
        open_run(write_manifest("id,text\na,\n"), "silence", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_lanes_run_every_batch_within_each_backends_limit(write_manifest, tmp_path):
    plan = validate(write_manifest("id,text\n" + "".join(f"r{i},Line {i}.\n" for i in range(12))), "silence")
    batches = [[[job]] for job in plan.jobs]
    running = {"now": 0, "most": 0}
    ran: list[str] = []

    async def runner(groups, turn):
        running["now"] += 1
        running["most"] = max(running["most"], running["now"])
        await asyncio.sleep(0.01)
        running["now"] -= 1
        ran.append(groups[0][0].id)
        return None

    async def unreached(groups, message):
        raise AssertionError(message)

    asyncio.run(run_lanes(batches, {"silence": Slots("silence", 3)}, runner, unreached, log))
    assert sorted(ran) == sorted(j.id for j in plan.jobs)
    assert running["most"] == 3  # three lanes: the limit, never more


def test_a_batch_that_does_not_finish_fails_its_rows(write_manifest):
    plan = validate(write_manifest("id,text\na,One.\nb,Two.\n"), "silence")
    failed: list[tuple[str, str]] = []

    async def runner(groups, turn):
        return "the task crashed" if groups[0][0].id == "b" else None

    async def unreached(groups, message):
        failed.extend((g[0].id, message) for g in groups)

    asyncio.run(run_lanes([[[j]] for j in plan.jobs], {"silence": Slots("silence", 1)}, runner, unreached, log))
    assert failed == [("b", "the task crashed")]


def test_timeline_places_every_row_after_the_segments_and_pauses_before_it(write_manifest, tmp_path):
    path = write_manifest(
        "id,chapter,text,pause_after\na,One,First.,0.5\nb,,Second.,\nc,Two,Third.,\n",
        sidecar="chapter_pause = 2.0\npause_after = 0.25\n",
    )
    plan = validate(path, "silence")
    store = Store(tmp_path / "out")
    lengths = {"a": 1.0, "b": 2.0, "c": 3.0}
    entries = {j.key: _store_row(store, j, tmp_path, lengths[j.id]) for j in plan.jobs}
    timeline = build_timeline(plan, entries)
    one, two = timeline.chapters
    assert [(r.id, r.start_s, r.end_s) for r in one.rows] == [("a", 0.0, 1.0), ("b", 1.5, 3.5)]
    assert one.duration_s == 5.5  # b is the chapter's last row: chapter_pause follows it
    assert two.start_s == 5.5 and timeline.row("c").book_start_s == 5.5 and timeline.row("c").end_s == 3.0
    assert timeline.row("b").shift(0.25) == 1.75 and timeline.row("b").shift(0.25, in_book=True) == 1.75
    # A chapter with a row missing from the store has no audio to point into.
    partial = build_timeline(plan, {k: v for k, v in entries.items() if v.key != plan.jobs[2].key})
    assert [c.number for c in partial.chapters] == [1]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_written_manifests_load_back_as_written(tmp_path, suffix):
    rows = [{"id": "p1", "chapter": "One", "text": 'He said, "hello",\nthen left.'}, {"id": "p2", "text": "=1+1"}]
    path = write_table(tmp_path / f"book{suffix}", ["id", "chapter", "text"], rows)
    table, problems = read_table(path)
    assert problems == [] and table.columns == ["id", "chapter", "text"]
    assert [r["text"] for r in table.rows] == [rows[0]["text"], "=1+1"]
    manifest = load_manifest(path)
    assert manifest.problems == [] and [r.chapter for r in manifest.rows] == ["One", "One"]  # filled down
    assert not list(tmp_path.glob(".*partial*"))


def test_a_sweep_finds_every_kind_of_manifest_a_run_accepts(tmp_path):
    for suffix in MANIFEST_SUFFIXES:
        write_table(tmp_path / f"m{suffix.replace('.', '_')}{suffix}", ["id", "text"], [{"id": "a", "text": "Hi."}])
    assert sorted(p.suffix for p in find_manifests(tmp_path)) == sorted(MANIFEST_SUFFIXES)
    assert ".pq" in MANIFEST_SUFFIXES


def test_profiles_come_from_one_registry(write_manifest):
    from mediamill.cli import build_parser

    assert set(RUNNERS) == set(PROFILES)
    run = build_parser()._subparsers._group_actions[0].choices["run"]  # type: ignore[union-attr]
    profile_option = next(a for a in run._actions if a.dest == "profile")
    assert list(profile_option.choices) == list(PROFILES)
    with pytest.raises(ManifestError) as err:
        validate(write_manifest("id,text\na,Hi.\n", sidecar='profiles = ["audiobook", "vinyl"]\n'), "silence")
    assert "unknown delivery profile 'vinyl'" in str(err.value) and "'acx'" in str(err.value)
    with pytest.raises(ManifestError) as err:
        validate(write_manifest("id,text\na,Hi.\n", sidecar='profiles = ["video"]\n'), "silence")
    assert "profile 'video' needs video rows" in str(err.value)


def test_production_run_reports_its_folders(tmp_path, write_manifest):
    run = open_run(write_manifest("id,text\na,Hi.\n", name="novel"), "silence", tmp_path / "out")
    assert isinstance(run, ProductionRun) and run.out_dir == tmp_path / "out" / "novel"
    assert run.segments == run.out_dir / "segments" and run.name == "novel"


def test_stitching_leaves_other_writers_temporary_files_alone(write_manifest, tmp_path):
    """Another worker on the same manifest may be writing a chapter: its hidden temporary file is not stale."""
    from mediamill.assemble import stitch_book

    plan = validate(write_manifest("id,chapter,text\na,One,First.\nb,Two,Second.\n"), "silence")
    store = Store(tmp_path / "out")
    entries = {j.key: _store_row(store, j, tmp_path, 0.5) for j in plan.jobs}
    chapters = tmp_path / "out" / "book" / "chapters"
    chapters.mkdir(parents=True)
    theirs = chapters / ".02-two.1a2b3c4d.partial.flac"
    theirs.write_bytes(b"half a chapter")
    (chapters / "07-gone.flac").write_bytes(b"an old chapter")
    book = stitch_book(plan, entries, tmp_path / "out" / "book", store.tmp)
    assert len(book.chapters) == 2 and theirs.exists() and not (chapters / "07-gone.flac").exists()
