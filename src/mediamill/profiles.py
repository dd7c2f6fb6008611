"""Delivery profiles: what a platform accepts, as declarative rules on measurements.

``PROFILES`` is the one registry of profiles: a profile names what it needs
from a manifest (speech rows, video rows), its targets (what mastering aims
for) and its rules (what the encoded files must measure). The sidecar, the
command line and planning read their names from here; ``mediamill.deliver``
has the mastering that runs each. Rules are judged on the delivered files,
never on intermediates, and a failing rule is reported by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .media.measure import Measurement


@dataclass(frozen=True)
class Rule:
    name: str
    metric: str
    low: float | None = None
    high: float | None = None
    unit: str = ""

    def judge(self, value: Any) -> Verdict:
        ok = value is not None and (self.low is None or value >= self.low) and (self.high is None or value <= self.high)
        return Verdict(self.name, ok, value, self.expected())

    def expected(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        if self.low is not None and self.high is not None:
            return f"{self.low:g}{unit} to {self.high:g}{unit}" if self.low != self.high else f"{self.low:g}{unit}"
        return f"≤ {self.high:g}{unit}" if self.high is not None else f"≥ {self.low:g}{unit}"


@dataclass(frozen=True)
class Verdict:
    rule: str
    ok: bool
    value: Any
    expected: str

    def __str__(self) -> str:
        value = f"{self.value:.2f}" if isinstance(self.value, float) else str(self.value)
        return f"{self.rule}: {value} (expected {self.expected})"


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    rules: tuple[Rule, ...]
    # Mastering targets.
    target_lufs: float | None = None
    target_rms_db: float | None = None
    limit_db: float = -1.0  # the limiter's ceiling (sample peak), below the rule's maximum
    # Rows a manifest must have for this profile: "speech" (tts, clone) and/or "video".
    needs: frozenset[str] = frozenset()
    # Integrated loudness targets by channel count (mono, stereo), where the target depends on it.
    lufs_by_channels: tuple[float, float] | None = None

    def judge(self, m: Measurement, extra: dict[str, Any] | None = None) -> list[Verdict]:
        values = {**m.summary(), **(extra or {})}
        return [rule.judge(values.get(rule.metric)) for rule in self.rules_for(m)]

    def rules_for(self, m: Measurement) -> tuple[Rule, ...]:
        if self.lufs_by_channels is not None:  # the loudness target depends on the file's channel count
            target = self.lufs_for(m.channels or 1)
            assert target is not None  # lufs_for reads lufs_by_channels, set here
            return (Rule("integrated loudness", "integrated_lufs", target - 1, target + 1, "LUFS"), *self.rules)
        return self.rules

    def lufs_for(self, channels: int) -> float | None:
        """The integrated loudness target for a file with this many channels."""
        if self.lufs_by_channels is None:
            return self.target_lufs
        return self.lufs_by_channels[1] if channels >= 2 else self.lufs_by_channels[0]


ACX = Profile(
    name="acx",
    description="ACX (Audible): one MP3 per chapter, 44.1 kHz 192 kbps CBR mono, RMS −23…−18 dB, peaks ≤ −3 dB",
    target_rms_db=-20.0,
    limit_db=-4.0,  # MP3 encoding can add half a decibel or more to sample peaks
    needs=frozenset({"speech"}),
    rules=(
        Rule("RMS level", "rms_db", -23.0, -18.0, "dB"),
        Rule("peak level", "peak_db", None, -3.0, "dB"),
        Rule("noise floor", "noise_floor_db", None, -60.0, "dB"),
        Rule("sample rate", "sample_rate", 44100, 44100, "Hz"),
        Rule("channels", "channels", 1, 1),
        Rule("bitrate (CBR)", "bitrate_kbps", 190.0, 194.0, "kbps"),
        Rule("length", "duration_min", None, 120.0, "min"),
        Rule("room tone at the head", "head_silence_s", 0.5, 1.0, "s"),
        Rule("room tone at the tail", "tail_silence_s", 1.0, 5.0, "s"),
    ),
)

AUDIOBOOK = Profile(
    name="audiobook",
    description="M4B with chapters and tags; one gain for the whole book to −19 LUFS, true peak ≤ −1 dBTP",
    target_lufs=-19.0,
    limit_db=-3.0,  # a sample-peak limiter; AAC at 64 kbps adds up to ~1.5 dB of true peak
    rules=(
        Rule("integrated loudness", "integrated_lufs", -20.5, -17.5, "LUFS"),
        Rule("true peak", "true_peak_dbtp", None, -1.0, "dBTP"),
        Rule("chapter markers", "chapters", 1, None),
    ),
)

PODCAST = Profile(
    name="podcast",
    description="one episode MP3: −16 LUFS stereo / −19 LUFS mono, true peak ≤ −1 dBTP",
    limit_db=-2.0,
    needs=frozenset({"speech"}),
    lufs_by_channels=(-19.0, -16.0),
    rules=(Rule("true peak", "true_peak_dbtp", None, -1.0, "dBTP"),),
)

VIDEO = Profile(
    name="video",
    description="clips in row order, H.264/AAC MP4, with narration or a song mixed in or replacing the clip audio",
    target_lufs=-16.0,
    limit_db=-2.5,
    needs=frozenset({"video"}),
    rules=(
        Rule("video stream", "has_video", 1, 1),
        Rule("audio stream", "has_audio", 1, 1),
        Rule("true peak", "true_peak_dbtp", None, -1.0, "dBTP"),
    ),
)

READALONG = Profile(
    name="readalong",
    description="EPUB 3 read-along: the text highlighted as the narration plays (Media Overlays), audio inside",
    needs=frozenset({"speech"}),
    rules=(),
)

PROFILES = {p.name: p for p in (AUDIOBOOK, ACX, PODCAST, VIDEO, READALONG)}
