"""Hostile pronunciation lexicons: every entry ends in a problem with its line (and the row it met), or in a
correct spoken text, within bounded time and memory; never a hang, a runaway text or a traceback."""

from __future__ import annotations

import pytest

from mediamill.cli import main
from mediamill.manifest import ManifestError
from mediamill.plan import validate
from mediamill.text import lexicon as lexicon_module
from mediamill.text.lexicon import Lexicon, load_lexicon


def judge(path, backend: str = "silence"):
    try:
        return validate(path, backend)
    except ManifestError as exc:
        return exc


@pytest.fixture
def book(write_manifest, tmp_path):
    """A manifest whose lexicon is written by the test: book(lexicon_csv, rows_csv) -> manifest path."""

    def make(lexicon: str, rows: str = "id,text\na,Hello there.\n"):
        (tmp_path / "names.csv").write_text(lexicon, encoding="utf-8")
        return write_manifest(rows, sidecar='lexicon = "names.csv"\n')

    return make


@pytest.mark.timeout(60)
def test_a_backtracking_regex_reported_against_the_tester_ends_with_the_right_text(book):
    # (a+)+$ on 34 a's and a '!' backtracks for ever in Python's re; the regex package answers at once.
    manifest = book("word,say,match\n(a+)+$,x,regex\n", f"id,text\na,{'a' * 34}!\n")
    plan = judge(manifest)
    assert not isinstance(plan, ManifestError), plan
    (job,) = plan.jobs
    assert job.spoken is None and job.spec.params["text"] == "a" * 34 + "!"


@pytest.mark.timeout(60)
def test_a_regex_that_backtracks_past_its_time_is_a_problem_naming_its_line_and_the_row(book, monkeypatch):
    monkeypatch.setattr(lexicon_module, "REGEX_SECONDS", 0.2)
    manifest = book("word,say,match\nHello,Hi,\n(a|aa)+$,x,regex\n", f"id,text\nfine,Hello.\nslow,{'a' * 80}!\n")
    err = judge(manifest)
    assert isinstance(err, ManifestError)
    (problem,) = err.problems
    assert problem.row == 2 and problem.column == "text"
    assert "names.csv: line 3, column 'word'" in problem.message and "took over" in problem.message


@pytest.mark.timeout(60)
def test_entries_that_repeat_what_they_match_cannot_grow_the_text_without_bound(book):
    entries = "".join(f"(a){'(?:)' * i},\\1\\1,regex\n" for i in range(30))  # 30 distinct doublers
    manifest = book("word,say,match\n" + entries, f"id,text\na,{'a' * 2000}\nb,{'a' * 3000}\n")
    err = judge(manifest)
    assert isinstance(err, ManifestError)
    # 2000 -> 4000 -> 8000 -> 16000: the third entry (line 4) takes it past 4 x 2000 + 1024 characters.
    first, second = err.problems
    assert first.row == 1 and "line 4, column 'say'" in first.message and "9024" in first.message
    # One report per entry: row 2 is not blamed on line 4 again, but on the next doubler that overflows it.
    assert second.row == 2 and "line 5, column 'say'" in second.message


def test_a_lexicon_word_with_a_huge_say_cannot_grow_the_text_either(tmp_path):
    path = tmp_path / "names.csv"
    path.write_text(f"word,say\nA,{'b' * 500}\n", encoding="utf-8")
    lexicon, problems = load_lexicon(path)
    assert problems == []
    assert lexicon.spoken("Say A.") == "Say " + "b" * 500 + "."  # a short text may grow by the slack
    with pytest.raises(lexicon_module.LexiconError, match="line 2, column 'say'"):
        lexicon.spoken(" ".join(["A"] * 1000))


@pytest.mark.parametrize(
    "say, fragment",
    [("\\9", "no such group"), ("\\g<name>", "unknown group"), ("\\q", "bad escape"), ("x\\", "bad escape")],
)
def test_a_regex_say_naming_a_group_its_pattern_lacks_is_a_problem_with_line_and_column(book, say, fragment):
    manifest = book(f"word,say,match\n(\\w+)ing,{say},regex\n", "id,text\na,Singing.\n")
    err = judge(manifest)
    assert isinstance(err, ManifestError)
    (problem,) = err.problems
    assert "names.csv: line 2, column 'say'" in problem.message and fragment in problem.message


def test_the_validate_command_reports_a_bad_group_reference_without_a_traceback(book, capsys):
    manifest = book("word,say,match\n(?P<x>\\w+)ing,\\g<y>,regex\n", "id,text\na,Singing.\n")
    assert main(["validate", str(manifest), "--backend", "silence"]) == 1
    out = capsys.readouterr()
    assert "line 2, column 'say'" in out.out + out.err and "Traceback" not in out.out + out.err


@pytest.mark.parametrize(
    "lexicon, column",
    [
        ("word,say\nNguyen,wi\x00n\n", "say"),
        ("word,say\nNgu\x01yen,win\n", "word"),
        ("word,say,piper\nSiobhan,shiv awn,ʃɪv\x1bˈɔːn\n", "piper"),
        ("word,say,match\nfoo,bar\\0,regex\n", "say"),  # a template escape that makes a NUL
    ],
)
def test_control_characters_in_a_lexicon_are_refused_when_it_is_loaded(tmp_path, lexicon, column):
    path = tmp_path / "names.csv"
    path.write_text(lexicon, encoding="utf-8")
    found, problems = load_lexicon(path)
    assert len(found) == 0
    (problem,) = problems
    assert (problem.line, problem.column) == (2, column) and "control character" in problem.message


@pytest.mark.parametrize("pattern", ["(?:a{1000}){1000}", "(?:(?:a{100}){100}){100}", "a{4294967295}"])
def test_counted_repeats_that_would_unroll_into_gigabytes_are_refused(tmp_path, pattern):
    # The regex package spells counted repeats out when it compiles: (?:a{65535}){65535} takes all memory.
    path = tmp_path / "names.csv"
    path.write_text(f"word,say,match\n{pattern},x,regex\n", encoding="utf-8")
    found, problems = load_lexicon(path)
    assert len(found) == 0
    (problem,) = problems
    assert (problem.line, problem.column) == (2, "word")


def test_ordinary_regex_entries_still_work(tmp_path):
    path = tmp_path / "names.csv"
    path.write_text(
        "word,say,match\n(\\d+)-(\\d+),\\1 to \\2,regex\n(?P<w>\\w+)in',\\g<w>ing,regex\nDr\\.,Doctor,regex\n",
        encoding="utf-8",
    )
    lexicon, problems = load_lexicon(path)
    assert problems == []
    assert lexicon.spoken("Dr. Who was runnin' 3-4 laps.") == "Doctor Who was running 3 to 4 laps."


def test_a_lexicon_is_not_applied_by_a_broken_entry_twice(tmp_path, monkeypatch):
    monkeypatch.setattr(lexicon_module, "REGEX_SECONDS", 0.1)
    lexicon = Lexicon([lexicon_module.Entry("(a|aa)+$", "x", "regex", line=7)])
    with pytest.raises(lexicon_module.LexiconError, match="line 7"):
        lexicon.spoken("a" * 80 + "!")
    assert lexicon.spoken("a" * 80 + "!") == "a" * 80 + "!"  # already reported: left out, not timed again
