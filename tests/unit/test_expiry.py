"""Will the links outlive the run: one forecast, as a table."""

from __future__ import annotations

import pytest

from sa1b.expiry import forecast

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
