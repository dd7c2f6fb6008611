"""Any audio file to the 16 kHz mono 16-bit PCM that speech recognisers read.

Contract: ``pcm16k(path)`` returns little-endian signed 16-bit samples at
16 kHz, one channel, as ``bytes``, decoded in memory with PyAV (FFmpeg's
libraries: WAV, FLAC, MP3, AAC/M4A, Opus...). It raises ``AudioError`` for a
file that cannot be read or holds no audio stream, and, given
``max_seconds``, for one longer than that: decoding stops there, whatever the
file's header claims, so memory stays bounded by the limit.

Speed matters (a take is verified in tens of milliseconds): 16-bit WAV files
are read with the ``wave`` module, skipping FFmpeg's format probing (about
25 ms a file); other files are decoded frame by frame and resampled in one
call, since each resampler call costs about 60 us and an MP3 has 40 frames a
second. Channels are averaged frame by frame, so only mono samples are kept.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16_000
_SCALE = {"s16": 32768.0, "s32": 2147483648.0, "flt": 1.0, "dbl": 1.0}


class AudioError(RuntimeError):
    """The file is missing, unreadable, or has no audio."""


class AudioTooLong(AudioError):
    """The audio goes on past the ``max_seconds`` it was decoded with."""


def _too_long(path: Path, max_seconds: float) -> AudioTooLong:
    return AudioTooLong(f"{path}: longer than {max_seconds:g} s")


def _read_wav(path: Path, max_seconds: float | None) -> tuple[np.ndarray, int] | None:
    """(mono float32 samples, rate) for a 16-bit PCM WAV file; None for anything else."""
    try:
        with wave.open(str(path), "rb") as wav:
            if wav.getsampwidth() != 2 or wav.getcomptype() != "NONE":
                return None
            channels, rate, frames = wav.getnchannels(), wav.getframerate(), wav.getnframes()
            if max_seconds is not None:
                # One frame past the limit is enough to refuse; a streamed WAV's header claims 4 GiB.
                frames = min(frames, int(max_seconds * rate) + 1)
            data = np.frombuffer(wav.readframes(frames), dtype="<i2")
    except (wave.Error, EOFError):
        return None
    if max_seconds is not None and len(data) // max(channels, 1) > max_seconds * rate:
        raise _too_long(path, max_seconds)
    x = data.astype(np.float32) / 32768.0
    if channels > 1:
        x = x[: len(x) // channels * channels].reshape(-1, channels).mean(axis=1)
    return x, rate


def _mono(frame) -> np.ndarray:
    """A decoded ``av.AudioFrame`` as mono float32 in [-1, 1]."""
    name, channels = frame.format.name.rstrip("p"), len(frame.layout.channels)
    x = frame.to_ndarray()  # planar: (channels, n); packed: (1, n * channels)
    x = x.T if frame.format.is_planar else x.reshape(-1, channels)  # (n, channels)
    x = x.mean(axis=1, dtype=np.float64) if channels > 1 else x[:, 0]
    if name == "u8":
        return (x.astype(np.float32) - 128.0) / 128.0
    return x.astype(np.float32) / np.float32(_SCALE.get(name, 1.0))


def _decode(path: Path, max_seconds: float | None) -> tuple[np.ndarray, int]:
    import av

    chunks: list[np.ndarray] = []
    rate, samples = 0, 0
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise AudioError(f"{path}: no audio stream")
            for frame in container.decode(audio=0):
                rate, samples = frame.sample_rate, samples + frame.samples
                if max_seconds is not None and samples > max_seconds * rate:
                    raise _too_long(path, max_seconds)
                chunks.append(_mono(frame))
    except AudioError:
        raise
    except (OSError, av.FFmpegError) as exc:
        raise AudioError(f"{path}: cannot decode audio ({exc})") from exc
    if not chunks:
        return np.zeros(0, np.float32), rate
    return np.concatenate(chunks), rate


def pcm16k(path: str | Path, rate: int = SAMPLE_RATE, max_seconds: float | None = None) -> bytes:
    """Decode ``path`` to mono s16 PCM at ``rate`` Hz; ``AudioError`` past ``max_seconds`` of it."""
    import av

    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such file")
    found = _read_wav(path, max_seconds) if path.suffix.lower() in (".wav", ".wave") else None
    samples, source_rate = found if found is not None else _decode(path, max_seconds)
    if samples.size == 0:
        return b""
    if source_rate == rate:
        return (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
    frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1).astype(np.float32), format="flt", layout="mono")
    frame.sample_rate = source_rate
    resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
    out = [f.to_ndarray().tobytes() for f in resampler.resample(frame)]
    out += [f.to_ndarray().tobytes() for f in resampler.resample(None)]  # flush the filter's delay line
    return b"".join(out)


def duration_s(pcm: bytes, rate: int = SAMPLE_RATE) -> float:
    return len(pcm) / 2 / rate


def frame_energy_db(pcm: bytes, rate: int = SAMPLE_RATE, frame_s: float = 0.01) -> np.ndarray:
    """RMS level of each ``frame_s`` frame in dB below full scale (digital silence is -100)."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
    hop = max(1, int(rate * frame_s))
    frames = len(samples) // hop
    if frames == 0:
        return np.zeros(0, dtype=np.float32)
    power = np.mean(samples[: frames * hop].reshape(frames, hop) ** 2, axis=1)
    return (10.0 * np.log10(power + 1e-10)).astype(np.float32)
