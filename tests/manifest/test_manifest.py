"""Manifest loading and validation: every problem, with its row and column."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mediamill.cli import main
from mediamill.manifest import ManifestError, load_manifest
from mediamill.plan import validate


def problems_of(path, backend=None) -> list[str]:
    with pytest.raises(ManifestError) as info:
        validate(path, backend)
    return [str(p) for p in info.value.problems]


def test_good_manifest_plans_rows_chapters_and_pauses(write_manifest):
    path = write_manifest(
        """
id,chapter,text,pause_after
a1,First,Hello there.,
a2,,Second line.,1.25
b1,Second,Another chapter.,
""",
        sidecar='title = "My Book"\nauthor = "Ann"\npause_after = 0.4\nchapter_pause = 2\n',
    )
    plan = validate(path)
    assert [j.id for j in plan.jobs] == ["a1", "a2", "b1"]
    assert [c.title for c in plan.chapters] == ["First", "Second"]
    # fill-down: a2 has no chapter cell but belongs to "First"
    assert [s.job.id for s in plan.chapters[0].segments] == ["a1", "a2"]
    # default pause, explicit pause on the chapter's last row, chapter pause for the last row
    assert [s.pause_after for s in plan.chapters[0].segments] == [0.4, 1.25]
    assert [s.pause_after for s in plan.chapters[1].segments] == [2.0]
    assert plan.manifest.title == "My Book"
    assert all(j.backend == "piper" for j in plan.jobs)


def test_keys_depend_on_text_voice_and_options_only(write_manifest, tmp_path):
    a = validate(write_manifest("id,text\nx,Same words.\n", name="a"))
    b = validate(write_manifest("id,text,chapter\ny,Same words.,Elsewhere\n", name="b"))
    c = validate(write_manifest("id,text,speed\nz,Same words.,1.2\n", name="c"))
    assert a.jobs[0].key == b.jobs[0].key  # id and chapter do not change the audio
    assert a.jobs[0].key != c.jobs[0].key


def test_order_column_sorts_rows(write_manifest):
    plan = validate(write_manifest("id,text,order\nc,Three.,3\na,One.,1\nb,Two.,2\n"))
    assert [j.id for j in plan.jobs] == ["a", "b", "c"]


def test_every_problem_is_reported_at_once_with_row_and_column(write_manifest):
    path = write_manifest(
        """
id,text,voice,pause_after,speed,colour
ok-1,Fine.,joe,,,
bad id,Text.,joe,,,
ok-1,Duplicate id.,joe,,,
empty,,joe,,,
voice,Words.,nobody,,,
types,Words.,joe,abc,9,
"""
    )
    found = problems_of(path)
    text = "\n".join(found)
    assert "column 'colour': unknown column" in text
    assert "row 2 (line 3), column 'id': must be 1-100 characters" in text
    assert "row 3 (line 4), column 'id': duplicate id 'ok-1' (first on row 1)" in text
    assert "row 4 (line 5), column 'text': is required and empty" in text
    assert "row 5, column 'voice': unknown voice 'nobody' for piper" in text
    assert "row 6 (line 7), column 'pause_after'" in text
    assert "row 6 (line 7), column 'speed'" in text
    assert len(found) >= 7


def test_a_problem_quoting_a_multiline_cell_stays_on_one_line(write_manifest):
    # Found by fuzzing: a value quoted in a message broke the one-problem-per-line report.
    path = write_manifest('id,kind,text\nr1,"tts\nx",Words.\n"a\nb",tts,Words.\n')
    found = problems_of(path)
    assert "row 1 (line 2), column 'kind': unknown kind 'tts\\nx' (known: clone, song, tts, video)" in found
    assert all("\n" not in p for p in found), found
    assert str(ManifestError(path, [])).count("\n") == 0


@pytest.mark.parametrize(
    "bad_id",
    ["../escape", "/abs", "a/b", "con", "NUL.txt", ".hidden", "x" * 101, "semi;colon", "tab\there"],
)
def test_unsafe_ids_are_rejected(write_manifest, bad_id):
    path = write_manifest(f'id,text\n"{bad_id}",Words.\n')
    assert any("column 'id'" in p for p in problems_of(path))


def test_missing_id_column_and_unknown_kind(write_manifest):
    found = problems_of(write_manifest("text,kind\nWords.,poem\n"))
    assert any("column 'id': missing column" in p for p in found)
    assert any("column 'kind': unknown kind 'poem'" in p for p in found)


def test_unknown_backend_and_backend_column_override(write_manifest):
    path = write_manifest("id,text,backend\na,One.,\nb,Two.,silence\nc,Three.,nonesuch\n")
    assert any("row 3, column 'backend': unknown backend 'nonesuch'" in p for p in problems_of(path))
    plan = validate(write_manifest("id,text,backend\na,One.,\nb,Two.,silence\n", name="ok"))
    assert [j.backend for j in plan.jobs] == ["piper", "silence"]
    assert [j.backend for j in validate(plan.manifest.path, "silence").jobs] == ["silence", "silence"]


def test_voice_file_that_does_not_exist_is_an_unreadable_file(write_manifest):
    found = problems_of(write_manifest("id,text,voice\na,Words.,voices/missing.onnx\n"))
    assert any("voice file not found or unreadable" in p and "row 1" in p for p in found)


def test_options_must_be_a_json_object_with_known_keys(write_manifest):
    path = write_manifest(
        'id,text,options\na,Words.,"{""volume"": 0.5}"\nb,Words.,not json\nc,Words.,"{""pitch"": 2}"\n'
    )
    found = problems_of(path)
    assert any("row 2" in p and "must be a JSON object" in p for p in found)
    assert any("row 3" in p and "unknown piper option 'pitch'" in p for p in found)
    assert not any("row 1" in p for p in found)


def test_partial_order_column_and_extra_cells(write_manifest):
    found = problems_of(write_manifest("id,text,order\na,One.,1\nb,Two.,\nc,Three,and more,4\n"))
    assert any("column 'order': must be given on every row or on none" in p for p in found)
    assert any("row 3 (line 4): has 4 cells but the header has 3" in p for p in found)


def test_file_level_problems(tmp_path, write_manifest):
    assert problems_of(tmp_path / "absent.csv") == ["file not found"]
    latin = tmp_path / "latin.csv"
    latin.write_bytes("id,text\na,Caf\xe9 cr\xe8me.\n".encode("latin-1"))
    assert "not UTF-8 or UTF-16 text" in problems_of(latin)[0]
    bad_parquet = tmp_path / "bad.parquet"
    bad_parquet.write_bytes(b"PAR1 this is not parquet")
    assert "not a readable Parquet file" in problems_of(bad_parquet)[0]
    (tmp_path / "notes.txt").write_text("id,text\n")
    assert "unsupported manifest type" in problems_of(tmp_path / "notes.txt")[0]
    assert "header but no rows" in problems_of(write_manifest("id,text\n", name="empty"))[0]
    assert "empty" in problems_of(write_manifest("", name="blank"))[0]


def test_sidecar_problems_are_reported(write_manifest):
    path = write_manifest("id,text\na,Words.\n", sidecar='title = "T"\npause_after = -1\nsubtitle = "x"\n')
    found = problems_of(path)
    assert any("book.toml" in p and "pause_after" in p for p in found)
    assert any("book.toml" in p and "subtitle" in p for p in found)


def test_parquet_and_csv_with_the_same_columns_load_the_same(write_manifest, tmp_path):
    csv_path = write_manifest('id,chapter,text,pause_after,options\na,One,Hello.,0.7,"{""volume"": 0.9}"\nb,,Bye.,,\n')
    table = pa.table(
        {
            "id": ["a", "b"],
            "chapter": ["One", None],
            "text": ["Hello.", "Bye."],
            "pause_after": [0.7, None],
            "options": ['{"volume": 0.9}', None],
        }
    )
    pq.write_table(table, tmp_path / "book.parquet")
    from_csv = validate(csv_path)
    from_parquet = validate(tmp_path / "book.parquet")
    assert [j.key for j in from_csv.jobs] == [j.key for j in from_parquet.jobs]
    assert [c.title for c in from_parquet.chapters] == ["One"]
    assert from_parquet.jobs[0].row.pause_after == 0.7


def test_parquet_problems_name_rows(tmp_path):
    pq.write_table(pa.table({"id": ["ok", "ok"], "text": ["Hi.", ""]}), tmp_path / "dup.parquet")
    found = problems_of(tmp_path / "dup.parquet")
    assert "row 2, column 'id': duplicate id 'ok' (first on row 1)" in found
    assert "row 2, column 'text': is required and empty" in found


def test_load_keeps_going_after_structural_problems(write_manifest):
    manifest = load_manifest(write_manifest("id,text\ngood,Fine.\n../x,Bad id.\n"))
    assert [r.id for r in manifest.rows] == ["good"]
    assert len(manifest.problems) == 1


def test_validate_command_prints_every_problem_and_exits_non_zero(write_manifest, capsys):
    path = write_manifest("id,text\na,\na,Words.\n")
    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert "2 problem(s)" in err
    assert "row 1 (line 2), column 'text'" in err
    assert "row 2 (line 3), column 'id': duplicate id" in err
    good = write_manifest("id,text\na,Words.\n", name="good")
    assert main(["validate", str(good)]) == 0


def test_kinds_are_inferred_and_multi_valued_columns_split(write_manifest, tmp_path):
    (tmp_path / "img.png").write_bytes(b"\x89PNG fake")
    plan = validate(
        write_manifest(
            "id,text,lyrics,genre,image,prompt,reference\n"
            's,,"[verse] la",pop; rock,,,\n'
            "v,,,,img.png,A scene.,\n"
            "c,Copy me.,,,,,https://example.com/ref.wav\n"
            "t,Plain.,,,,,\n",
            name="kinds",
        ),
        "wiro",
    )
    assert [j.kind for j in plan.jobs] == ["song", "video", "clone", "tts"]
    assert plan.jobs[0].row.genre == ["pop", "rock"]
    assert [c.title for c in plan.chapters] == ["Kinds"]  # only speech rows make the book
    assert [s.job.id for s in plan.chapters[0].segments] == ["c", "t"]


def test_song_video_and_clone_rows_are_validated(write_manifest, tmp_path):
    path = write_manifest(
        "id,kind,text,lyrics,reference,clone_type,image,prompt,resolution\n"
        "s1,song,,no sections here,,,,,\n"
        "s2,song,,[chorus] hey,,vocal,,,\n"
        "v1,video,,,,,,A scene.,\n"
        "v2,video,,,,,missing.png,A scene.,\n"
        "v3,video,,,,,ftp://host/x.png,A scene.,\n"
        "v4,video,,,,,https://media.example.com/x.png,He says <S>hi.,4k\n"
        "c1,clone,Words.,,,,,,\n",
        name="kinds",
    )
    found = "\n".join(problems_of(path, "wiro"))
    assert "row 1 (line 2), column 'lyrics': lyrics need section tags" in found
    assert "row 2 (line 3): clone_type applies only with a reference track" in found
    assert "row 3 (line 4), column 'image': is required and empty" in found
    assert "row 4, column 'image': file not found or unreadable" in found
    assert "row 5 (line 6), column 'image': must be a file path or an http(s):// URL" in found
    assert "row 6, column 'resolution': must be one of default, 512x992" in found
    assert "row 6, column 'prompt': prompt has 1 <S> but 0 <E>" in found
    assert "row 7 (line 8): a clone row needs a reference recording" in found


def test_engines_report_columns_they_do_not_use(write_manifest):
    path = write_manifest("id,text,seed,cfg_value\na,Words.,3,2.0\n", name="unused")
    found = problems_of(path)  # piper: no seed, no guidance
    assert "row 1, column 'seed': piper does not use this column; leave it empty" in found
    assert "row 1, column 'cfg_value': piper does not use this column; leave it empty" in found
    found = problems_of(path, "pixazo")
    assert found == ["row 1, column 'seed': pixazo does not use this column; leave it empty"]
    local = write_manifest("id,kind,text,reference\nc,clone,Words.,voice.wav\n", name="local")
    assert any("pixazo fetches the reference itself" in p for p in problems_of(local, "pixazo"))
