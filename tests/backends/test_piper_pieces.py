"""Piper's memory is bounded: a long sentence is inferred in pieces, never more than MAX_PIECE_PHONEMES at once.

One inference takes memory in proportion to the speech it makes (about 25 MB a second), and onnxruntime keeps
the most a process ever needed: a 45-second sentence of Moby-Dick made a run's process hold 1.2 GB for good.
"""

from __future__ import annotations

import wave
from pathlib import Path

import pytest

from mediamill.backends import get_backend
from mediamill.backends import piper as piper_backend
from mediamill.backends.piper import pieces
from mediamill.plan import validate

pytest.importorskip("piper")


def _phonemes(text: str) -> list[str]:
    return list(text)


def _joined(parts: list[list[str]]) -> str:
    return " ".join("".join(p) for p in parts)


def test_a_short_sentence_is_one_piece():
    sentence = _phonemes("ɐ ʃˈɔːɹt wˈʌn, ænd ɐnˈʌðɚ.")
    assert pieces(sentence, 200) == [sentence]


def test_a_long_sentence_is_split_after_clauses_each_piece_within_the_bound():
    clauses = [f"klˈɔːz nˈʌmbɚ {n} ɪz hˈɪɚ" for n in range(12)]
    sentence = _phonemes(", ".join(clauses[:6]) + "; " + ", ".join(clauses[6:]) + ".")
    parts = pieces(sentence, 60)
    assert len(parts) > 1 and all(len(p) <= 60 for p in parts)
    assert _joined(parts) == "".join(sentence)  # nothing lost or moved; only the spaces where pieces meet
    assert all(p[-1] in ",;" for p in parts[:-1])  # every piece but the last ends at a clause's end
    assert parts[-1][-1] == "."


def test_a_clause_longer_than_the_bound_is_split_between_words_and_a_longer_word_stays_whole():
    words = [f"wˈɜːd{n}" for n in range(30)]
    sentence = _phonemes(" ".join(words) + ", ænd ɐ lˈɑːŋ" + "ɡ" * 80 + " wˈʌn.")
    long_word = "lˈɑːŋ" + "ɡ" * 80
    parts = ["".join(p) for p in pieces(sentence, 40)]
    assert " ".join(parts) == "".join(sentence)
    assert long_word in parts  # a piece of its own
    assert all(len(p) <= 40 for p in parts if p != long_word)
    assert sum(p.startswith("wˈɜːd") for p in parts) >= 30 * 6 // 40  # the first clause, in several pieces


def test_piper_never_infers_more_than_the_bound_at_once(write_manifest, tmp_path, monkeypatch):
    backend = get_backend("piper")
    monkeypatch.setattr(piper_backend, "MAX_PIECE_PHONEMES", 60)  # a long sentence, kept short for the test
    text = (
        "The whale, which had risen slowly from the deep, rolled once in the grey swell, spouted twice, "
        "and then, as the boats drew near with their oars muffled, sank again without a sound."
    )
    (job,) = validate(write_manifest(f'id,text\na,"{text}"\n'), "piper").jobs
    voice = backend._load(backend._voice(job.row, Path("."))[0])
    lengths: list[int] = []
    infer = voice.phoneme_ids_to_audio

    def counted(ids, *args, **kwargs):
        lengths.append(len(ids))
        return infer(ids, *args, **kwargs)

    monkeypatch.setattr(voice, "phoneme_ids_to_audio", counted)
    made = backend.generate_sync(job, tmp_path)
    assert len(lengths) > 1  # one sentence, in pieces
    assert max(lengths) <= 2 * 60 + 3  # ids: a pad after each phoneme, and the start and end marks
    with wave.open(str(made.path), "rb") as wav:
        assert wav.getnframes() / wav.getframerate() > 5.0  # all of it was read


def test_piper_workers_do_not_spin_between_operators():
    backend = get_backend("piper")
    path, _ = piper_backend.voices()["joe"]
    options = backend._load(path).session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    # Sentences of every length: no memory plan kept per shape.
    assert options.enable_mem_pattern is False


def test_a_run_lets_go_of_its_voices_when_its_rows_are_done(write_manifest, tmp_path):
    """Stitching and delivery come after the rows; a voice (model and arena) has nothing left to do then."""
    import asyncio

    backend = get_backend("piper")
    (job,) = validate(write_manifest("id,text\na,Call me Ishmael.\n"), "piper").jobs
    backend.generate_sync(job, tmp_path)
    assert backend._loaded
    asyncio.run(backend.close())
    assert not backend._loaded
    (tmp_path / "again").mkdir()
    assert backend.generate_sync(job, tmp_path / "again").path.is_file()  # the next run loads it again
