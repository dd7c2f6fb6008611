"""What a provider billed is kept to its last digit and summed exactly."""

from __future__ import annotations

from mediamill.core import exact_sum
from mediamill.generate.job import _sum
from mediamill.report.summary import summarise


def test_a_billed_amount_is_kept_as_billed_not_rounded():
    billed = float("0.003098500000")  # Wiro's totalcost, as its Detail answers it
    assert _sum([billed]) == 0.0030985
    assert _sum([billed, billed, None]) == 0.006197
    assert _sum([None, None]) is None


def test_sums_are_exact_where_float_addition_is_not():
    assert 0.1 + 0.2 != 0.3
    assert exact_sum([0.1, 0.2]) == 0.3
    assert exact_sum(["0.0030985"] * 1000) == 3.0985
    assert exact_sum([0.0000001] * 10_000) == 0.001


def test_the_summary_adds_rows_exactly():
    rows = [
        {
            "status": "done",
            "kind": "tts",
            "backend": "wiro",
            "audio_s": 1.0,
            "cost_usd": c,
            "compute_s": 0.0,
            "elapsed_s": 0.0,
            "cost_source": "reported",
        }
        for c in (0.1, 0.2, 0.0030985)
    ]
    summary = summarise(rows)
    assert summary["cost_usd"] == 0.3030985
    assert summary["cost_by_backend"] == {"wiro": 0.3030985}
