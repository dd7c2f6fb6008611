"""The voice registry and clone rows that name a voice."""

from __future__ import annotations

import pytest

from mediamill.cli import main
from mediamill.manifest import ManifestError
from mediamill.plan import validate
from mediamill.voices import find_voice
from tests.helpers.fakes import write_tone_wav


def test_voices_command_adds_lists_and_removes(tmp_path, capsys):
    folder = tmp_path / "voices"
    rec = write_tone_wav(tmp_path / "rec.wav", 2.0)
    assert main(["voices", "--dir", str(folder), "add", "narrator", str(rec), "--text", "This is my voice."]) == 0
    assert (folder / "narrator.wav").read_bytes() == rec.read_bytes()
    assert (folder / "narrator.txt").read_text().strip() == "This is my voice."
    assert main(["voices", "--dir", str(folder), "list"]) == 0
    out = capsys.readouterr().out
    assert "narrator\t2.0 s" in out and "This is my voice." in out
    assert main(["voices", "--dir", str(folder), "remove", "narrator"]) == 0
    assert not list(folder.iterdir())
    assert main(["voices", "--dir", str(folder), "remove", "narrator"]) == 1


def test_bad_voices_are_refused(tmp_path, capsys):
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("hello")
    assert main(["voices", "--dir", str(tmp_path / "v"), "add", "x", str(not_audio)]) == 2
    assert (
        main(["voices", "--dir", str(tmp_path / "v"), "add", "../escape", str(write_tone_wav(tmp_path / "a.wav", 1))])
        == 2
    )
    assert "cannot add voice" in capsys.readouterr().err


def test_clone_rows_take_a_registered_voice(tmp_path, write_manifest, monkeypatch):
    voices = tmp_path / "voices"
    voices.mkdir()
    write_tone_wav(voices / "narrator.wav", 1.5)
    (voices / "narrator.txt").write_text("Hello, I narrate.\n")
    shared = tmp_path / "shared"
    shared.mkdir()
    write_tone_wav(shared / "guest.wav", 1.0)
    monkeypatch.setenv("MEDIAMILL_VOICES", str(shared))
    path = write_manifest(
        "id,kind,text,voice,reference_text\n"
        "a,clone,In the narrator's voice.,narrator,\n"
        "b,clone,A guest with my own transcript.,guest,What the guest says.\n",
        name="cast",
    )
    plan = validate(path, "wiro")
    a, b = plan.jobs
    assert a.spec.params["referencePrompt"] == "Hello, I narrate."
    assert "inputAudioReferenceUrl" in a.spec.params
    assert b.spec.params["referencePrompt"] == "What the guest says."
    assert find_voice("guest", tmp_path).audio == shared / "guest.wav"
    # Same recording named by voice or by path: the same content key.
    direct = write_manifest(
        'id,kind,text,reference,reference_text\na,clone,In the narrator\'s voice.,voices/narrator.wav,"Hello, I narrate."\n',
        name="direct",
    )
    assert validate(direct, "wiro").jobs[0].key == a.key


def test_unknown_voice_and_voice_with_reference_are_errors(tmp_path, write_manifest):
    path = write_manifest(
        "id,kind,text,voice,reference\na,clone,Words.,nobody,\nb,clone,Words.,narrator,x.wav\n", name="bad"
    )
    with pytest.raises(ManifestError) as info:
        validate(path, "wiro")
    found = [str(p) for p in info.value.problems]
    assert any(p.startswith("row 1, column 'voice': unknown voice 'nobody'") for p in found)
    assert "row 2, column 'voice': give a voice or a reference recording, not both" in found
