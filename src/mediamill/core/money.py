"""Amounts of money added exactly.

A provider bills amounts such as ``0.0030985``; a float holds that figure
exactly as written (its shortest form reads back the same), but adding floats
does not (``0.1 + 0.2``), and rounding the sum loses what was billed. Sums are
made in decimal, from each amount's shortest written form, and given back as
the float nearest to the exact sum.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal


def exact_sum(amounts: Iterable[float | int | str | None]) -> float | None:
    """The exact sum of the known amounts (None where every one is unknown)."""
    known = [a for a in amounts if a is not None]
    if not known:
        return None
    return float(sum((Decimal(a if isinstance(a, str) else repr(a)) for a in known), Decimal(0)))
