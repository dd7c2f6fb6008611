"""Checking takes against their text: the duration check and the per-row QC flags.

A backend's bad-case retakes use ``DurationCheck``; the generate stage asks
``row_flags`` for the results' ``qc`` column. Nothing here knows engines or Prefect.
"""

from .duration import DurationCheck
from .rowqc import MAX_INNER_SILENCE_S, row_flags

__all__ = ["MAX_INNER_SILENCE_S", "DurationCheck", "row_flags"]
