"""Hostile tables for ``mediamill verify``: every one ends in exit status 2 with each problem's row and column,
or in a verdict, within bounded time and memory; the table is read by the manifest's own rules."""

from __future__ import annotations

import struct
import wave
from pathlib import Path

import numpy as np
import pytest

from mediamill.cli import main
from mediamill.media.pcm import AudioError, pcm16k
from mediamill.verify.pairs import PairsError, read_pairs


def tone(path: Path, seconds: float, rate: int = 16_000, width: int = 2) -> Path:
    """A quiet 440 Hz tone as a PCM WAV (8-bit ones are decoded by FFmpeg, 16-bit ones read directly)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    x = np.sin(np.arange(int(seconds * rate)) * 2 * np.pi * 440 / rate) * 0.3
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(width)
        out.setframerate(rate)
        out.writeframes((x * 32767).astype("<i2").tobytes() if width == 2 else (x * 127 + 128).astype("u1").tobytes())
    return path


def streamed(path: Path) -> Path:
    """The WAV as a pipe writes it: sizes of 0xFFFFFFFF in its header, so only decoding says how long it is."""
    data = bytearray(path.read_bytes())
    at = data.find(b"data")
    data[4:8] = data[at + 4 : at + 8] = struct.pack("<I", 0xFFFFFFFF)
    path.write_bytes(bytes(data))
    return path


def refused(table: Path, capsys) -> str:
    assert main(["verify", str(table)]) == 2
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    return out.out + out.err


@pytest.mark.timeout(120)
def test_a_take_longer_than_the_limit_is_refused_before_it_is_decoded(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MEDIAMILL_VERIFY_MAX_SECONDS", "1.5")
    tone(tmp_path / "takes" / "short.wav", 1.0)
    tone(tmp_path / "takes" / "long.wav", 3.0)
    table = tmp_path / "pairs.csv"
    table.write_text("audio,text\ntakes/short.wav,Hello.\ntakes/long.wav,Hello.\n")
    text = refused(table, capsys)
    assert "row 2 (line 3), column 'audio'" in text and "MEDIAMILL_VERIFY_MAX_SECONDS" in text
    assert "row 1" not in text


@pytest.mark.parametrize("width, stream", [(2, False), (1, False), (2, True)])
def test_decoding_stops_at_the_limit_whatever_the_header_says(tmp_path, width, stream):
    path = tone(tmp_path / "take.wav", 3.0, rate=22_050, width=width)
    if stream:
        streamed(path)
    with pytest.raises(AudioError, match="longer than 1.5 s"):
        pcm16k(path, max_seconds=1.5)
    assert len(pcm16k(path, max_seconds=5)) == pytest.approx(3.0 * 16_000 * 2, rel=0.01)


def test_the_recognisers_decode_takes_under_the_limit(tmp_path, monkeypatch):
    from mediamill.verify.recognisers.base import RecogniserError
    from mediamill.verify.recognisers.pocketsphinx import PocketsphinxRecogniser

    monkeypatch.setenv("MEDIAMILL_VERIFY_MAX_SECONDS", "1")
    path = streamed(tone(tmp_path / "take.wav", 2.0))
    with pytest.raises((AudioError, RecogniserError), match="MEDIAMILL_VERIFY_MAX_SECONDS"):
        PocketsphinxRecogniser().transcribe(path, "en", ["hello"])


def test_audio_outside_the_tables_folder_is_refused_as_manifest_inputs_are(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("MEDIAMILL_ASSET_ROOTS", raising=False)
    folder = tmp_path / "table"
    tone(folder / "inside.wav", 0.5)
    outside = tone(tmp_path / "outside.wav", 0.5)
    (folder / "link.wav").symlink_to(outside)
    table = folder / "pairs.csv"
    table.write_text(f"audio,text\n../outside.wav,Hi.\n{outside},Hi.\nlink.wav,Hi.\ninside.wav,Hi.\n")
    text = refused(table, capsys)
    for row in (1, 2, 3):
        assert f"row {row} (line {row + 1}), column 'audio'" in text
    assert text.count("is outside") == 3 and "row 4" not in text
    monkeypatch.setenv("MEDIAMILL_ASSET_ROOTS", str(tmp_path))  # the documented way to allow another folder
    assert [p.row for p in read_pairs(table)] == [1, 2, 3, 4]


def test_a_column_named_twice_is_reported_with_its_name(tmp_path, capsys):
    tone(tmp_path / "a.wav", 0.5)
    table = tmp_path / "pairs.csv"
    table.write_text("audio,text,Text\na.wav,Hello.,Goodbye.\n")
    assert "column 'text': appears twice in the header" in refused(table, capsys)


@pytest.mark.timeout(120)
def test_a_text_as_long_as_a_manifest_cell_may_be_is_read_and_judged_not_refused_by_the_csv_module(tmp_path):
    tone(tmp_path / "a.wav", 0.5)
    table = tmp_path / "pairs.csv"
    table.write_text("audio,text\na.wav," + "word " * 800_000 + "\n")  # 4 MB, under the 4 MiB a manifest allows
    (pair,) = read_pairs(table)
    assert len(pair.text) > 3_900_000
    table.write_text('audio,text\na.wav,"' + "word " * 900_000 + '"\n')  # 4.5 MB: over it
    with pytest.raises(PairsError, match="over 4194304 characters"):
        read_pairs(table)


def test_the_table_is_read_by_the_manifest_rules(tmp_path, monkeypatch):
    tone(tmp_path / "a.wav", 0.5)
    table = tmp_path / "pairs.csv"
    table.write_bytes("audio,text\na.wav,Hello.\n".encode("utf-16"))  # Excel's "Unicode text", with its BOM
    assert [p.text for p in read_pairs(table)] == ["Hello."]
    table.write_text("audio,text\na.wav,Hel\x00lo.\n")
    with pytest.raises(PairsError, match=r"row 1 \(line 2\), column 'text': contains the control character U\+0000"):
        read_pairs(table)
    monkeypatch.setenv("MEDIAMILL_MAX_ROWS", "2")
    table.write_text("audio,text\n" + "a.wav,Hello.\n" * 3)
    with pytest.raises(PairsError, match="MEDIAMILL_MAX_ROWS"):
        read_pairs(table)


def test_every_problem_is_reported_at_once(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MEDIAMILL_VERIFY_MAX_SECONDS", "1")
    tone(tmp_path / "long.wav", 2.0)
    (tmp_path / "noise.wav").write_bytes(b"RIFF not audio at all")
    table = tmp_path / "pairs.csv"
    table.write_text("audio,text\nlong.wav,Hi.\n../x.wav,Hi.\nmissing.wav,Hi.\nnoise.wav,Hi.\n,Hi.\nlong.wav,\n")
    text = refused(table, capsys)
    for row in range(1, 7):
        assert f"row {row} (line {row + 1})" in text
