"""One home for waits between tries: doubling with a cap and jitter, polls that grow, and Retry-After."""

from __future__ import annotations

import itertools
import math

import pytest

from mediamill.core.waits import backoff, doubling, retry_after


def test_doubling_grows_to_its_cap_and_jitter_stays_within_its_share():
    assert [doubling(n) for n in range(8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert doubling(3, base=2.0, cap=math.inf) == 16.0
    draws = [doubling(2, jitter=0.5) for _ in range(500)]
    assert all(1.0 <= d <= 3.0 for d in draws) and max(draws) - min(draws) > 1.0


def test_polls_grow_by_their_factor_up_to_the_most():
    waits = list(itertools.islice(backoff(1.0, 5.0, factor=2.0, jitter=0.0), 5))
    assert waits == [1.0, 2.0, 4.0, 5.0, 5.0]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("7", 7.0),
        ("2.5", 2.5),
        ("0", 0.0),
        ("3600", 60.0),
        (None, 4.0),
        ("", 4.0),
        ("soon", 4.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 4.0),
        ("-3", 4.0),
        ("nan", 4.0),
        ("inf", 4.0),
    ],
)
def test_retry_after_is_honoured_within_the_cap_and_nonsense_falls_back(header, expected):
    assert retry_after(header, fallback=4.0) == expected
