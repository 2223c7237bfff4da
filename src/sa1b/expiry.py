"""Will the links outlive the run? One forecast, for the start of a run (from the last
run's speed), for its middle (from the speed measured so far) and for ``sa1b plan``
(from its probe). Pure."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sa1b.units import human_bytes, human_duration

MARGIN = 1.2
"""Speeds vary: warn when the time needed, plus a fifth, exceeds the time left."""


@dataclass(frozen=True, slots=True)
class Forecast:
    """``remaining`` bytes at ``speed`` bytes/s need ``needed`` seconds; the first link
    expires in ``left`` seconds. ``capped``: the speed is ``--max-rate``'s, below the
    one measured."""

    remaining: float
    speed: float
    needed: float
    left: float
    capped: bool = False

    @property
    def too_late(self) -> bool:
        return self.needed * MARGIN > self.left

    @property
    def basis(self) -> str:
        """Where the speed comes from, for a person."""
        return "the --max-rate cap" if self.capped else "as measured"

    def warning(self) -> str:
        return (
            f"at {human_bytes(self.speed)}/s ({self.basis}) the remaining "
            f"{human_bytes(self.remaining)} need about {human_duration(self.needed)}, but "
            f"links start to expire in {human_duration(self.left)}: when they do, fetch a "
            "fresh links file and run the same command with it (the bytes on disk are kept)"
        )


def forecast(
    *,
    remaining: float,
    speed: float,
    expires: Iterable[int],
    now: float,
    cap: float | None = None,
) -> Forecast | None:
    """The forecast at the slower of ``speed`` (measured) and ``cap`` (``--max-rate``),
    or None without a measured speed or an expiry to go on (or once expired)."""
    first = min(expires, default=None)
    if first is None or speed <= 0 or first <= now:
        return None
    rate = speed if cap is None else min(speed, cap)
    return Forecast(remaining, rate, remaining / rate, first - now, capped=rate < speed)


def remaining_bytes(files: Iterable[tuple[int | None, int]], *, nominal: int) -> int:
    """Bytes still to fetch of files given as (size, bytes on disk): each known size less
    what is on disk; a file whose size is not known yet counts ``nominal``."""
    return sum(nominal if size is None else max(0, size - done) for size, done in files)
