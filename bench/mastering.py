"""Stitching and mastering a long synthetic book: mediamill vs the plain ffmpeg commands.

The book is made of many short speech-like segments (a few distinct files
reused, so making them costs nothing) in 20-minute chapters. mediamill:
chapter FLACs from the segments and pauses, the whole-book loudness
measurement, the mastered M4B with chapters, and the QC measurement of the
M4B. Baseline, same run: the ffmpeg commands a careful engineer would type
for the same encode (concat to FLAC per chapter, ebur128 over the book,
concat to AAC with the same gain and limiter). Peak memory is the largest
resident size of this process and of any child (ffmpeg), so it shows
whether anything grows with the length of the book.

Usage: python bench/mastering.py [--hours 1]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import Timer, save  # noqa: E402

SEGMENT_S = 20.0
CHAPTER_MIN = 20
PAUSE_S = 0.6


def _rss_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024


class ChildMemory:
    """The largest resident size any child process (ffmpeg) reaches, sampled every 50 ms.

    getrusage's figure for children counts the moment between fork and exec,
    when a child is still a copy of this Python process, so it is useless here.
    """

    def __init__(self) -> None:
        import threading

        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._stop.wait(0.05):
            for child in me.children(recursive=True):
                try:
                    if child.name().startswith("ffmpeg"):
                        self.peak = max(self.peak, child.memory_info().rss)
                except psutil.Error:
                    pass

    def __enter__(self) -> ChildMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hours", type=float, default=1.0)
    args = parser.parse_args()

    from mediamill.media import master
    from mediamill.media.ffmpeg import run_ffmpeg
    from mediamill.media.measure import measure
    from mediamill.media.stitch import BookMeta, Piece, _silence, assemble_chapter, build_m4b, chapters_metadata
    from mediamill.profiles import AUDIOBOOK
    from tests.helpers.fakes import write_speechlike_wav

    total_s = args.hours * 3600
    per_chapter = int(CHAPTER_MIN * 60 / (SEGMENT_S + PAUSE_S))
    segments = int(total_s / (SEGMENT_S + PAUSE_S))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sources = [write_speechlike_wav(root / f"src{i}.wav", SEGMENT_S, -18 - i, rate=22050, seed=i) for i in range(6)]
        chapters = [
            [sources[(c * 7 + i) % len(sources)] for i in range(min(per_chapter, segments - c * per_chapter))]
            for c in range((segments + per_chapter - 1) // per_chapter)
        ]
        meta = BookMeta("Bench Book", "Bench")

        # mediamill: the functions the flow runs.
        with ChildMemory() as children, Timer() as t_mm:
            work = root / "mm"
            work.mkdir()
            done = []
            for n, parts in enumerate(chapters, start=1):
                dest = work / f"{n:02d}.flac"
                duration = assemble_chapter([Piece(p, PAUSE_S) for p in parts], dest, work / f"w{n}")
                done.append((f"Chapter {n}", dest, duration))
            lufs = master.integrated_lufs([p for _, p, _ in done], work)
            m4b = work / "book.m4b"
            build_m4b(
                done, meta, m4b, work, audio_filter=master.gain_chain(AUDIOBOOK.target_lufs - lufs, AUDIOBOOK.limit_db)
            )
        with ChildMemory() as qc_children, Timer() as t_qc:
            qc = measure(m4b)

        # Baseline: the same encode as plain ffmpeg commands.
        with Timer() as t_ff:
            base = root / "ff"
            base.mkdir()
            silence = _silence(base, PAUSE_S, 22050, 1)
            flacs = []
            for n, parts in enumerate(chapters, start=1):
                listing = base / f"{n}.txt"
                listing.write_text("".join(f"file '{p}'\nfile '{silence}'\n" for p in parts))
                flacs.append(base / f"{n:02d}.flac")
                run_ffmpeg("-f", "concat", "-safe", "0", "-i", listing, "-c:a", "flac", flacs[-1])
            book_list = base / "book.txt"
            book_list.write_text("".join(f"file '{f}'\n" for f in flacs))
            run_ffmpeg("-f", "concat", "-safe", "0", "-i", book_list, "-af", "ebur128", "-f", "null", "-")
            ffmeta = base / "meta.txt"
            ffmeta.write_text(chapters_metadata(meta, [(t, d) for t, _, d in done]))
            run_ffmpeg(
                "-f",
                "concat",
                "-safe",
                "0",
                "-i",
                book_list,
                "-f",
                "ffmetadata",
                "-i",
                ffmeta,
                "-map",
                "0:a",
                "-map_metadata",
                "1",
                "-map_chapters",
                "1",
                "-af",
                master.gain_chain(AUDIOBOOK.target_lufs - lufs, AUDIOBOOK.limit_db),
                "-c:a",
                "aac",
                "-b:a",
                "64k",
                "-movflags",
                "+faststart",
                base / "book.m4b",
            )
        doc = {
            "hours": args.hours,
            "segments": segments,
            "chapters": len(chapters),
            "book_s": round(sum(d for _, _, d in done), 1),
            "mediamill_s": round(t_mm.seconds, 1),
            "ffmpeg_s": round(t_ff.seconds, 1),
            "ratio_vs_ffmpeg": round(t_mm.seconds / t_ff.seconds, 2),
            "qc_measure_s": round(t_qc.seconds, 1),
            "m4b_lufs": qc.integrated_lufs,
            "m4b_true_peak": qc.true_peak_dbtp,
            "peak_rss_mb_python": round(_rss_mb(resource.RUSAGE_SELF), 1),
            "peak_rss_mb_ffmpeg": round(max(children.peak, qc_children.peak) / 2**20, 1),
        }
    save(f"mastering_{args.hours:g}h", doc)


if __name__ == "__main__":
    main()
