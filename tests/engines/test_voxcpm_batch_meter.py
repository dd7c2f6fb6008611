"""The GPU-time apportioning rule, on a clock the test moves by hand."""

from __future__ import annotations

import pytest

from mediamill.engines.voxcpm.batch.meter import GpuMeter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def tick(self, seconds: float) -> None:
        self.now += seconds


def test_a_request_alone_pays_all_of_its_time():
    clock = Clock()
    meter = GpuMeter(clock)
    meter.start("a", 50)
    clock.tick(0.2)
    meter.reweigh("a", 1)
    clock.tick(1.8)
    assert meter.finish("a") == pytest.approx(2.0)
    assert meter.busy_s == pytest.approx(2.0)


def test_requests_decoding_together_share_each_moment_equally():
    clock = Clock()
    meter = GpuMeter(clock)
    meter.start("a", 1)
    clock.tick(1.0)  # a alone
    meter.start("b", 1)
    clock.tick(2.0)  # a and b: 1 s each
    a = meter.finish("a")
    clock.tick(0.5)  # b alone
    b = meter.finish("b")
    assert (a, b) == (pytest.approx(2.0), pytest.approx(1.5))
    assert a + b == pytest.approx(meter.busy_s) == pytest.approx(3.5)


def test_a_prefill_weighs_its_prompt_tokens():
    clock = Clock()
    meter = GpuMeter(clock)
    for name in "abc":
        meter.start(name, 1)  # three decoding
    meter.start("new", 97)  # prefilling 97 tokens
    clock.tick(1.0)
    assert meter.share("new") == pytest.approx(0.97)
    assert meter.share("a") == pytest.approx(0.01)
    meter.reweigh("new", 1)  # first chunk arrived: decoding like the rest
    clock.tick(4.0)
    shares = {name: meter.finish(name) for name in ["a", "b", "c", "new"]}
    assert shares["new"] == pytest.approx(1.97)
    assert shares["a"] == pytest.approx(1.01)
    assert sum(shares.values()) == pytest.approx(meter.busy_s) == pytest.approx(5.0)


def test_idle_time_is_nobodys():
    clock = Clock()
    meter = GpuMeter(clock)
    meter.start("a", 1)
    clock.tick(1.0)
    meter.finish("a")
    clock.tick(10.0)  # nothing in flight
    meter.start("b", 1)
    clock.tick(1.0)
    assert meter.finish("b") == pytest.approx(1.0)
    assert meter.busy_s == pytest.approx(2.0)


def test_shares_always_add_up_to_busy_time_under_churn():
    import random

    rng = random.Random(7)
    clock = Clock()
    meter = GpuMeter(clock)
    live: list[int] = []
    total = 0.0
    for n in range(2000):
        clock.tick(rng.uniform(0, 0.05))
        if live and (rng.random() < 0.4 or len(live) > 60):
            total += meter.finish(live.pop(rng.randrange(len(live))))
        elif live and rng.random() < 0.3:
            meter.reweigh(rng.choice(live), 1)
        else:
            meter.start(n, rng.choice([1, 30, 400]))
            live.append(n)
    for key in live:
        clock.tick(0.01)
        total += meter.finish(key)
    assert total == pytest.approx(meter.busy_s, rel=1e-9)
    assert meter.in_flight == 0
