"""Will the links outlive the run: one forecast, as a table."""

from __future__ import annotations

import pytest

from sa1b.errors import LinksExpiredError
from sa1b.expiry import forecast, refuse_expired, remaining_bytes
from sa1b.links import Link
from sa1b.units import human_bytes

NOW = 1_000_000.0
HOUR = 3600.0
GB = 1e9

# name: (remaining bytes, speed B/s, expiry stamps, too late? or None for no forecast)
CASES = {
    "plenty of time": (10 * GB, 100e6, [NOW + 10 * HOUR], False),
    "needs longer than the links live": (100 * GB, 10e6, [NOW + 2 * HOUR], True),
    "within the margin counts as too late": (36 * GB, 10e6, [NOW + 1.1 * HOUR], True),
    "the first link to expire decides": (30 * GB, 10e6, [NOW + 10 * HOUR, NOW + 0.5 * HOUR], True),
    "no speed yet": (10 * GB, 0.0, [NOW + HOUR], None),
    "no expiry in the links": (10 * GB, 10e6, [], None),
    "already expired: reported elsewhere": (10 * GB, 10e6, [NOW - 1], None),
}


@pytest.mark.parametrize(("remaining", "speed", "stamps", "late"), CASES.values(), ids=CASES.keys())
def test_forecast(remaining: float, speed: float, stamps: list[float], late: bool | None) -> None:
    outlook = forecast(remaining=remaining, speed=speed, expires=[int(s) for s in stamps], now=NOW)
    if late is None:
        assert outlook is None
        return
    assert outlook is not None and outlook.too_late is late
    assert "fetch a fresh links file" in outlook.warning()


MB = 1e6

# name: (measured speed, --max-rate, speed forecast at, capped, too late)
CAPS = {
    "no cap: as measured": (40 * MB, None, 40 * MB, False, False),
    "a cap below the measured speed decides": (40 * MB, 1 * MB, 1 * MB, True, True),
    "a cap above the measured speed changes nothing": (1 * MB, 40 * MB, 1 * MB, False, True),
    "a cap equal to it is not a cap": (40 * MB, 40 * MB, 40 * MB, False, False),
}


@pytest.mark.parametrize(
    ("measured", "cap", "rate", "capped", "late"), CAPS.values(), ids=CAPS.keys()
)
def test_the_forecast_takes_the_slower_of_the_measure_and_the_cap(
    measured: float, cap: float | None, rate: float, capped: bool, late: bool
) -> None:
    # 10 GB with links for 2 hours: 40 MB/s needs 250 s, 1 MB/s 10,000 s.
    stamps = [int(NOW + 2 * HOUR)]
    outlook = forecast(remaining=10 * GB, speed=measured, expires=stamps, now=NOW, cap=cap)
    assert outlook is not None
    assert (outlook.speed, outlook.capped, outlook.too_late) == (rate, capped, late)
    said = "(the --max-rate cap)" if capped else "(as measured)"
    assert outlook.warning().startswith(f"at {human_bytes(rate)}/s {said} the remaining")


def test_a_cap_without_a_measured_speed_forecasts_nothing() -> None:
    assert forecast(remaining=GB, speed=0.0, expires=[int(NOW + HOUR)], now=NOW, cap=MB) is None


NOMINAL = 100
# name: ((size, bytes on disk) of each file, bytes still to fetch)
REMAINING = {
    "known sizes less what is on disk": ([(60, 10), (40, 0)], 90),
    "an unknown size counts the nominal": ([(60, 10), (None, 0)], 150),
    "every size unknown": ([(None, 0), (None, 0)], 200),
    "a file on disk whole adds nothing": ([(60, 60)], 0),
    "more on disk than the size is not negative": ([(60, 70), (5, 0)], 5),
    "nothing": ([], 0),
}


@pytest.mark.parametrize(("files", "left"), REMAINING.values(), ids=REMAINING.keys())
def test_remaining_bytes_counts_known_sizes(files: list[tuple[int | None, int]], left: int) -> None:
    assert remaining_bytes(files, nominal=NOMINAL) == left


@pytest.mark.parametrize(
    ("bucket", "kept"),
    [(False, "the bytes already on disk are kept"), (True, "the parts already uploaded are kept")],
)
def test_links_all_expired_say_what_the_output_keeps(bucket: bool, kept: str) -> None:
    link = Link("sa_000000.tar", "https://cdn.example/sa_000000.tar?oe=10")  # expired at 16 s
    with pytest.raises(LinksExpiredError) as raised:
        refuse_expired([link], now=1000.0, bucket=bucket)
    assert kept in raised.value.hint
