"""Calibrate and measure take verification on a corpus of Piper takes.

Usage::

    python bench/verify.py [--corpus DIR] [--rows N] [--seed S] [--out FILE] [--reuse]

Steps, all in one run:

1. build (or reuse) the corpus (``corpus.build``): per row a clean take, four
   clean variants and up to four defects;
2. verify every take with pocketsphinx in a child process (so its peak memory
   is the verifier's alone), keeping each take's measurements;
3. time Piper and the verifier on the same rows in another child, row by row
   in turn (Piper makes the row's take, then every take of that row is
   verified), so both see the same machine load;
4. split the rows in two halves at random (``--seed``); on the calibration half
   choose the thresholds that flag the most defects while flagging at most
   ``--max-false`` of the clean takes; report, on the other half, the share of
   each defect kind flagged and of clean takes flagged, with those thresholds
   and with the shipped ones (``judge.THRESHOLDS``);
5. write everything to ``--out`` (JSON) and print the summary.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import resource
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from mediamill.verify.judge import CAREFUL_MAX_MISSING_SHARE, THRESHOLDS, Thresholds, judge  # noqa: E402
from tests.helpers import verify_corpus as corpus  # noqa: E402
from tests.helpers.verify_texts import ROWS, text_of  # noqa: E402

LOOSE = Thresholds(10**6, 1.0, 10.0**6, 10.0**6, 0.0)  # judge without failing anything: measure only


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _measure(recogniser, corpus_dir: Path, take: corpus.Take, careful: bool = True) -> dict:
    """A take's measurements at the quick settings and, under ``careful``, at the careful ones too (the second
    hearing a take the quick one fails gets: ``flags`` needs both to decide for any thresholds)."""
    m = _hearing(recogniser, corpus_dir, take)
    if careful and recogniser.careful is not None:
        m["careful"] = _hearing(recogniser.careful, corpus_dir, take)
    return m


def _hearing(recogniser, corpus_dir: Path, take: corpus.Take) -> dict:
    from mediamill.text.normalize import spans
    from mediamill.verify.recognisers.base import RecogniserError

    started = time.perf_counter()
    expected = spans(take.text)
    try:
        transcript = recogniser.transcribe(corpus_dir / take.path, "en", expected)
    except RecogniserError as exc:  # counted as flagged: a take that cannot be verified is not passed
        return {"elapsed_s": time.perf_counter() - started, "error": str(exc)}
    verdict = judge(expected, transcript, thresholds=LOOSE)
    elapsed = time.perf_counter() - started
    n = max(1, len(verdict.timings))
    return {
        "elapsed_s": elapsed,
        "audio_s": transcript.duration_s,
        "longest_missing": max((len(r.words) for r in verdict.missing), default=0),
        "missing_share": sum(len(r.words) for r in verdict.missing) / n,
        "longest_extra_s": max((r.seconds for r in verdict.extra), default=0.0),
        "wer": verdict.wer,
        "cer": verdict.cer,
        "trailing_silence_s": transcript.trailing_silence_s,
        "passes": 2 if any("strict alignment" in x for x in transcript.notes) else 1,
        "letter_to_sound": [x for x in transcript.notes if x.startswith("letter-to-sound")],
        "timings": [(t.word, t.start_s, t.end_s) for t in verdict.timings] if take.kind == "clean" else None,
    }


def verify_all(corpus_dir: Path) -> dict:
    """Child: verify every take; the measurements calibration needs, and peak memory."""
    from mediamill.verify.recognisers.pocketsphinx import PocketsphinxRecogniser

    base_mb = _peak_mb()
    recogniser = PocketsphinxRecogniser()
    started = time.perf_counter()
    results = {take.take_id: _measure(recogniser, corpus_dir, take) for take in corpus.load(corpus_dir)}
    return {
        "takes": results,
        "total_s": time.perf_counter() - started,
        "decoder_load_s": recogniser.load_s,
        "peak_mb": _peak_mb(),
        "peak_mb_before_recogniser": base_mb,
    }


def interleaved(corpus_dir: Path) -> dict:
    """Child: per row, Piper's time for its text, then the verifier's time for each of its takes."""
    from mediamill.verify.recognisers.pocketsphinx import PocketsphinxRecogniser

    takes = corpus.load(corpus_dir)
    recogniser = PocketsphinxRecogniser()
    synth = corpus.Synth()
    synth.say("Warm up.")
    _measure(recogniser, corpus_dir, takes[0])  # warm up: decoders made, modules imported
    rows: dict[str, dict] = {}
    verify_s: dict[str, float] = {}
    for row in dict.fromkeys(t.row_id for t in takes):
        pcm, gen_s = synth.say(text_of(row))
        rows[row] = {"gen_s": gen_s, "audio_s": len(pcm) / 2 / synth.rate}
        for take in (t for t in takes if t.row_id == row):
            m = _measure(recogniser, corpus_dir, take, careful=False)
            verify_s[take.take_id] = m["elapsed_s"]
            if _fails(m, THRESHOLDS["pocketsphinx"]) and _heard_again(
                {**m, "careful": None}, THRESHOLDS["pocketsphinx"]
            ):
                verify_s[take.take_id] += _hearing(recogniser.careful, corpus_dir, take)["elapsed_s"]
    return {
        "rows": rows,
        "verify_s": verify_s,
        "piper_load_s": synth.load_s,
        "decoder_load_s": recogniser.load_s,
        "loadavg_end": os.getloadavg(),
    }


def _child(function: str, corpus_dir: Path) -> dict:
    cmd = [sys.executable, str(HERE / "verify.py"), "--child", function, "--corpus", str(corpus_dir)]
    proc = subprocess.run(cmd, cwd=HERE.parent, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{function} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def flags(m: dict, t: Thresholds) -> bool:
    """Would a run fail a take with measurements ``m`` under thresholds ``t``? (The quick hearing fails it, and
    so does the careful one.)"""
    return _fails(m, t) and not (_heard_again(m, t) and not _fails(m["careful"], t))


def _heard_again(m: dict, t: Thresholds) -> bool:
    """Does a run hear the take again carefully? (The quick hearing fails it for a few missing words only.)"""
    return (
        "careful" in m
        and "error" not in m
        and 0 < m["missing_share"] <= CAREFUL_MAX_MISSING_SHARE
        and m["longest_extra_s"] <= t.max_extra_s
        and m["wer"] <= t.max_wer
        and m["trailing_silence_s"] >= t.min_trailing_silence_s
    )


def _fails(m: dict, t: Thresholds) -> bool:
    """Would the judge fail one hearing's measurements ``m`` under thresholds ``t``?"""
    return (
        "error" in m
        or m["longest_missing"] > t.max_missing_run
        or m["missing_share"] > t.max_missing_share
        or m["longest_extra_s"] > t.max_extra_s
        or m["wer"] > t.max_wer
        or m["trailing_silence_s"] < t.min_trailing_silence_s
    )


def rates(takes: list[corpus.Take], measured: dict, t: Thresholds) -> dict:
    by_kind: dict[str, list[bool]] = {}
    for take in takes:
        by_kind.setdefault(take.kind, []).append(flags(measured[take.take_id], t))
    out = {k: {"flagged": sum(v), "of": len(v), "share": round(sum(v) / len(v), 4)} for k, v in sorted(by_kind.items())}
    for label, kinds in (("all defects", corpus.DEFECT_KINDS), ("all clean", corpus.CLEAN_KINDS)):
        flat = [f for k in kinds for f in by_kind.get(k, [])]
        out[label] = {"flagged": sum(flat), "of": len(flat), "share": round(sum(flat) / max(1, len(flat)), 4)}
    return out


def calibrate(takes: list[corpus.Take], measured: dict, max_false: float) -> Thresholds:
    """The thresholds that flag most defects with at most ``max_false`` of clean takes flagged.

    Many combinations usually tie. Each limit is then put in the middle of its
    range among the tied combinations (the median of the values that occur in
    them), away from both the clean takes and the defects seen in
    calibration; if that mixture does not tie, the most tolerant tied
    combination is taken (largest limits, least trailing silence required).
    """
    grid = list(
        itertools.product(
            range(0, 9),
            (0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5),
            [round(0.05 * i, 2) for i in range(2, 41)],
            (0.0, 0.01, 0.02, 0.03, 0.04, 0.05),
        )
    )

    def score(t: Thresholds) -> tuple[int, int] | None:
        r = rates(takes, measured, t)
        if r["all clean"]["share"] > max_false:
            return None
        return (r["all defects"]["flagged"], -r["all clean"]["flagged"])

    scored = [
        (score(Thresholds(run, share, extra, 1.0, tail)), (run, share, extra, tail)) for run, share, extra, tail in grid
    ]
    scored = [(s, combo) for s, combo in scored if s is not None]
    assert scored, "no thresholds meet the false-flag limit"
    best = max(s for s, _ in scored)
    tied = [combo for s, combo in scored if s == best]
    middle = tuple(sorted({c[i] for c in tied})[len({c[i] for c in tied}) // 2] for i in range(4))
    if middle not in tied:
        middle = max(tied, key=lambda c: (c[0], c[1], c[2], -c[3]))
    run, share, extra, tail = middle
    note = f"calibrated: at most {max_false:.0%} of clean calibration takes flagged"
    note += f"; limits mid-range among {len(tied)} tied"
    return Thresholds(run, share, extra, 1.0, tail, note=note)


def timing_check(takes: list[corpus.Take], measured: dict, corpus_dir: Path, tolerance_s: float = 0.1) -> dict:
    """Word timings against true sentence boundaries: the last word of a sentence must end, and the
    next sentence's first word start, within ``tolerance_s`` of the silence Piper put between them."""
    from mediamill.text.normalize import spans

    checked = good = 0
    errors: list[float] = []
    for take in (t for t in takes if t.kind == "clean" and len(ROWS[t.row_id]) > 1):
        timings = measured[take.take_id]["timings"]
        gaps = corpus.sentence_gaps(corpus_dir / take.path)
        if len(gaps) != len(ROWS[take.row_id]) - 1:
            continue  # Piper split the row differently from the text's sentences
        words = [w for w, _, _ in timings]
        counts, at = [], 0
        for sentence in ROWS[take.row_id]:  # words per sentence, in the readings the take was judged with
            start = at
            for span in spans(sentence):
                at += next((len(r) for r in span.readings if tuple(words[at : at + len(r)]) == r), len(span.words))
            counts.append(at - start)
        last = 0
        for gap, count in zip(gaps, counts):
            last += count
            end, start = timings[last - 1][2], timings[last][1]
            if end is None or start is None:
                continue
            checked += 1
            errors += [abs(end - float(gap[0])), abs(start - float(gap[1]))]
            good += bool(end <= gap[0] + tolerance_s and start >= gap[1] - tolerance_s)
    errors.sort()
    return {
        "boundaries_checked": checked,
        "within_tolerance": good,
        "tolerance_s": tolerance_s,
        "median_abs_error_s": round(errors[len(errors) // 2], 3) if errors else None,
        "p95_abs_error_s": round(errors[int(0.95 * (len(errors) - 1))], 3) if errors else None,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=Path("/tmp/verify-corpus"))
    parser.add_argument("--rows", type=int, default=len(ROWS), help="first N rows of the corpus texts")
    parser.add_argument("--seed", type=int, default=7, help="corpus randomness and the calibration split")
    parser.add_argument(
        "--max-false", type=float, default=0.01, help="share of clean calibration takes allowed flagged"
    )
    parser.add_argument("--splits", type=int, default=10, help="further random halvings, to show how the rates vary")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "verify.json")
    parser.add_argument("--reuse", action="store_true", help="reuse the last run's measurements (OUT.children.json)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(verify_all(args.corpus) if args.child == "verify" else interleaved(args.corpus)))
        return

    row_ids = list(ROWS)[: args.rows]
    started = time.perf_counter()
    takes = corpus.build(args.corpus, row_ids, args.seed, log=lambda *_: None)
    build_s = time.perf_counter() - started
    saved = args.out.with_suffix(".children.json")
    if args.reuse and saved.is_file():  # recompute the figures only (e.g. after changing the shipped thresholds)
        children = json.loads(saved.read_text())
        verified, timed = children["verify"], children["interleaved"]
    else:
        verified = _child("verify", args.corpus)
        timed = _child("interleaved", args.corpus)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        saved.write_text(json.dumps({"verify": verified, "interleaved": timed}))
    measured = verified["takes"]

    shuffled = row_ids[:]
    random.Random(args.seed).shuffle(shuffled)
    calib_rows = set(shuffled[: len(shuffled) // 2])
    calib = [t for t in takes if t.row_id in calib_rows]
    test = [t for t in takes if t.row_id not in calib_rows]
    chosen = calibrate(calib, measured, args.max_false)
    shipped = THRESHOLDS["pocketsphinx"]

    repeats = []
    for split in range(args.splits):
        rows = row_ids[:]
        random.Random(1000 + split).shuffle(rows)
        half = set(rows[: len(rows) // 2])
        t = calibrate([x for x in takes if x.row_id in half], measured, args.max_false)
        r = rates([x for x in takes if x.row_id not in half], measured, t)
        limits = [t.max_missing_run, t.max_missing_share, t.max_extra_s, t.min_trailing_silence_s]
        repeats.append(
            {
                "defects_flagged": r["all defects"]["share"],
                "clean_flagged": r["all clean"]["share"],
                "thresholds": limits,
            }
        )
    cross = {
        "splits": len(repeats),
        "defects_flagged_min": min((x["defects_flagged"] for x in repeats), default=None),
        "defects_flagged_mean": round(sum(x["defects_flagged"] for x in repeats) / max(1, len(repeats)), 4),
        "clean_flagged_max": max((x["clean_flagged"] for x in repeats), default=None),
        "clean_flagged_mean": round(sum(x["clean_flagged"] for x in repeats) / max(1, len(repeats)), 4),
        "each": repeats,
    }

    gen = timed["rows"]
    ratio: dict[str, dict] = {}
    for kind in (*corpus.CLEAN_KINDS, *corpus.DEFECT_KINDS, "all takes"):
        ks = [t for t in takes if kind in (t.kind, "all takes")]
        v = sum(timed["verify_s"][t.take_id] for t in ks)
        g = sum(gen[t.row_id]["gen_s"] for t in ks)
        audio = sum(measured[t.take_id].get("audio_s", 0.0) for t in ks)
        ratio[kind] = {
            "takes": len(ks),
            "verify_s": round(v, 3),
            "piper_s": round(g, 3),
            "ratio": round(v / g, 4),
            "verify_x_realtime": round(audio / v, 1),
        }
    oov = sorted({x for m in measured.values() for x in m.get("letter_to_sound", [])})
    clean = [t for t in takes if t.kind == "clean"]
    doc = {
        "command": " ".join(["python bench/verify.py", *(sys.argv[1:] if argv is None else argv)]),
        "rows": len(row_ids),
        "takes": len(takes),
        "seed": args.seed,
        "corpus_build_s": round(build_s, 1),
        "calibration_rows": sorted(calib_rows),
        "calibrated_thresholds": asdict(chosen),
        "shipped_thresholds": asdict(shipped),
        "test_half_with_calibrated": rates(test, measured, chosen),
        "test_half_with_shipped": rates(test, measured, shipped),
        "calibration_half_with_calibrated": rates(calib, measured, chosen),
        "whole_corpus_with_shipped": rates(takes, measured, shipped),
        "other_random_halves": cross,
        "errors": sorted(k for k, m in measured.items() if "error" in m),
        "time_ratio_verify_over_piper": ratio,
        "piper_x_realtime": round(sum(g["audio_s"] for g in gen.values()) / sum(g["gen_s"] for g in gen.values()), 2),
        "second_pass_share": {
            k: round(
                sum(measured[t.take_id].get("passes") == 2 for t in takes if t.kind == k)
                / max(1, sum(t.kind == k for t in takes)),
                3,
            )
            for k in (*corpus.CLEAN_KINDS, *corpus.DEFECT_KINDS)
        },
        "heard_again_share": {  # takes the quick hearing fails for a few missing words (shipped thresholds)
            k: round(
                sum(
                    _fails(m := measured[t.take_id], shipped) and _heard_again(m, shipped) for t in takes if t.kind == k
                )
                / max(1, sum(t.kind == k for t in takes)),
                3,
            )
            for k in (*corpus.CLEAN_KINDS, *corpus.DEFECT_KINDS)
        },
        "word_timings": timing_check(takes, measured, args.corpus),
        "decoder_load_s": round(verified["decoder_load_s"], 3),
        "piper_load_s": round(timed["piper_load_s"], 3),
        "peak_mb_verifier_process": round(verified["peak_mb"], 1),
        "peak_mb_before_recogniser": round(verified["peak_mb_before_recogniser"], 1),
        "loadavg_end": timed["loadavg_end"],
        "letter_to_sound": {
            "distinct_words": len(oov),
            "clean_rows_with_any": sum(1 for t in clean if measured[t.take_id].get("letter_to_sound")),
            "words": oov,
        },
        "measurements": measured,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1))
    print(json.dumps({k: v for k, v in doc.items() if k not in ("measurements", "calibration_rows")}, indent=1))


if __name__ == "__main__":
    main()
