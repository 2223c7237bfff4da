"""Know before: does a download fit on the disk, and will its links live long enough?
Pure: the facts (the server's sizes, what the output folder holds, the free space, a
measured speed) are gathered by :func:`sa1b.api.plan`.

Disk. Partial files are preallocated, so a file being fetched already takes its size;
what a run adds at its peak, beyond what is allocated now, is:

- without extraction (``--no-extract``): every tar still to fetch;
- extracting, tars deleted (the default): every shard's extracted files (about its
  tar's size); a shard is extracted as it streams, with no tar on disk
  (:mod:`sa1b.engine.unpack`), unless it has a checksum to check (``--checksums``) or
  is made into a tar (``--layout wds``): then, for each shard in flight at once
  (``--files``, the largest ones counted), its whole tar too; extras count once;
- extracting, tars kept (``--keep-tars``): both, for every shard.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sa1b.expiry import Forecast, forecast


@dataclass(frozen=True, slots=True)
class FileFacts:
    """One selected file: its size from the server, and what the output folder holds."""

    name: str
    size: int | None
    """The server's size; None when it did not answer (see ``error``)."""
    shard: bool
    """A shard (``sa_NNNNNN.tar``), extracted when the run extracts."""
    done: bool = False
    """Published (or extracted) already: nothing to fetch, nothing to add."""
    kept: int = 0
    """Bytes of it already fetched and recorded."""
    allocated: int = 0
    """Bytes its partial file takes on the disk now (preallocated: its size)."""
    error: str | None = None
    """Why the server did not give its size (an expired link, a 404...)."""


def disk_needed(
    files: Sequence[FileFacts],
    *,
    extract: bool,
    keep_tars: bool,
    at_once: int,
    window: int | None = None,
) -> int:
    """Bytes the run adds to the disk at its peak (see the module docstring); ``window``:
    the tar a shard in flight keeps beside its files (None: all of it; 0: none)."""
    pending = [f for f in files if not f.done and f.size is not None]
    total = sum(f.size or 0 for f in pending)
    shards = sorted((f.size or 0 for f in pending if f.shard), reverse=True)
    if not extract:
        peak = total
    elif keep_tars:
        peak = total + sum(shards)
    else:
        in_flight = shards[:at_once]
        peak = total + sum(size if window is None else min(size, window) for size in in_flight)
    return max(0, peak - sum(f.allocated for f in pending))


@dataclass(frozen=True, slots=True)
class BucketFacts:
    """An ``s3://`` output found reachable and writable: its URL, and the endpoint that
    answered (no credential in either)."""

    url: str
    endpoint: str


@dataclass(frozen=True, slots=True)
class Plan:
    """A download, known before it runs."""

    files: tuple[FileFacts, ...]
    free: int
    """Bytes free on the output folder's filesystem."""
    needed: int
    """What the run adds at its peak, as configured."""
    needed_keeping_tars: int
    needed_without_tars: int
    """The same with ``--keep-tars``, and with tars deleted (both when extracting)."""
    speed: float | None
    """Bytes per second measured by a short probe (None: not measured)."""
    expires: tuple[int, ...]
    """The ``oe`` expiry of each link still needed."""
    now: float
    max_rate: float | None = None
    """``--max-rate``: the run gets no more than this, whatever the probe measured."""
    bucket: BucketFacts | None = None
    """The ``s3://`` output, checked: no local disk is needed then (``free`` and
    ``needed`` are 0)."""

    @property
    def total(self) -> int:
        return sum(f.size or 0 for f in self.files)

    @property
    def to_fetch(self) -> int:
        return sum((f.size or 0) - f.kept for f in self.files if not f.done)

    @property
    def fits(self) -> bool:
        return self.needed <= self.free

    @property
    def expected_speed(self) -> float:
        """The probe's speed, or ``--max-rate`` when that is slower (0: not measured)."""
        speed = self.speed or 0.0
        return speed if self.max_rate is None else min(speed, self.max_rate)

    @property
    def outlook(self) -> Forecast | None:
        """The links against the time the rest needs at the measured speed, or at
        ``--max-rate`` when that is slower."""
        return forecast(
            remaining=self.to_fetch,
            speed=self.speed or 0.0,
            expires=self.expires,
            now=self.now,
            cap=self.max_rate,
        )

    @property
    def unanswered(self) -> list[FileFacts]:
        return [f for f in self.files if f.size is None and not f.done]

    @property
    def ok(self) -> bool:
        """It fits, every file answered, and the links should outlive the run."""
        outlook = self.outlook
        expired = any(stamp <= self.now for stamp in self.expires)
        late = outlook is not None and outlook.too_late
        return self.fits and not self.unanswered and not expired and not late
