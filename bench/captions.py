"""Caption timing: cue boundaries against where each row's speech really is in the delivered audio.

A production of Piper rows (two chapters, pauses of 0.6-1.0 s between rows)
is delivered as a podcast episode with an intro crossfaded into the speech
(no music bed, so the pauses stay silent and each row's speech can be found
in the delivered MP3 by its level) and as an audiobook with a WebVTT per
chapter. For every row, the start of its first cue and the end of its last
cue are compared with where the row's speech starts and ends in the
delivered file, found by decoding it (10 ms frames, 35 dB below the loud
frames). Twice in one run: with verification (cues timed by the recogniser's
word timings) and without (each row's speech shared among its cues by length).

Usage: python bench/captions.py [ROWS]
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import prefect_api, save  # noqa: E402

from tests.helpers.verify_texts import ROWS  # noqa: E402

FRAME_S = 0.01


def _levels(path: Path):
    """Per-10 ms frame RMS in dB of a decoded file (mono mix), and its rate."""
    import av
    import numpy as np

    chunks = []
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=16000)
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
    x = np.concatenate(chunks)
    n = int(16000 * FRAME_S)
    frames = x[: len(x) // n * n].reshape(-1, n)
    return 20 * np.log10(np.sqrt((frames**2).mean(axis=1)) + 1e-9)


def _speech_spans(db, expected: list[tuple[float, float]], speech_from_s: float = 0.0) -> list[tuple[float, float]]:
    """Where each row's speech is: the loud frames between the middle of the pauses around it.

    ``speech_from_s`` is where the speech track begins in the mix: before it, loud frames are the intro."""
    loud = db > (db.max() - 35.0)
    spans = []
    for i, (start, end) in enumerate(expected):
        lo = (expected[i - 1][1] + start) / 2 if i else max(speech_from_s, start - 0.5)
        hi = (end + expected[i + 1][0]) / 2 if i + 1 < len(expected) else end + 0.5
        idx = [k for k in range(int(lo / FRAME_S), min(len(loud), int(hi / FRAME_S))) if loud[k]]
        spans.append((idx[0] * FRAME_S, (idx[-1] + 1) * FRAME_S) if idx else (start, end))
    return spans


def _errors(cue_list, texts: list[str], truth: list[tuple[float, float]], held: list[float]) -> list[float]:
    """|cue start - speech start| and |cue end - speech end| per row, from the cues' own text order.

    A row whose speech is shorter than a cue's minimum time on screen (1 s) keeps its caption up into the
    pause by design; that end is put in ``held`` instead."""
    from mediamill.deliver.captions import MIN_CUE_S

    errors, at = [], 0
    for text, (start, end) in zip(texts, truth):
        words = len(text.split())
        mine, count = [], 0
        while at < len(cue_list) and count < words:
            mine.append(cue_list[at])
            count += len(cue_list[at].text.split())
            at += 1
        errors.append(abs(mine[0].start_s - start))
        short = end - start < MIN_CUE_S and mine[-1].end_s - mine[0].start_s >= MIN_CUE_S - 0.002
        (held if short else errors).append(abs(mine[-1].end_s - end))
    return errors


def _stats(errors: list[float], held: list[float]) -> dict:
    ordered = sorted(errors)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "boundaries": len(errors),
        "median_ms": round(statistics.median(errors) * 1000),
        "p95_ms": round(p95 * 1000),
        "max_ms": round(max(errors) * 1000),
        "held_to_1s_minimum": [round(h * 1000) for h in held],
    }


def measure(rows: int, verify: str, work: Path) -> dict:
    import webvtt

    from mediamill.assemble import build_timeline
    from mediamill.deliver.captions import Cue
    from mediamill.flows import produce
    from mediamill.media import probe
    from mediamill.plan import validate
    from mediamill.store import Store

    os.environ["MEDIAMILL_VERIFY"] = verify
    book = work / f"book-{verify}"
    book.mkdir()
    shutil.copytree(ROOT / "manifests" / "music", book / "music")
    texts = [" ".join(ROWS[k]) for k in sorted(ROWS)[:rows]]
    lines = ["id,chapter,text,pause_after"]
    for i, text in enumerate(texts):
        chapter = "One" if i == 0 else ("Two" if i == rows // 2 else "")
        pause = 0.6 + 0.4 * (i % 2)
        lines.append(f'r{i:03d},{chapter},"{text.replace(chr(34), chr(34) * 2)}",{pause}')
    manifest = book / "show.csv"
    manifest.write_text("\n".join(lines) + "\n")
    (book / "show.toml").write_text(
        'profiles = ["audiobook", "podcast"]\n[podcast]\nintro = "music/intro.mp3"\ncrossfade_s = 1.0\n'
    )
    out = work / f"out-{verify}"
    state = asyncio.run(produce(manifest=str(manifest), backend="piper", outputs=str(out), return_state=True))
    assert state.is_completed(), state.message

    plan = validate(manifest, "piper")
    timeline = build_timeline(plan, {j.key: Store(out).get(j.key) for j in plan.jobs})
    spans = [r for c in timeline.chapters for r in c.rows]
    offset = probe(book / "music" / "intro.mp3").duration_s - 1.0

    def read(path: Path) -> list[Cue]:
        clock = lambda c: sum(float(x) * 60**i for i, x in enumerate(reversed(c.replace(",", ".").split(":"))))  # noqa: E731
        return [Cue(clock(c.start), clock(c.end), c.text) for c in webvtt.read(str(path))]

    episode = out / "show" / "podcast" / "show.mp3"
    truth = _speech_spans(
        _levels(episode), [(offset + r.book_start_s, offset + r.book_start_s + r.duration_s) for r in spans], offset
    )
    podcast_held: list[float] = []
    podcast = _errors(read(episode.with_suffix(".vtt")), texts, truth, podcast_held)
    chapters, chapters_held = [], []
    for chapter, audio in zip(timeline.chapters, sorted((out / "show" / "chapters").glob("*.flac"))):
        vtt = out / "show" / "captions" / f"{audio.stem}.vtt"
        truth = _speech_spans(_levels(audio), [(r.start_s, r.end_s) for r in chapter.rows])
        chapters += _errors(read(vtt), [texts[int(r.id[1:])] for r in chapter.rows], truth, chapters_held)
    return {"podcast_episode": _stats(podcast, podcast_held), "audiobook_chapters": _stats(chapters, chapters_held)}


def main(rows: int = 24) -> None:
    work = Path(tempfile.mkdtemp(prefix="mediamill-captions-"))
    with prefect_api():
        doc = {
            "rows": rows,
            "word_timed (MEDIAMILL_VERIFY=pocketsphinx)": measure(rows, "pocketsphinx", work),
            "by_length (MEDIAMILL_VERIFY=off)": measure(rows, "off", work),
        }
    shutil.rmtree(work, ignore_errors=True)
    save("captions", doc)


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:2]))
