"""Hostile manifests: every input ends in a clear validation error or a correct plan, never a
traceback, and nothing a manifest names can make a run read or write outside its folders."""

from __future__ import annotations

import asyncio
import csv
import io
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mediamill.manifest import ManifestError, is_url, private_url_problem, resolve_input
from mediamill.plan import Plan, validate

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
KINDS = ["tts", "clone", "song", "video", "", "TTS", "speech", "../x"]
COLUMNS = [
    "id",
    "kind",
    "text",
    "chapter",
    "voice",
    "reference",
    "image",
    "prompt",
    "lyrics",
    "options",
    "pause_after",
    "speed",
    "seed",
    "order",
    "backend",
    "colour",
    "",
]
PATHS = [
    "../outside.wav",
    "../../etc/passwd",
    "/etc/passwd",
    "~/.ssh/id_rsa",
    "inside.wav",
    "sub/../inside.wav",
    "link-out.wav",
    "nested/../../outside.wav",
    "sub",
    "CON",
    "inside.wav\x00.png",
    "~nobody-here/x.wav",
]
URLS = [
    "http://127.0.0.1/a.wav",
    "http://localhost:8080/a.wav",
    "http://10.1.2.3/a.png",
    "http://169.254.169.254/latest",
    "http://[::1]/a.wav",
    "http://0x7f000001/a.wav",
    "http://127.1/a.wav",
    "http://[::ffff:192.168.0.1]/a.wav",
    "http://metadata.google.internal/x",
    "http://printer/a.png",
    "file:///etc/passwd",
    "ftp://example.com/a.wav",
    "gopher://example.com/",
    "javascript:alert(1)",
    "https://cdn.example.com/a.wav",
    "https://8.8.8.8/a.png",
]
IDS = ["../evil", "..", ".", "/abs", "a/b", "a\\b", "CON", "nul.txt", "LPT1", "ok-1", "x" * 101, "-lead", "ok.mp3", "é"]


def judge(path: Path, backend: str = "silence") -> Plan | ManifestError:
    """The only two ways a manifest may end; anything else (a traceback) fails the test."""
    try:
        return validate(path, backend)
    except ManifestError as exc:
        return exc


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A manifest folder with one allowed file, a file outside it, and a symlink pointing out."""
    book = tmp_path / "book"
    (book / "sub").mkdir(parents=True)
    (book / "inside.wav").write_bytes(b"RIFF")
    (tmp_path / "outside.wav").write_bytes(b"RIFF")
    (book / "link-out.wav").symlink_to(tmp_path / "outside.wav")
    return book


def allowed(value: str, base: Path) -> bool:
    real = resolve_input(value, base).resolve()
    return real.is_relative_to(base.resolve())


def check_plan(result: Plan | ManifestError, base: Path) -> None:
    if isinstance(result, ManifestError):
        text = str(result)
        assert result.problems and text.count("\n") == len(result.problems)
        for problem in result.problems:
            assert problem.message and "Traceback" not in problem.message
        return
    for job in result.jobs:
        assert job.id and "/" not in job.id and "\\" not in job.id and ".." not in job.id
        row = job.row
        for column in row.file_columns:
            value = getattr(row, column)
            if not value:
                continue
            if is_url(value):
                assert value.startswith(("http://", "https://")) and private_url_problem(value) is None
            else:
                assert allowed(value, base), f"{column}={value!r} escapes {base}"


def write_csv(path: Path, header: list[str], rows: list[list[str]], encoding: str = "utf-8") -> Path:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows(rows)
    path.write_bytes(buf.getvalue().encode(encoding, errors="replace"))
    return path


@FUZZ
@given(data=st.binary(max_size=2000))
def test_random_bytes_end_in_a_clear_error_or_a_plan(folder, data):
    path = folder / "fuzz.csv"
    path.write_bytes(data)
    check_plan(judge(path), folder)


@FUZZ
@given(
    text=st.text(max_size=400),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "latin-1", "cp1252"]),
)
def test_text_in_any_encoding_ends_in_a_clear_error_or_a_plan(folder, text, encoding):
    path = folder / "fuzz.csv"
    path.write_bytes(("id,text\n" + text).encode(encoding, errors="replace"))
    check_plan(judge(path), folder)


cell = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        KINDS + PATHS + URLS + IDS + ['{"volume": 2}', "[1,2]", "=cmd|' /C calc'!A0", "1e309", "-1", "NaN"]
    ),
)


@FUZZ
@given(
    header=st.lists(st.sampled_from(COLUMNS), min_size=1, max_size=7),
    rows=st.lists(st.lists(cell, min_size=0, max_size=8), min_size=0, max_size=6),
    backend=st.sampled_from(["silence", "wiro", "pixazo"]),
)
def test_structured_rows_never_escape_their_folder(folder, header, rows, backend):
    path = write_csv(folder / "fuzz.csv", header, rows)
    check_plan(judge(path, backend), folder)


@pytest.mark.parametrize("value", PATHS)
def test_file_references_outside_the_manifest_folder_are_refused(folder, value):
    path = write_csv(folder / "refs.csv", ["id", "kind", "text", "reference"], [["r1", "clone", "Hello there.", value]])
    result = judge(path, "wiro")
    if allowed(value.split("\x00")[0], folder) and value in ("inside.wav", "sub/../inside.wav"):
        assert isinstance(result, Plan)
    else:
        assert isinstance(result, ManifestError)
        assert {(p.row, p.column) for p in result.problems} == {(1, "reference")}


def test_asset_roots_widen_what_a_manifest_may_read(folder, monkeypatch):
    path = write_csv(
        folder / "refs.csv", ["id", "kind", "text", "reference"], [["r1", "clone", "Hi.", "../outside.wav"]]
    )
    assert "outside the manifest's folder" in str(judge(path, "wiro"))
    monkeypatch.setenv("MEDIAMILL_ASSET_ROOTS", str(folder.parent))
    assert isinstance(judge(path, "wiro"), Plan)


@pytest.mark.parametrize("url", URLS)
def test_urls_must_be_http_and_public(folder, url):
    path = write_csv(folder / "urls.csv", ["id", "kind", "prompt", "image"], [["v1", "video", "A lamp.", url]])
    result = judge(path, "wiro")
    if url.startswith("https://") and ("example.com" in url or "8.8.8.8" in url):
        assert isinstance(result, Plan)
    else:
        assert isinstance(result, ManifestError) and result.problems[0].column == "image", result


def test_private_urls_are_allowed_when_configured(folder, monkeypatch):
    path = write_csv(
        folder / "urls.csv", ["id", "kind", "prompt", "image"], [["v1", "video", "A lamp.", "http://10.0.0.7/a.png"]]
    )
    assert "private" in str(judge(path, "wiro"))
    monkeypatch.setenv("MEDIAMILL_ALLOW_PRIVATE_URLS", "true")
    assert isinstance(judge(path, "wiro"), Plan)


@pytest.mark.parametrize("row_id", IDS)
def test_ids_that_are_not_safe_file_names_are_refused(folder, row_id):
    path = write_csv(folder / "ids.csv", ["id", "text"], [[row_id, "Hello."]])
    result = judge(path)
    if row_id in ("ok-1", "ok.mp3"):
        assert isinstance(result, Plan)
    else:
        assert isinstance(result, ManifestError) and result.problems[0].column == "id", row_id


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-be"])
def test_unicode_exports_with_a_bom_are_read(folder, encoding):
    text = "id,text\nа1,Привет — «hello» ünïcödé.\n".replace("а1", "a1")
    (folder / "uni.csv").write_bytes(
        text.encode(encoding) if encoding != "utf-16-be" else b"\xfe\xff" + text.encode("utf-16-be")
    )
    plan = judge(folder / "uni.csv")
    assert isinstance(plan, Plan) and plan.jobs[0].row.text == "Привет — «hello» ünïcödé."


def test_latin1_is_refused_with_the_fix(folder):
    (folder / "old.csv").write_bytes("id,text\na1,Café crème\n".encode("latin-1"))
    result = judge(folder / "old.csv")
    assert isinstance(result, ManifestError) and "save it as UTF-8 CSV" in str(result)


def test_a_huge_cell_names_its_line(folder):
    (folder / "huge.csv").write_text('id,text\na1,fine\na2,"' + "x" * (5 * 1024 * 1024) + "\n")
    result = judge(folder / "huge.csv")
    assert isinstance(result, ManifestError)
    assert "a cell is over 4194304 characters (an unclosed quote?)" in str(result) and "line " in str(result)


def test_nul_bytes_are_a_clear_error(folder):
    (folder / "nul.csv").write_bytes(b"id,text\na1,hel\x00lo\n")
    assert "row 1 (line 2), column 'text': contains the control character U+0000" in str(judge(folder / "nul.csv"))


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_millions_of_rows_are_refused_before_any_work(folder, fmt):
    n = 2_000_000
    if fmt == "csv":
        path = folder / "million.csv"
        with path.open("w") as fh:
            fh.write("id,text\n")
            fh.writelines(f"r{i},Line {i}.\n" for i in range(n))
    else:
        path = folder / "million.parquet"
        pq.write_table(pa.table({"id": [f"r{i}" for i in range(n)], "text": ["Line."] * n}), path)
    result = judge(path)
    assert isinstance(result, ManifestError)
    assert (
        str(result.problems[0]) == "has 2000000 rows; a manifest may have at most 100000 (MEDIAMILL_MAX_ROWS): split it"
    )


@FUZZ
@given(
    ids=st.one_of(st.integers(-(2**63), 2**63 - 1), st.floats(), st.binary(max_size=8), st.none(), st.text(max_size=5)),
    text=st.one_of(
        st.text(max_size=20), st.lists(st.integers(-(2**63), 2**63 - 1), max_size=3), st.binary(max_size=8), st.none()
    ),
)
def test_parquet_with_any_column_types_ends_in_a_clear_error_or_a_plan(folder, ids, text):
    path = folder / "typed.parquet"
    pq.write_table(pa.table({"id": [ids, ids], "text": [text, None]}), path)
    check_plan(judge(path), folder)


@pytest.mark.parametrize("name", ["...csv", "..csv", ".hidden.csv"])
def test_a_manifest_name_that_cannot_name_a_folder_is_refused(folder, name):
    path = folder / name
    path.write_text("id,text\na1,Hello.\n")
    result = judge(path)
    assert isinstance(result, ManifestError) and "cannot name an output folder" in str(result)


def test_sidecar_files_outside_the_folder_are_refused(folder):
    path = write_csv(folder / "side.csv", ["id", "text"], [["a1", "Hello."]])
    (folder / "side.toml").write_text('cover = "../outside.wav"\n[podcast]\nbed = "/etc/passwd"\n')
    result = judge(path)
    assert isinstance(result, ManifestError)
    assert sorted(p.column for p in result.problems) == ["cover", "podcast.bed"]


@pytest.mark.usefixtures("prefect_api")
def test_a_hostile_but_valid_manifest_runs_and_writes_only_inside_its_outputs(tmp_path):
    from mediamill.flows import produce

    book = tmp_path / "book"
    book.mkdir()
    formulas = ["=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(A1)", "\t=1"]
    # Chapter titles reach the results table: each one here is a spreadsheet formula.
    rows = [[f"f{i}", f, f"Line {i} of a hostile book.", ""] for i, f in enumerate(formulas)]
    rows.append(["bad", "", "A row with a bad pause.", "-5"])
    path = write_csv(book / "hostile.csv", ["id", "chapter", "text", "pause_after"], rows)
    assert isinstance(judge(path), ManifestError)  # the bad pause is refused up front, nothing written
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["book", "hostile.csv"]

    rows.pop()
    write_csv(path, ["id", "chapter", "text", "pause_after"], rows)
    before = {p for p in tmp_path.parent.iterdir()}
    out = tmp_path / "out"
    state = asyncio.run(produce(manifest=str(path), backend="silence", outputs=str(out), return_state=True))
    assert state.is_completed(), state.message
    assert {p for p in tmp_path.parent.iterdir()} == before
    assert {p.relative_to(tmp_path).parts[0] for p in tmp_path.rglob("*")} == {"book", "out"}
    with (out / "hostile" / "results.csv").open(newline="") as fh:
        cells = [c for row in csv.reader(fh) for c in row]
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t")]
    assert {"'=cmd|' /C calc'!A0", "'+1+1", "'@SUM(A1)"} <= set(cells)
    assert os.path.getsize(out / "hostile" / "results.parquet") > 0
