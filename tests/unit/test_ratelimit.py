"""The token bucket, with a fake clock and sleep: time slept matches the cap."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sa1b.ratelimit import RateLimiter


class FakeTime:
    """A clock that only moves when something sleeps (or the test says so)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.slept.append(seconds)
        self.now += seconds


def limiter(rate: float, burst: float | None = None) -> tuple[RateLimiter, FakeTime]:
    fake = FakeTime()
    return RateLimiter(rate, burst=burst, clock=fake.clock, sleep=fake.sleep), fake


def test_burst_passes_without_sleeping() -> None:
    bucket, fake = limiter(1000, burst=500)
    bucket.take(200)
    bucket.take(300)
    assert fake.slept == []


def test_example_sleeps_after_burst() -> None:
    bucket, fake = limiter(1000, burst=100)
    for _ in range(10):
        bucket.take(100)
    assert sum(fake.slept) == pytest.approx(0.9)  # (1000 - 100) / 1000
    assert len(fake.slept) == 9


def test_one_large_take_sleeps_for_its_excess() -> None:
    bucket, fake = limiter(1000, burst=100)
    bucket.take(5100)
    assert fake.slept == [pytest.approx(5.0)]


def test_idle_time_refills_only_up_to_burst() -> None:
    bucket, fake = limiter(1000, burst=100)
    bucket.take(100)
    fake.now += 3600  # an hour idle refills at most `burst` tokens
    bucket.take(100)
    assert fake.slept == []
    bucket.take(1000)
    assert sum(fake.slept) == pytest.approx(1.0)


def test_default_burst() -> None:
    assert limiter(10 * 1024 * 1024)[0].burst == pytest.approx(1024 * 1024)
    assert limiter(1000)[0].burst == 64 * 1024


@pytest.mark.parametrize("rate", [0, -1, -0.5])
def test_rate_must_be_positive(rate: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        RateLimiter(rate)


@given(
    rate=st.floats(1e3, 1e9),
    burst_share=st.floats(0.0, 2.0),
    chunks=st.lists(st.integers(1, 10**7), min_size=1, max_size=60),
)
def test_total_sleep_is_bytes_over_rate_minus_burst(
    rate: float, burst_share: float, chunks: list[int]
) -> None:
    burst = rate * burst_share
    bucket, fake = limiter(rate, burst=burst)
    for chunk in chunks:
        bucket.take(chunk)
    expected = max(0.0, (sum(chunks) - burst) / rate)
    assert sum(fake.slept) == pytest.approx(expected, rel=1e-6, abs=1e-6)
    # The cap holds at every point: bytes taken never outrun burst + rate * elapsed.
    assert sum(chunks) <= burst + rate * (fake.now - 1000.0) + 1e-3 * rate


@given(
    rate=st.floats(1e3, 1e7),
    steps=st.lists(st.tuples(st.integers(1, 10**6), st.floats(0.0, 5.0)), max_size=40),
)
def test_long_run_rate_never_exceeds_cap(rate: float, steps: list[tuple[int, float]]) -> None:
    burst = rate / 10
    bucket, fake = limiter(rate, burst=burst)
    taken = 0
    for amount, idle in steps:
        fake.now += idle
        bucket.take(amount)
        taken += amount
        elapsed = fake.now - 1000.0
        assert taken <= burst * (1 + 1e-9) + rate * elapsed * (1 + 1e-9) + 1e-6


def test_threads_share_one_bucket() -> None:
    lock = threading.Lock()
    fake = FakeTime()

    def sleep(seconds: float) -> None:
        with lock:
            fake.sleep(seconds)

    def clock() -> float:
        with lock:
            return fake.now

    bucket = RateLimiter(1000, burst=100, clock=clock, sleep=sleep)
    threads = [
        threading.Thread(target=lambda: [bucket.take(50) for _ in range(20)]) for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # 4000 bytes at 1000 B/s with a 100-byte burst: at least 3.9 s of (shared) sleep.
    assert sum(fake.slept) >= 3.9 - 1e-9
