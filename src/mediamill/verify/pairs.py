"""``mediamill verify PAIRS.csv``: judge any takes against their texts, human narration against a manuscript too.

``PAIRS.csv`` has the columns ``audio`` (a file, relative to the CSV) and
``text``, and optionally ``language``. The table is read as a manifest is
(``manifest.read_table``: CSV in UTF-8 or UTF-16 with a BOM, or Parquet;
cells up to 4 MiB; at most ``MEDIAMILL_MAX_ROWS`` rows; a column named twice
is a problem; control characters in cells are refused), and its audio files
follow a manifest's rule for inputs: under the table's folder, a voice
registry or ``MEDIAMILL_ASSET_ROOTS``. A take longer than
``MEDIAMILL_VERIFY_MAX_SECONDS`` (probed, not decoded) is refused, since
recognising it takes memory in proportion to its length.

Every problem with the table is found before any take is heard
(``read_pairs`` raises ``PairsError`` with each one's row and column); then
each take is checked (``check_pairs``) and reported as a dict: ``audio`` as
given, ``ok``, the verdict, WER, the missing words and the extra speech, each
with where in the audio they are.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import settings
from ..manifest import Problem, control_character, outside_roots, read_table, resolve_input
from ..media.ffmpeg import MediaError
from ..media.probe import probe
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


def _audio_problem(value: str, target: Path, base: Path, max_seconds: float) -> str | None:
    """Why the take ``value`` names cannot be heard, or None."""
    refused = outside_roots(target, base)
    if refused:
        return f"{value} {refused}"
    if not target.is_file():
        return f"file not found: {target}"
    try:
        seconds = probe(target).duration_s
    except MediaError as exc:
        return f"cannot read the audio: {exc}"
    if seconds > max_seconds:
        return (
            f"the take is {seconds:.0f} s long; takes over {max_seconds:g} s are not verified "
            "(MEDIAMILL_VERIFY_MAX_SECONDS): split it"
        )
    return None


def read_pairs(path: Path) -> list[Pair]:
    """Every pair in the table; every problem at once (``PairsError``)."""
    table, problems = read_table(path)
    for name in table.columns:
        if name and name not in COLUMNS:
            problems.append(Problem(f"unknown (known: {', '.join(COLUMNS)})", column=name))
    for name in ("audio", "text"):
        if table.columns and name not in table.columns:
            problems.append(Problem("missing", column=name))
    if problems:
        raise PairsError(path, [str(p) for p in problems])
    base, max_seconds = path.parent, settings().verify_max_seconds
    pairs = []
    for index, raw in enumerate(table.rows):
        number, line = index + 1, table.lines[index]
        cells = {k: str(v).strip() for k, v in raw.items() if k in COLUMNS and v is not None}
        bad = [(k, why) for k, v in cells.items() if (why := control_character(v))]
        problems += [Problem(why, number, column, line) for column, why in bad]
        for name in ("audio", "text"):
            if not cells.get(name):
                problems.append(Problem("is empty", number, name, line))
        if bad or not cells.get("audio") or not cells.get("text"):
            continue
        target = resolve_input(cells["audio"], base)
        wrong = _audio_problem(cells["audio"], target, base, max_seconds)
        if wrong:
            problems.append(Problem(wrong, number, "audio", line))
            continue
        pairs.append(Pair(number, cells["audio"], target, cells["text"], cells.get("language") or None))
    if problems:
        raise PairsError(path, [str(p) for p in problems])
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
            "missing_runs": [
                {"words": r.words, "start_s": round(r.start_s, 2), "end_s": round(r.end_s, 2)} for r in missing
            ],
            "extra_runs": [
                {"words": r.words, "start_s": round(r.start_s, 2), "seconds": round(r.seconds, 2)} for r in extra
            ],
            "reason": check.reason,
            "engine": check.engine,
        }
