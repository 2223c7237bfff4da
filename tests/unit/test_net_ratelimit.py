"""The token bucket, with a fake clock: the waits it asks for match the cap."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sa1b.net.ratelimit import RateLimiter

START = 1000.0


class Taker:
    """Takes from a bucket and waits as told, on a fake clock."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.now = START
        self.bucket = RateLimiter(rate, burst=burst, now=START)
        self.waits: list[float] = []

    def take(self, amount: int) -> None:
        wait = self.bucket.take(amount, self.now)
        assert wait >= 0
        if wait:
            self.waits.append(wait)
            self.now += wait


def test_burst_passes_without_waiting() -> None:
    taker = Taker(1000, burst=500)
    taker.take(200)
    taker.take(300)
    assert taker.waits == []


def test_waits_after_the_burst() -> None:
    taker = Taker(1000, burst=100)
    for _ in range(10):
        taker.take(100)
    assert sum(taker.waits) == pytest.approx(0.9)  # (1000 - 100) / 1000
    assert len(taker.waits) == 9


def test_one_large_take_waits_for_its_excess() -> None:
    taker = Taker(1000, burst=100)
    taker.take(5100)
    assert taker.waits == [pytest.approx(5.0)]


def test_idle_time_refills_only_up_to_burst() -> None:
    taker = Taker(1000, burst=100)
    taker.take(100)
    taker.now += 3600  # an hour idle refills at most `burst` tokens
    taker.take(100)
    assert taker.waits == []
    taker.take(1000)
    assert sum(taker.waits) == pytest.approx(1.0)


def test_default_burst() -> None:
    assert RateLimiter(10 * 1024 * 1024).burst == pytest.approx(1024 * 1024)
    assert RateLimiter(1000).burst == 64 * 1024


@pytest.mark.parametrize("rate", [0, -1, -0.5])
def test_rate_must_be_positive(rate: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        RateLimiter(rate)


@given(
    rate=st.floats(1e3, 1e9),
    burst_share=st.floats(0.0, 2.0),
    chunks=st.lists(st.integers(1, 10**7), min_size=1, max_size=60),
)
def test_total_wait_is_bytes_over_rate_minus_burst(
    rate: float, burst_share: float, chunks: list[int]
) -> None:
    burst = rate * burst_share
    taker = Taker(rate, burst=burst)
    for chunk in chunks:
        taker.take(chunk)
    expected = max(0.0, (sum(chunks) - burst) / rate)
    assert sum(taker.waits) == pytest.approx(expected, rel=1e-6, abs=1e-6)
    # The cap holds at every point: bytes taken never outrun burst + rate * elapsed.
    assert sum(chunks) <= burst + rate * (taker.now - START) + 1e-3 * rate


@given(
    rate=st.floats(1e3, 1e7),
    steps=st.lists(st.tuples(st.integers(1, 10**6), st.floats(0.0, 5.0)), max_size=40),
)
def test_long_run_rate_never_exceeds_cap(rate: float, steps: list[tuple[int, float]]) -> None:
    burst = rate / 10
    taker = Taker(rate, burst=burst)
    taken = 0
    for amount, idle in steps:
        taker.now += idle
        taker.take(amount)
        taken += amount
        elapsed = taker.now - START
        assert taken <= burst * (1 + 1e-9) + rate * elapsed * (1 + 1e-9) + 1e-6
