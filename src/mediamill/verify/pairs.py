"""``mediamill verify PAIRS.csv``: judge any takes against their texts, human narration against a manuscript too.

``PAIRS.csv`` has the columns ``audio`` (a file, relative to the CSV) and
``text``, and optionally ``language``. Every problem with the table is found
before any take is heard (``read_pairs`` raises ``PairsError`` with each
one's row and column); then each take is checked (``check_pairs``) and
reported as a dict: ``audio`` as given, ``ok``, the verdict, WER, the missing
words and the extra speech, each with where in the audio they are.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .takes import TakeVerifier

COLUMNS = ("audio", "text", "language")


class PairsError(Exception):
    def __init__(self, path: Path, problems: list[str]):
        self.path, self.problems = path, problems
        super().__init__(f"{path}: " + "; ".join(problems))


@dataclass(frozen=True)
class Pair:
    row: int
    audio: str  # as written in the table
    path: Path
    text: str
    language: str | None


def read_pairs(path: Path) -> list[Pair]:
    """Every pair in the table; every problem at once (``PairsError``)."""
    problems: list[str] = []
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = [h.strip().lower() for h in reader.fieldnames or []]
            raw = [(reader.line_num, row) for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise PairsError(path, [f"cannot read the table: {exc}"]) from None
    for name in header:
        if name not in COLUMNS:
            problems.append(f"column '{name}': unknown (known: {', '.join(COLUMNS)})")
    for name in ("audio", "text"):
        if name not in header:
            problems.append(f"column '{name}': missing")
    if problems:
        raise PairsError(path, problems)
    pairs = []
    for number, (line, row) in enumerate(raw, 1):
        cells = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
        if not any(cells.values()):
            continue
        where = f"row {number} (line {line})"
        if not cells.get("audio"):
            problems.append(f"{where}, column 'audio': is empty")
            continue
        if not cells.get("text"):
            problems.append(f"{where}, column 'text': is empty")
            continue
        audio = Path(cells["audio"])
        target = audio if audio.is_absolute() else path.parent / audio
        if not target.is_file():
            problems.append(f"{where}, column 'audio': file not found: {target}")
            continue
        pairs.append(Pair(number, cells["audio"], target, cells["text"], cells.get("language") or None))
    if problems:
        raise PairsError(path, problems)
    if not pairs:
        raise PairsError(path, ["has no pairs to check"])
    return pairs


def check_pairs(pairs: list[Pair], verifier: TakeVerifier) -> Iterator[dict[str, Any]]:
    """Each pair's result, as it is judged."""
    for pair in pairs:
        check = verifier.check(pair.path, pair.text, pair.language)
        missing, extra = check.missing_runs(), check.extra_runs()
        summary = check.summary()
        yield {
            "audio": pair.audio,
            "ok": check.passed,
            "verified": check.status,
            "wer": summary["wer"],
            "missing": [w for run in missing for w in run.words],
            "extra": [w for run in extra for w in run.words],
            "missing_runs": [{"words": r.words, "start_s": round(r.start_s, 2), "end_s": round(r.end_s, 2)} for r in missing],
            "extra_runs": [{"words": r.words, "start_s": round(r.start_s, 2), "seconds": round(r.seconds, 2)} for r in extra],
            "reason": check.reason,
            "engine": check.engine,
        }
