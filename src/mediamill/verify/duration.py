"""The duration check: whether a take is plausibly as long as its text, or truncated, or babbling.

It catches the two ways autoregressive speech models fail: stopping early
(truncated) and not stopping (babbling, often until the length cap).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..text.pace import predicted_seconds


@dataclass(frozen=True)
class DurationCheck:
    """Bounds on plausible speech length, as ratios of the predicted length.

    The slacks keep very short texts ("Yes.") from being judged on ratios alone:
    a reader may pause or draw out a single word.
    """

    low: float = 0.35
    high: float = 3.0
    slack_s: float = 1.5  # above the upper bound
    low_slack_s: float = 0.3  # below the lower bound

    def bounds(self, text: str) -> tuple[float, float]:
        expected = predicted_seconds(text)
        return max(0.0, expected * self.low - self.low_slack_s), expected * self.high + self.slack_s

    def judge(self, duration_s: float, text: str, hit_cap: bool = False) -> str | None:
        """None when plausible, else why not ("truncated: ..." or "babbling: ...")."""
        low, high = self.bounds(text)
        expected = predicted_seconds(text)
        if hit_cap:
            return f"babbling: generation ran to its length cap ({duration_s:.1f} s for about {expected:.1f} s of text)"
        if duration_s > high:
            return f"babbling: {duration_s:.1f} s of audio for about {expected:.1f} s of text"
        if duration_s < low:
            return f"truncated: {duration_s:.1f} s of audio for about {expected:.1f} s of text"
        return None

    def max_seconds(self, text: str) -> float:
        return self.bounds(text)[1]
