"""Will the links outlive the run? Which have expired already (:func:`check_validity`),
and one forecast, for the start of a run (from the last run's speed), for its middle
(from the speed measured so far) and for ``sa1b plan`` (from its probe). Pure."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sa1b.errors import LinksExpiredError, expired_link_hint
from sa1b.links import Link
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


def refuse_expired(links: Sequence[Link], *, now: float, bucket: bool = False) -> LinkValidity:
    """Raise :class:`LinksExpiredError` when every needed link has expired already (the
    run could fetch nothing); files whose links alone expired end as ``expired``.
    ``bucket``: the output is an ``s3://`` one (its hint says what is kept there)."""
    validity = check_validity(links, now=now)
    if links and len(validity.expired) == len(links):
        shown = ", ".join(validity.expired[:3])
        more = f" and {len(validity.expired) - 3} more" if len(validity.expired) > 3 else ""
        which = f"all {len(links)} links" if len(links) > 1 else "the link"
        have = "have" if len(links) > 1 else "has"
        raise LinksExpiredError(
            f"{which} still needed {have} expired ({shown}{more})",
            hint=expired_link_hint(bucket=bucket),
        )
    return validity
