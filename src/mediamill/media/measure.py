"""Measuring delivered audio: loudness (EBU R128), levels, noise floor, silences.

Loudness comes from ffmpeg's own ``ebur128`` filter (integrated loudness,
loudness range, true peak, and the momentary/short-term timeline for plots).
Levels come from decoding the file once, in blocks, with PyAV: RMS and
sample peak over all channels, the noise floor as the RMS of the quietest
half-second window, and the silence at the head and tail. Both stream, so a
ten-hour file costs time, not memory.
"""

from __future__ import annotations

import math
import re
import subprocess
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..core.processes import child_options
from .ffmpeg import MediaError, ffmpeg_exe
from .probe import probe

FLOOR_DB = -120.0  # what digital silence reads as, instead of -inf
SILENCE_DB = -50.0  # quieter than this (RMS over 50 ms) counts as silence at the head and tail
NOISE_WINDOW_S = 0.5
BLOCK_S = 0.05
TIMELINE_MAX_POINTS = 2000


@dataclass
class Measurement:
    path: str
    duration_s: float
    sample_rate: int | None
    channels: int | None
    codec: str | None
    bitrate_kbps: float | None
    integrated_lufs: float
    lra_lu: float
    true_peak_dbtp: float
    rms_db: float
    peak_db: float
    noise_floor_db: float
    head_silence_s: float
    tail_silence_s: float
    longest_silence_s: float
    # (seconds, momentary LUFS, short-term LUFS), thinned to at most TIMELINE_MAX_POINTS.
    timeline: list[tuple[float, float, float]] = field(default_factory=list, repr=False)

    def summary(self) -> dict:
        doc = asdict(self)
        doc.pop("timeline")
        return doc


def db(value: float) -> float:
    return FLOOR_DB if value <= 10 ** (FLOOR_DB / 20) else max(FLOOR_DB, 20 * math.log10(value))


_FRAME = re.compile(r"t:\s*([\d.]+)\s+TARGET:.*?M:\s*(-?[\d.inf]+)\s+S:\s*(-?[\d.inf]+)")
_SUMMARY = {
    "integrated_lufs": re.compile(r"^\s*I:\s*(-?[\d.]+|-inf)\s+LUFS"),
    "lra_lu": re.compile(r"^\s*LRA:\s*(-?[\d.]+)\s+LU"),
    "true_peak_dbtp": re.compile(r"^\s*Peak:\s*(-?[\d.]+|-inf)\s+dBFS"),
}


def _number(text: str) -> float:
    return FLOOR_DB if "inf" in text else max(FLOOR_DB, float(text))


def loudness(
    path: Path | None, timeline: bool = True, input_args: list[str] | None = None, true_peak: bool = True
) -> tuple[dict[str, float], list[tuple[float, float, float]]]:
    """ffmpeg's EBU R128 measurement: integrated, range, true peak, and the per-100 ms timeline.

    ``input_args`` replaces ``-i path``, e.g. a concat list to measure a whole book at once.
    """
    inputs = input_args or ["-i", str(path)]
    cmd = [
        ffmpeg_exe(),
        "-hide_banner",
        "-nostdin",
        "-nostats",
        "-loglevel",
        "verbose" if timeline else "info",
        *inputs,
        "-vn",
        "-af",
        f"ebur128=peak={'true' if true_peak else 'none'}" + (":framelog=verbose" if timeline else ""),
        "-f",
        "null",
        "-",
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, errors="replace", **child_options()
    )
    assert proc.stderr is not None
    points: list[tuple[float, float, float]] = []
    found: dict[str, float] = {}
    in_summary = False
    tail: list[str] = []
    try:
        for line in proc.stderr:  # streamed: a ten-hour file logs 360,000 frame lines
            tail = (tail + [line])[-8:]
            if not in_summary:
                m = _FRAME.search(line)
                if m:
                    points.append((float(m.group(1)), _number(m.group(2)), _number(m.group(3))))
                    if len(points) >= 2 * TIMELINE_MAX_POINTS:
                        points = points[::2]  # keep memory bounded; thinning again later evens it out
                    continue
                if "Summary:" in line:
                    in_summary = True
                continue
            for key, pattern in _SUMMARY.items():
                m = pattern.match(line)
                if m and key not in found:
                    found[key] = _number(m.group(1))
    except BaseException:
        proc.kill()  # an error or a cancel mid-stream: ffmpeg has no reader left
        raise
    finally:
        proc.stderr.close()  # the pipe is ours to close, whatever happened
        returncode = proc.wait()
    if returncode != 0 or len(found) < (3 if true_peak else 2):
        raise MediaError(f"cannot measure loudness of {path}: {''.join(tail).strip()[-400:]}")
    step = max(1, len(points) // TIMELINE_MAX_POINTS)
    return found, points[::step]


class _Blocks:
    """Statistics over consecutive 50 ms blocks, in constant memory however long the file."""

    def __init__(self, per_noise_window: int):
        self.count = 0
        self.first_loud: int | None = None
        self.last_loud: int | None = None
        self.longest_quiet = 0  # longest run of quiet blocks between loud ones
        self.window: deque[float] = deque(maxlen=per_noise_window)
        self.quietest = math.inf
        self.total = 0.0

    def add(self, mean_square: float) -> None:
        if mean_square >= 10 ** (SILENCE_DB / 10):
            if self.first_loud is None:
                self.first_loud = self.count
            elif self.last_loud is not None:
                self.longest_quiet = max(self.longest_quiet, self.count - self.last_loud - 1)
            self.last_loud = self.count
        self.window.append(mean_square)
        self.total += mean_square
        if len(self.window) == self.window.maxlen:
            self.quietest = min(self.quietest, sum(self.window) / len(self.window))
        self.count += 1

    def noise_floor(self) -> float:
        if self.quietest is math.inf:  # shorter than one window: the whole file is the window
            return self.total / max(1, self.count)
        return self.quietest


def levels(path: Path) -> dict[str, float]:
    """RMS, sample peak, noise floor and silences, decoding the audio once in blocks."""
    import av
    import numpy as np

    total_sq = 0.0
    count = 0
    peak = 0.0
    blocks = _Blocks(max(1, round(NOISE_WINDOW_S / BLOCK_S)))
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate or stream.rate
        block = max(1, int(rate * BLOCK_S))
        resampler = av.AudioResampler(format="flt", layout=stream.layout.name, rate=rate)
        carry = np.zeros(0, dtype=np.float64)
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                samples = out.to_ndarray().reshape(-1, len(stream.layout.channels)).astype(np.float64)
                sq = (samples**2).mean(axis=1)  # per sample instant, over channels
                total_sq += float(sq.sum())
                count += len(sq)
                peak = max(peak, float(np.abs(samples).max(initial=0.0)))
                carry = np.concatenate([carry, sq])
                whole = len(carry) // block * block
                for value in carry[:whole].reshape(-1, block).mean(axis=1).tolist():
                    blocks.add(value)
                carry = carry[whole:]
        if len(carry):
            blocks.add(float(carry.mean()))
    if not count:
        raise MediaError(f"{path}: no audio")
    if blocks.first_loud is None:  # silence throughout
        head = tail = blocks.count
    else:
        head, tail = blocks.first_loud, blocks.count - 1 - (blocks.last_loud or 0)
    return {
        "rms_db": db(math.sqrt(total_sq / count)),
        "peak_db": db(peak),
        "noise_floor_db": db(math.sqrt(max(blocks.noise_floor(), 0.0))),
        "head_silence_s": round(head * BLOCK_S, 3),
        "tail_silence_s": round(tail * BLOCK_S, 3),
        "longest_silence_s": round(blocks.longest_quiet * BLOCK_S, 3),
    }


def _audio_bitrate_kbps(path: Path) -> float | None:
    """The audio stream's own bitrate (a container's figure counts tags and cover art too)."""
    import av

    with av.open(str(path)) as container:
        rate = container.streams.audio[0].bit_rate if container.streams.audio else None
        if not rate and container.streams.audio and container.duration:
            rate = container.bit_rate  # formats that only know the total (WAV, FLAC)
    return round(rate / 1000, 1) if rate else None


def measure(path: Path, timeline: bool = True) -> Measurement:
    """Everything a delivery profile judges, measured on the file as delivered."""
    info = probe(path)
    loud, points = loudness(path, timeline)
    return Measurement(
        path=str(path),
        duration_s=round(info.duration_s, 3),
        sample_rate=info.sample_rate,
        channels=info.channels,
        codec=info.audio_codec,
        bitrate_kbps=_audio_bitrate_kbps(path),
        **loud,
        **levels(path),
        timeline=points,
    )
