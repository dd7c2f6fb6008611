"""Prices of services that report no cost (``MEDIAMILL_PRICES``), and estimates made from them."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

from ...config import settings
from ..base import CostEstimate

__all__ = ["Price", "lookup_price", "price_table", "priced"]


@dataclass(frozen=True)
class Price:
    per_request: float = 0.0
    per_1k_chars: float = 0.0

    def cost(self, chars: int) -> float:
        return round(self.per_request + self.per_1k_chars * chars / 1000, 6)


def price_table() -> dict[str, Price]:
    return _parse_prices(settings().prices.strip())


@functools.lru_cache(maxsize=8)
def _parse_prices(raw: str) -> dict[str, Price]:
    """Prices for services that do not report a cost, from ``MEDIAMILL_PRICES``.

    JSON object keyed by ``backend:model`` (or ``backend``), each value either
    a number (USD per request) or ``{"per_request": .., "per_1k_chars": ..}``;
    the value may also name a JSON file holding that object.
    """
    if not raw:
        return {}
    if not raw.startswith("{"):
        raw = Path(raw).read_text()
    table = {}
    for key, value in json.loads(raw).items():
        table[key] = Price(per_request=float(value)) if isinstance(value, (int, float)) else Price(**value)
    return table


def priced(backend: str, price: Price | None, requests: int, chars: int, unpriced: CostEstimate) -> CostEstimate:
    """A cost estimate from a price (``requests`` requests of ``chars`` characters in all); ``unpriced`` without one."""
    if price is None:
        return unpriced
    usd = round(price.per_request * requests + price.per_1k_chars * chars / 1000, 4)
    return CostEstimate(
        backend,
        usd,
        f"price table: {requests} requests x ${price.per_request:g} + "
        f"{chars / 1000:.1f}k characters x ${price.per_1k_chars:g}",
    )


def lookup_price(backend: str, model: str, defaults: dict[str, Price]) -> Price | None:
    table = {**defaults, **price_table()}
    return table.get(f"{backend}:{model}") or table.get(backend)
