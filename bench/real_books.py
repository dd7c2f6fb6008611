"""Real books, first time right: held-out public-domain books imported and produced with every default.

    python bench/real_books.py BOOK.htm|BOOK.epub ... [--rows 60] [--skip 0] [--out DIR]

Each book is imported with ``mediamill import`` (defaults), its first ``--rows`` rows after ``--skip``
(whole chapters' opening paragraphs, headings included) are kept as a manifest, and ``mediamill run``
produces it with every default: Piper, each take checked by ear by pocketsphinx, retakes, the
audiobook delivery. Reported per book: rows, rows failed, rows flagged (kept with a short extra sound),
rows retaken, the audio's length, the run's wall time and its peak resident memory (the run process and
its children). Goals (issue: real books): no failed row, <= 0.3 % flagged, <= 1 % retaken.

The books used for README's table are held out of all tuning of the reading preparation and of the
verifier's thresholds; they come from the GITenberg organisation's repositories of Project Gutenberg
texts (HTML editions): The Adventures of Sherlock Holmes (1661), The Secret Adversary (1155) and The
Wonderful Wizard of Oz (55).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq


def _import(book: Path, out: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "mediamill.cli", "import", str(book), "--out", str(out)], check=True, capture_output=True
    )
    (table,) = out.glob("*.csv")
    return table


def _subset(table: Path, skip: int, rows: int) -> int:
    with table.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        fields, kept = reader.fieldnames, list(reader)[skip : skip + rows]
    with table.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(kept)
    return len(kept)


def produce(book: Path, work: Path, skip: int, rows: int) -> dict:
    folder = work / book.stem
    folder.mkdir(parents=True)
    table = _import(book, folder)
    count = _subset(table, skip, rows)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIAMILL_VERIFY")}
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    run = subprocess.run(
        [sys.executable, "-m", "mediamill.cli", "run", str(table), "--outputs", str(work / "out")],
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    peak_mb = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    results = pq.read_table(work / "out" / table.stem / "results.parquet").to_pylist()
    failed = [r for r in results if r["status"] == "failed"]
    flagged = [r for r in results if r.get("verified") == "flagged"]
    retaken = [r for r in results if (r.get("retakes") or 0) > 0]
    return {
        "book": book.stem,
        "rows": count,
        "failed": len(failed),
        "flagged": len(flagged),
        "retaken": len(retaken),
        "audio_min": round(sum(r.get("audio_s") or 0 for r in results) / 60, 1),
        "wall_s": round(wall, 1),
        "peak_rss_mb": round(peak_mb),
        "exit": run.returncode,
        "failed_rows": [(r["id"], r.get("error")) for r in failed],
        "flagged_rows": [(r["id"], r.get("extra")) for r in flagged],
        "retaken_rows": [(r["id"], r.get("retakes"), r.get("extra"), r.get("missing")) for r in retaken],
        "delivered": sorted(str(p.relative_to(work)) for p in (work / "out" / table.stem).rglob("*.m4b")),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("books", nargs="+", type=Path)
    parser.add_argument("--rows", type=int, default=60)
    parser.add_argument("--skip", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="keep the outputs here (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.out or Path(tmp)
        reports = [produce(book.resolve(), work, args.skip, args.rows) for book in args.books]
    total = {k: sum(r[k] for r in reports) for k in ("rows", "failed", "flagged", "retaken")}
    for r in reports:
        print(json.dumps(r))
    print(
        f"\n{'book':<14}{'rows':>6}{'failed':>8}{'flagged':>9}{'retaken':>9}{'audio min':>11}{'wall s':>8}{'peak MB':>9}"
    )
    for r in reports:
        print(
            f"{r['book']:<14}{r['rows']:>6}{r['failed']:>8}{r['flagged']:>9}{r['retaken']:>9}{r['audio_min']:>11}"
            f"{r['wall_s']:>8}{r['peak_rss_mb']:>9}"
        )
    n = total["rows"] or 1
    print(
        f"all: {total['rows']} rows, {total['failed']} failed, {total['flagged']} flagged "
        f"({100 * total['flagged'] / n:.2f} %), {total['retaken']} retaken ({100 * total['retaken'] / n:.2f} %)"
    )


if __name__ == "__main__":
    main()
