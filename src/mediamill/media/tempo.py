"""Pitch-preserving tempo changes with ffmpeg's ``atempo``: a ratio of 2 plays twice as fast, in half the time.

``tempo_filter(ratio)`` is the filter chain, ``change_tempo(src, dest, ratio)``
re-times a file into another of the kind ``dest``'s suffix names, and
``tempo_stream(chunks, sample_rate, ratio)`` re-times 16-bit mono PCM while it
is still arriving. Pauses stretch and shrink with the speech, so the whole
take's length follows the ratio, to the sample. Nothing here knows engines or requests:
callers decide when audio needs it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from pathlib import Path

from ..core.files import atomic_path
from .ffmpeg import MediaError, run_ffmpeg
from .pipe import pipe_pcm
from .probe import probe

# One atempo stage is kept within 0.5-2: beyond 2 it drops samples instead of blending them (ffmpeg's
# documentation), and builds before ffmpeg 4.3 refuse more than 2 at all. Other ratios are chained.
STAGE_MIN, STAGE_MAX = 0.5, 2.0
MIN_RATIO, MAX_RATIO = 0.01, 100.0
# atempo drops its last, partial window (tens of milliseconds a stage): a file is padded with this much
# silence first and cut to its exact length after, so a take of d seconds lasts d / ratio.
PAD_S = 0.25
LOSSLESS = ("pcm_", "flac")
# A lossy source is encoded again, by its decoder's name, at a quality that adds no audible second loss.
REENCODE = {
    "mp3": ["-c:a", "libmp3lame", "-q:a", "2"],
    "aac": ["-c:a", "aac", "-b:a", "192k"],
    "opus": ["-c:a", "libopus", "-b:a", "96k"],
}


def tempo_factors(ratio: float) -> list[float]:
    """The atempo stages whose product is ``ratio``, each within 0.5-2 (none for 1)."""
    if not (math.isfinite(ratio) and MIN_RATIO <= ratio <= MAX_RATIO):
        raise ValueError(f"tempo ratio must be from {MIN_RATIO} to {MAX_RATIO}, not {ratio}")
    factors: list[float] = []
    while ratio > STAGE_MAX:
        factors.append(STAGE_MAX)
        ratio /= STAGE_MAX
    while ratio < STAGE_MIN:
        factors.append(STAGE_MIN)
        ratio /= STAGE_MIN
    if abs(ratio - 1.0) > 1e-9:
        factors.append(ratio)
    return factors


def tempo_filter(ratio: float) -> str:
    """ffmpeg's audio filter for the ratio (``anull`` when it changes nothing)."""
    return ",".join(f"atempo={f:.9g}" for f in tempo_factors(ratio)) or "anull"


def change_tempo(src: Path, dest: Path, ratio: float) -> Path:
    """Write ``src`` re-timed by ``ratio`` to ``dest`` (atomically), keeping sample rate and channels.

    ``dest``'s suffix names the container. A lossless source keeps its codec (16-bit
    PCM stays 16-bit PCM); a lossy one is encoded again at a generous quality, or
    decoded to 16-bit PCM when ``dest`` is a WAV file.
    """
    info = probe(src)
    codec = info.audio_codec
    if codec is None or not info.sample_rate:
        raise MediaError(f"no audio stream in {src}")
    samples = round(info.duration_s * info.sample_rate / ratio)
    chain = f"apad=pad_dur={PAD_S},{tempo_filter(ratio)},atrim=end_sample={samples}"
    if dest.suffix.lower() == ".wav":  # WAV holds PCM: the source's own, or 16-bit
        keep = ["-c:a", codec if codec.startswith("pcm_") else "pcm_s16le"]
    elif codec.startswith(LOSSLESS):
        keep = ["-c:a", codec]
    else:  # lossy: its own encoder at a generous quality, else ffmpeg's default for dest's suffix
        keep = next((args for name, args in REENCODE.items() if name in codec), [])
    with atomic_path(dest) as tmp:
        run_ffmpeg("-i", src, "-vn", "-map_metadata", "0", "-filter:a", chain, *keep, tmp)
    return dest


def tempo_stream(chunks: Iterable[bytes], sample_rate: int, ratio: float) -> Iterator[bytes]:
    """Re-time 16-bit mono PCM chunks as they arrive (``media.pipe`` says how output follows input).

    Padded and cut like a file: the stream ends at the input's length over the ratio, to the sample.
    """
    received = 0
    ended = False

    def padded() -> Iterator[bytes]:
        nonlocal received, ended
        source = iter(chunks)
        try:
            for chunk in source:
                received += len(chunk)
                yield chunk
        finally:  # closed early, or failed: the source is closed with this generator
            close = getattr(source, "close", None)
            if close is not None:
                close()
        ended = True
        yield bytes(2 * round(PAD_S * sample_rate))

    sent = 0
    args = ["-filter:a", tempo_filter(ratio), "-c:a", "pcm_s16le", "-f", "s16le"]
    for block in pipe_pcm(padded(), sample_rate, args):
        if ended:  # output lags input: nothing was sent past the end before the input's length was known
            block = block[: max(0, 2 * round(received / 2 / ratio) - sent)]
        if block:
            sent += len(block)
            yield block
