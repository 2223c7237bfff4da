"""Will the links outlive the run? One forecast, for the start of a run (from the last
run's speed) and for its middle (from the speed measured so far). Pure."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sa1b.units import human_bytes, human_duration

MARGIN = 1.2
"""Speeds vary: warn when the time needed, plus a fifth, exceeds the time left."""


@dataclass(frozen=True, slots=True)
class Forecast:
    """``remaining`` bytes at ``speed`` bytes/s need ``needed`` seconds; the first link
    expires in ``left`` seconds."""

    remaining: float
    speed: float
    needed: float
    left: float

    @property
    def too_late(self) -> bool:
        return self.needed * MARGIN > self.left

    def warning(self) -> str:
        return (
            f"at {human_bytes(self.speed)}/s the remaining {human_bytes(self.remaining)} need "
            f"about {human_duration(self.needed)}, but links start to expire in "
            f"{human_duration(self.left)}: when they do, fetch a fresh links file and run "
            "the same command with it (the bytes on disk are kept)"
        )


def forecast(
    *, remaining: float, speed: float, expires: Iterable[int], now: float
) -> Forecast | None:
    """The forecast, or None without a speed or an expiry to go on (or once expired)."""
    first = min(expires, default=None)
    if first is None or speed <= 0 or first <= now:
        return None
    return Forecast(remaining, speed, remaining / speed, first - now)
