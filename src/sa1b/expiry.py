"""Will the links outlive the run? Which have expired already (:func:`check_validity`),
and one forecast, for the start of a run (from the last run's speed) and for its middle
(from the speed measured so far). Pure."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sa1b.errors import LinksExpiredError
from sa1b.links import Link
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


@dataclass(frozen=True, slots=True)
class LinkValidity:
    """How long the links a run needs stay valid."""

    earliest: int | None
    """Unix seconds at which the first needed link expires (None: no ``oe`` on any)."""
    expired: tuple[str, ...]
    """Names whose links have expired already."""

    def seconds_left(self, now: float) -> float | None:
        return None if self.earliest is None else self.earliest - now


def check_validity(links: Sequence[Link], *, now: float) -> LinkValidity:
    """Read the ``oe`` expiry of every link."""
    stamps = [(link.expires_at, link.name) for link in links if link.expires_at is not None]
    expired = tuple(name for stamp, name in stamps if stamp <= now)
    return LinkValidity(min((s for s, _ in stamps), default=None), expired)


def refuse_expired(links: Sequence[Link], *, now: float) -> LinkValidity:
    """Raise :class:`LinksExpiredError` when every needed link has expired already (the
    run could fetch nothing); files whose links alone expired end as ``expired``."""
    validity = check_validity(links, now=now)
    if links and len(validity.expired) == len(links):
        shown = ", ".join(validity.expired[:3])
        more = f" and {len(validity.expired) - 3} more" if len(validity.expired) > 3 else ""
        which = f"all {len(links)} links" if len(links) > 1 else "the link"
        have = "have" if len(links) > 1 else "has"
        raise LinksExpiredError(f"{which} still needed {have} expired ({shown}{more})")
    return validity
