"""What producing the imported manifest would cost, per backend, before anything runs.

- ``piper``, ``silence``: free (they run on this machine).
- ``pixazo``: the price table (``MEDIAMILL_PRICES``, key ``pixazo:voxcpm2`` or
  ``pixazo``), one request per row; free when the table does not price it,
  as mediamill's default table has VoxCPM2 at no cost.
- ``voxcpm-http``: the price table (key ``voxcpm-http``), one request per
  piece of at most 400 characters (the client's ``VOXCPM_HTTP_MAX_CHARS``).
- ``wiro``: Wiro reports a cost per task only after it ran; estimated from the
  price table when it has ``wiro:openbmb/voxcpm`` or ``wiro``, else unknown.
- ``voxcpm`` (local): device time x ``VOXCPM_PRICE_PER_HOUR``. Device time is
  the predicted speech length divided by ``AUDIO_S_PER_GPU_S`` (1.45 s of audio
  per GPU second: mediamill's benchmark of VoxCPM2 on one H200, batch size 1);
  a slower GPU or the CPU takes longer, so treat the figure as a lower bound.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..backends.hosted import lookup_price
from ..engines.voxcpm import VoxcpmSettings
from ..text.split import split_text

AUDIO_S_PER_GPU_S = 1.45
HTTP_PIECE_CHARS = 400
_MODELS = {"pixazo": "voxcpm2", "wiro": "openbmb/voxcpm", "voxcpm-http": "default"}


@dataclass(frozen=True)
class CostEstimate:
    backend: str
    usd: float | None  # None: cannot be known in advance
    basis: str

    def to_dict(self) -> dict:
        return {"backend": self.backend, "usd": self.usd, "basis": self.basis}


def estimate(backend: str, texts: list[str], speech_s: float) -> CostEstimate:
    chars = sum(len(t) for t in texts)
    if backend in ("piper", "silence"):
        return CostEstimate(backend, 0.0, "free: runs on this machine")
    if backend == "voxcpm":
        rate = VoxcpmSettings().price_per_hour
        gpu_s = speech_s / AUDIO_S_PER_GPU_S
        return CostEstimate(backend, round(gpu_s / 3600 * rate, 4),
                            f"{gpu_s / 3600:.2f} device-hours (at {AUDIO_S_PER_GPU_S} s of audio per GPU second, "
                            f"one H200) x VOXCPM_PRICE_PER_HOUR ${rate:g}")  # fmt: skip
    price = lookup_price(backend, _MODELS.get(backend, "default"), {})
    if backend == "voxcpm-http":
        requests = sum(len(split_text(t, HTTP_PIECE_CHARS)) for t in texts)
    else:
        requests = len(texts)
    if price is None:
        if backend == "wiro":
            return CostEstimate(backend, None, "Wiro reports each task's cost after it runs; set MEDIAMILL_PRICES "
                                               "(key 'wiro') to estimate it")  # fmt: skip
        if backend in ("pixazo", "voxcpm-http"):
            return CostEstimate(backend, 0.0, f"{requests} requests, not priced in MEDIAMILL_PRICES (free by default)")
        return CostEstimate(backend, None, "no price known for this backend (MEDIAMILL_PRICES)")
    usd = round(price.per_request * requests + price.per_1k_chars * chars / 1000, 4)
    return CostEstimate(backend, usd, f"price table: {requests} requests x ${price.per_request:g} + "
                                      f"{chars / 1000:.1f}k characters x ${price.per_1k_chars:g}")  # fmt: skip
