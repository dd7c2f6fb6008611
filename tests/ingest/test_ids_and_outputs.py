"""Stable ids across re-imports, the CSV writer, the sidecar, costs, the command line."""

from __future__ import annotations

import csv
import io
import json
import shutil

import pytest

from mediamill.cli import main
from mediamill.core.ids import check_safe_id
from mediamill.ingest import ImportOptions, import_manuscript
from mediamill.ingest.ids import assign_ids
from mediamill.manifest import write_table as write_manifest
from tests.helpers.epub_helpers import read_csv
from tests.helpers.ingest_books import epub3_book, paragraph


def _edit(paras):
    import random

    paras[2][1] = paras[2][1] + " One more sentence, added by the author."  # edit one paragraph
    paras[3].insert(2, paragraph(random.Random(99)))  # insert one
    del paras[4][1]  # delete one


def _ids_by_text(rows):
    return {r["text"]: r["id"] for r in rows}


@pytest.mark.parametrize("reuse", [True, False], ids=["previous-manifest", "scheme-only"])
def test_edit_insert_delete_keeps_every_other_id(tmp_path, reuse):
    before = read_csv(import_manuscript(epub3_book(tmp_path / "book.epub").path, tmp_path / "out").manifest)
    if not reuse:
        (tmp_path / "out" / "book.csv").unlink()
    after = read_csv(import_manuscript(epub3_book(tmp_path / "book.epub", edit=_edit).path, tmp_path / "out").manifest)
    old, new = _ids_by_text(before), _ids_by_text(after)
    unchanged = set(old) & set(new)
    assert len(unchanged) == len(before) - 2  # all but the edited and the deleted paragraph
    assert all(old[t] == new[t] for t in unchanged)
    assert len(set(new) - set(old)) == 2  # the edited and the inserted one have new ids
    ids = [r["id"] for r in after]
    assert len(ids) == len(set(ids))
    for row_id in ids:
        check_safe_id(row_id)


def test_ids_from_an_earlier_scheme_and_hand_edits_survive(tmp_path):
    src = epub3_book(tmp_path / "book.epub").path
    rows = read_csv(import_manuscript(src, tmp_path / "out").manifest)
    # A producer renames ids, sets a voice on one row and adds a row of their own.
    for n, row in enumerate(rows):
        row["id"] = f"legacy-{n:04d}"
    rows[3]["voice"] = "narrator"
    rows.insert(
        5,
        {
            "id": "producer-note",
            "chapter": "",
            "text": "A line the producer added.",
            "pause_after": "0.5",
            "source": "",
            "voice": "",
        },
    )
    columns = ["id", "chapter", "text", "pause_after", "source", "voice"]
    write_manifest(tmp_path / "out" / "book.csv", columns, rows)
    again = read_csv(import_manuscript(src, tmp_path / "out").manifest)
    assert [r["id"] for r in again] == [r["id"] for r in rows]
    assert again[3]["voice"] == "narrator"
    assert again[5]["text"] == "A line the producer added."


def test_repeated_texts_get_distinct_deterministic_ids():
    rows = [(1, "Yes."), (1, "No."), (1, "Yes."), (2, "Yes.")]
    ids, kept = assign_ids(rows)
    assert len(set(ids)) == 4 and kept == 0
    assert ids[2] == ids[0] + "-2" and ids[3].startswith("ch02-")
    assert assign_ids(rows)[0] == ids
    # previous ids that are unsafe are not reused
    ids2, kept2 = assign_ids(rows, [("../evil", "Yes."), ("ok-1", "No.")])
    assert "../evil" not in ids2 and ids2[1] == "ok-1" and kept2 == 1


def test_write_manifest_round_trips_through_csv(tmp_path):
    rows = [
        {"id": "a", "text": 'She said, "Go on, then."\nNew line; =SUM(A1)', "pause_after": 0.6},
        {"id": "b", "text": "caf\u00e9 \u2014 na\u00efve", "chapter": "One, Two"},
    ]
    path = tmp_path / "m.csv"
    write_manifest(path, ["id", "chapter", "text", "pause_after"], rows)
    back = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
    assert back[0]["text"] == rows[0]["text"] and back[0]["pause_after"] == "0.6" and back[0]["chapter"] == ""
    assert back[1]["chapter"] == "One, Two" and back[1]["text"] == rows[1]["text"]
    assert not path.read_bytes().startswith(b"\xef\xbb\xbf")


def test_write_manifest_is_atomic(tmp_path):
    path = tmp_path / "m.csv"
    write_manifest(path, ["id", "text"], [{"id": "a", "text": "old"}])

    def rows():
        yield {"id": "b", "text": "new"}
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_manifest(path, ["id", "text"], rows())
    assert read_csv(path) == [{"id": "a", "text": "old"}]
    assert [p.name for p in tmp_path.iterdir()] == ["m.csv"]  # no temp file left behind
    with pytest.raises(ValueError):
        write_manifest(path, ["id", "text"], [{"id": "a", "bogus": 1}])


def test_reimport_keeps_a_producers_sidecar_settings(tmp_path):
    import tomllib

    src = epub3_book(tmp_path / "book.epub").path
    result = import_manuscript(src, tmp_path / "out")
    text = result.sidecar.read_text().replace('title = "The Lantern Harbour"', 'title = "Lantern Harbour"')
    result.sidecar.write_text(text.replace("# narrator", 'narrator = "Joe"\n# was'))
    import_manuscript(src, tmp_path / "out")
    side = tomllib.loads(result.sidecar.read_text())
    assert side["title"] == "Lantern Harbour" and side["narrator"] == "Joe" and side["source"]["format"] == "epub3"


def test_cost_estimates_use_the_price_table_and_gpu_price(tmp_path, monkeypatch):
    from mediamill.backends.hosted import prices as hosted

    hosted._parse_prices.cache_clear()
    prices = {"pixazo": {"per_request": 0.01, "per_1k_chars": 0.5}, "voxcpm-http": {"per_request": 0.001}}
    monkeypatch.setenv("MEDIAMILL_PRICES", json.dumps(prices))
    monkeypatch.setenv("VOXCPM_PRICE_PER_HOUR", "3.6")
    monkeypatch.setenv("VOXCPM_HTTP_MAX_CHARS", "40")  # the backend's own piece size decides its requests
    src = epub3_book(tmp_path / "book.epub").path
    chosen = ("piper", "pixazo", "voxcpm", "wiro", "voxcpm-http", "no-such-engine")
    report = import_manuscript(src, tmp_path / "out", ImportOptions(backends=chosen)).report
    costs = {c.backend: c for c in report.costs}
    chars = sum(c.chars for c in report.chapters)
    assert costs["piper"].usd == 0.0
    assert costs["pixazo"].usd == pytest.approx(0.01 * report.rows + 0.5 * chars / 1000, abs=1e-3)
    speech = sum(c.predicted_s for c in report.chapters) - sum(
        float(r["pause_after"]) for r in read_csv(tmp_path / "out" / "book.csv")
    )
    assert costs["voxcpm"].usd == pytest.approx(speech / 1.45 / 3600 * 3.6, rel=0.02)
    assert costs["wiro"].usd is None and "reports" in costs["wiro"].basis
    http_requests = round(costs["voxcpm-http"].usd / 0.001)
    assert http_requests > report.rows and f"{http_requests} requests" in costs["voxcpm-http"].basis
    assert costs["no-such-engine"].usd is None and "unknown backend" in costs["no-such-engine"].basis
    hosted._parse_prices.cache_clear()


def test_cli_prints_the_report_and_returns_codes(tmp_path, capsys):
    src = epub3_book(tmp_path / "book.epub").path
    assert main(["import", str(src), "--out", str(tmp_path / "out"), "--unit", "sentence", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["rows"] > 40 and report["format"] == "epub3"
    assert main(["import", str(tmp_path / "missing.epub"), "--out", str(tmp_path / "x")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["import", str(src), "--out", str(tmp_path / "x"), "--keep", "bogus"]) == 2


def test_manifest_loads_in_mediamill(tmp_path):
    """Today's loader, before it knows the new column and sidecar keys, accepts everything else."""
    try:
        from mediamill.manifest.load import load_manifest
    except ImportError:
        from mediamill.manifest import load_manifest
    src = epub3_book(tmp_path / "book.epub").path
    result = import_manuscript(src, tmp_path / "out")
    rows = read_csv(result.manifest)
    plain = tmp_path / "plain"
    plain.mkdir()
    write_manifest(
        plain / "book.csv",
        ["id", "chapter", "text", "pause_after"],
        [{k: v for k, v in r.items() if k != "source"} for r in rows],
    )
    shutil.copy(result.cover, plain / result.cover.name)
    import tomllib

    import tomli_w

    side = {k: v for k, v in tomllib.loads(result.sidecar.read_text()).items() if k not in ("source", "language")}
    (plain / "book.toml").write_text(tomli_w.dumps(side))
    manifest = load_manifest(plain / "book.csv")
    assert manifest.problems == []
    assert len(manifest.rows) == len(rows)
    assert [r.chapter for r in manifest.rows][:2] == [rows[0]["chapter"]] * 2
