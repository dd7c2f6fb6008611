"""Helpers for the import and read-along tests: epubcheck, chapter audio made with ffmpeg, manifest reading."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from pathlib import Path

import pytest

EPUBCHECK = Path("/usr/share/java/epubcheck.jar")
# A short-lived JVM: no optimising compiler and a simple collector start faster (about 30 % per check here).
JVM_QUICK = ("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Xshare:auto")


def epubcheck(path: Path) -> dict:
    """epubcheck's JSON report for ``path`` (errors and warnings in ``messages``)."""
    if not EPUBCHECK.is_file() or shutil.which("java") is None:  # make test installs it; never skipped
        pytest.fail("epubcheck is not installed: apt-get install epubcheck (make test does this)")
    proc = subprocess.run(
        ["java", *JVM_QUICK, "-jar", str(EPUBCHECK), str(path), "--json", "-"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    start = proc.stdout.find("{")
    assert start >= 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout[start:])


def problems(report: dict, levels=("FATAL", "ERROR")) -> list[str]:
    return [
        f"{m['ID']} {m['message']} {[ln.get('path') for ln in m.get('locations', [])]}"
        for m in report["messages"]
        if m["severity"] in levels
    ]


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def chapters_of(rows: list[dict[str, str]]) -> list[tuple[str, list[dict[str, str]]]]:
    """Rows grouped by chapter, filling the chapter column down as mediamill's loader does."""
    out: list[tuple[str, list[dict[str, str]]]] = []
    for row in rows:
        if row.get("chapter"):
            out.append((row["chapter"], []))
        out[-1][1].append(row)
    return out


def sine_flac(path: Path, seconds: float, rate: int = 22050) -> Path:
    from mediamill.media import run_ffmpeg

    run_ffmpeg(
        "-f",
        "lavfi",
        "-i",
        f"sine=frequency=330:sample_rate={rate}:duration={seconds:.3f}",
        "-ac",
        "1",
        "-c:a",
        "flac",
        path,
    )
    return path
