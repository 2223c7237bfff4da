"""The head deadline and the speed floor, on a fake clock."""

from __future__ import annotations

import pytest

from sa1b.errors import InputError
from sa1b.net.options import Timeouts
from sa1b.net.watchdog import Watchdog

T = Timeouts(connect=1, head=5, read=10, floor=1000)


def test_a_head_within_the_deadline_is_fine_and_one_too_late_is_a_stall() -> None:
    dog = Watchdog(T, now=100)
    assert dog.check(104.9, answered=False, received=0) is None
    assert dog.check(105.1, answered=False, received=0) == "no complete response head within 5 s"


def test_the_floor_is_judged_per_window_from_the_head_on() -> None:
    dog = Watchdog(T, now=0)
    assert dog.check(4, answered=True, received=0) is None  # the head arrived at 4
    assert dog.check(13.9, answered=True, received=5_000) is None  # window not over
    # 10 s after the head: 10 kB is exactly the floor, so healthy; the next window starts.
    assert dog.check(14, answered=True, received=10_000) is None
    assert dog.check(24, answered=True, received=19_999) is not None  # 9,999 B in 10 s


def test_a_silent_body_is_a_stall_even_with_no_floor() -> None:
    dog = Watchdog(Timeouts(head=5, read=2, floor=0), now=0)
    dog.check(1, answered=True, received=0)
    assert dog.check(3, answered=True, received=1) is None  # one byte in the window: alive
    assert dog.check(5, answered=True, received=1) == "0 bytes in 2 s, below the floor of 0 B/s"


def test_a_drip_is_caught_within_one_window() -> None:
    dog = Watchdog(T, now=0)
    dog.check(0.5, answered=True, received=0)
    verdicts = [dog.check(0.5 + s, answered=True, received=s) for s in range(1, 12)]
    assert verdicts[:9] == [None] * 9
    assert verdicts[9] is not None  # at 10 s: 10 bytes, far below 1000 B/s


def test_rest_starts_a_fresh_window_after_a_pause() -> None:
    dog = Watchdog(T, now=0)
    dog.check(0, answered=True, received=0)
    dog.rest(9, received=0)  # paused by --max-rate until 9
    assert dog.check(18, answered=True, received=0) is None
    assert dog.check(19.5, answered=True, received=100) is not None


@pytest.mark.parametrize("field", ["connect", "head", "read"])
def test_timeouts_must_be_positive(field: str) -> None:
    """A library caller gets the one-line InputError the CLI would give."""
    with pytest.raises(InputError, match="1 ms"):
        Timeouts(**{field: 0})
    with pytest.raises(InputError, match="floor"):
        Timeouts(floor=-1)
