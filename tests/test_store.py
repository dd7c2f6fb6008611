"""The content-addressed store and atomic writes."""

from __future__ import annotations

import pytest

from mediamill.core.files import atomic_path
from mediamill.core.redact import error_line, redact
from mediamill.report import RowResult, read_results, write_results
from mediamill.store import Store


def test_put_then_get_and_partial_entries_are_ignored(tmp_path):
    store = Store(tmp_path)
    key = "ab" + "0" * 62
    with store.workdir(key) as work:
        media = work / "x.wav"
        media.write_bytes(b"data" * 100)
        entry = store.put(key, media, {"duration_s": 1.5})
    assert not any(store.tmp.iterdir())  # scratch removed
    got = store.get(key)
    assert got is not None and got.path == entry.path and got.duration_s == 1.5
    entry.path.write_bytes(b"truncated")  # size no longer matches the record
    assert store.get(key) is None
    entry.path.with_suffix(".json").write_text("{not json")
    assert store.get(key) is None


def test_atomic_path_keeps_the_old_file_when_writing_fails(tmp_path):
    dest = tmp_path / "out.txt"
    dest.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(dest) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert dest.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def _row(**kw) -> RowResult:
    base = dict(
        id="r1", row=1, kind="tts", chapter=None, backend="piper", model="m", status="done", attempts=1,
        error=None, output="segments/r1.wav", audio_s=1.0, sample_rate=22050, elapsed_s=0.5, compute_s=0.4,
        queue_s=None, cost_usd=0.0, cost_source="free", task_id=None, key="k", created_at="2026-01-01T00:00:00+00:00",
    )  # fmt: skip
    base.update(kw)
    return RowResult(**base)


def test_results_csv_escapes_formulas_and_parquet_round_trips(tmp_path):
    write_results(tmp_path, [_row(chapter="=HYPERLINK(\"http://x\")", error="-oops")])
    text = (tmp_path / "results.csv").read_text()
    assert "'=HYPERLINK" in text and ",'-oops," in text
    (row,) = read_results(tmp_path)
    assert row["chapter"] == '=HYPERLINK("http://x")'  # parquet keeps the value as written


def test_secrets_from_the_environment_are_masked(monkeypatch):
    monkeypatch.setenv("WIRO_API_KEY", "sk-live-1234567890")
    assert redact("auth failed for sk-live-1234567890") == "auth failed for ***"
    assert error_line(ValueError("key sk-live-1234567890\nsecond line")) == "ValueError: key *** second line"
