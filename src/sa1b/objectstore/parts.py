"""How a shard is cut into the parts of one multipart upload, and which parts its
downloaded bytes make whole. Pure: no I/O.

S3's limits: at most 10,000 parts, each at least 5 MiB except the last, at most 5 GiB.
The default part is 8 MiB, set by memory: a part is gathered whole in memory before it
is sent, and a CDN edge caps each connection (2 MB/s in the benchmark), so the speed
asked of a store that ingests ~133 MB/s (0.8 of it: ~106 MB/s) needs ~53 connections
in flight. A part is filled by requests of a chunk (:data:`DEFAULT_CHUNK`, 1 MiB),
several at once, the lowest open part's first, so those connections keep ~7 parts open,
beside one for each of the 8 uploaders: the default budget of 128 MiB
(:data:`DEFAULT_MEMORY`: 16 parts downloading or uploading) holds them. Whatever the
store has not taken yet is in that budget (a store slower than the CDN keeps it full),
and a SIGKILL loses it: measured (``benchmarks/s3_ingest.py``, 4.3 GB, killed at half),
the CDN sent 1.03x the data at 128 MiB, 1.06x at 256 MiB, 1.12x at 512 MiB, at the same
speed. A 10.5 GiB shard is then 1,347 parts (ListParts answers in two pages of
1,000); a request's cost (a round trip, a signature, a SHA-256 of 8 MiB) is still small
beside its bytes. A file too large for 10,000 parts of the preferred size gets larger
parts, in whole MiB.

Parts are numbered from 1, as S3 numbers them; byte ranges are half-open ``[start, end)``,
as :class:`~sa1b.ranges.RangeSet` keeps them. Downloads are ranged and land anywhere, so a
part is sent when every byte of it has arrived (:meth:`PartPlan.complete`), and on resume
the parts the bucket already holds are the bytes not downloaded again
(:meth:`PartPlan.missing`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol, TypeVar

from sa1b.ranges import RangeSet

MIB = 1 << 20
MIN_PART = 5 * MIB
MAX_PART = 5 * 1024 * MIB
MAX_PARTS = 10_000
DEFAULT_PART = 8 * MIB
DEFAULT_MEMORY = 128 * MIB
"""Bytes of parts held in memory at once, downloading or uploading (``--upload-memory``)."""
DEFAULT_CHUNK = 1 * MIB
"""The most a part's request asks for: a part is filled by several at once, the lowest
unfinished part's first, so that a part is whole in a fraction of the time one request
would take over a capped connection, and few parts are in flight half-filled (what a
SIGKILL loses)."""


def part_size_for(size: int, *, preferred: int = DEFAULT_PART) -> int:
    """The part size for a file of ``size`` bytes: ``preferred``, or the smallest whole
    number of MiB above it that keeps the file within 10,000 parts."""
    if size < 0:
        raise ValueError(f"a negative size: {size}")
    if not MIN_PART <= preferred <= MAX_PART:
        raise ValueError(f"a part of {preferred} bytes: S3 takes 5 MiB to 5 GiB")
    if size <= preferred * MAX_PARTS:
        return preferred
    least = -(-size // MAX_PARTS)  # ceil: the smallest part that fits 10,000
    part = -(-least // MIB) * MIB
    if part > MAX_PART:
        raise ValueError(f"{size} bytes do not fit 10,000 parts of 5 GiB")
    return part


@dataclass(frozen=True, slots=True)
class PartPlan:
    """A file of ``size`` bytes cut into parts of ``part_size`` (the last one shorter)."""

    size: int
    part_size: int

    @classmethod
    def for_size(cls, size: int, *, preferred: int = DEFAULT_PART) -> PartPlan:
        return cls(size, part_size_for(size, preferred=preferred))

    def __post_init__(self) -> None:
        if self.size < 0 or not MIN_PART <= self.part_size <= MAX_PART:
            raise ValueError(f"no plan for {self.size} bytes in parts of {self.part_size}")
        if self.count > MAX_PARTS:
            raise ValueError(f"{self.count} parts: S3 takes at most {MAX_PARTS}")

    @property
    def count(self) -> int:
        """How many parts: at least one (an empty file is one empty part)."""
        return max(1, -(-self.size // self.part_size))

    def span(self, number: int) -> tuple[int, int]:
        """The bytes ``[start, end)`` of part ``number`` (1 to :attr:`count`)."""
        if not 1 <= number <= self.count:
            raise ValueError(f"no part {number} in {self.count}")
        start = (number - 1) * self.part_size
        return start, min(start + self.part_size, self.size)

    def length(self, number: int) -> int:
        """The size part ``number`` must have (what ListParts must report for it)."""
        start, end = self.span(number)
        return end - start

    def numbers(self) -> range:
        return range(1, self.count + 1)

    def touching(self, start: int, end: int) -> range:
        """The parts that hold any byte of ``[start, end)``."""
        if start >= end:
            return range(0)
        first = start // self.part_size + 1
        last = min((end - 1) // self.part_size + 1, self.count)
        return range(first, last + 1)

    def complete(self, downloaded: RangeSet) -> Iterator[int]:
        """The parts every byte of which is in ``downloaded``, in order. (The set keeps its
        ranges merged, so a whole part lies within one of them.)"""
        for start, end in downloaded:
            for number in self.touching(start, end):
                first, last = self.span(number)
                if start <= first and last <= end:
                    yield number

    def ranges(self, numbers: Iterable[int]) -> RangeSet:
        """The bytes of these parts."""
        covered = RangeSet()
        for number in numbers:
            covered.add(*self.span(number))
        return covered

    def missing(self, uploaded: Iterable[int]) -> RangeSet:
        """The bytes still to download when the bucket holds the parts ``uploaded``."""
        return self.ranges(uploaded).gaps(self.size)


@dataclass(slots=True)
class MemoryBudget:
    """Bytes of parts in memory: a part takes its length when it is claimed (before its
    first byte arrives) and gives it back once uploaded. A claim that does not fit waits
    (:meth:`fits` is False) until parts are given back; one part always fits when none is
    held, so a part larger than the budget still goes, alone."""

    limit: int
    held: int = 0

    def fits(self, length: int) -> bool:
        return self.held == 0 or self.held + length <= self.limit

    def take(self, length: int) -> None:
        self.held += length

    def give(self, length: int) -> None:
        if length > self.held:
            raise ValueError(f"{length} bytes given back, {self.held} held")
        self.held -= length


class Numbered(Protocol):
    """A part as anything lists it: by its number."""

    @property
    def number(self) -> int: ...


PartT = TypeVar("PartT", bound=Numbered)


def latest_parts(listed: Iterable[PartT]) -> list[PartT]:
    """The parts of an upload as ListParts gave them, each number once (the last listed
    wins), in order. SeaweedFS 4.48 lists a part once per time it was uploaded (a part
    sent again after a cut answer); S3 lists the last upload of each number, which is
    the one CompleteMultipartUpload takes."""
    by_number = {part.number: part for part in listed}
    return [by_number[number] for number in sorted(by_number)]


@dataclass(frozen=True, slots=True)
class Listed:
    """A part the bucket lists for an upload (ListParts), or the store recorded."""

    number: int
    size: int
    sha256: str = ""  # base64; "" when not known


def kept_parts(
    plan: PartPlan, listed: Iterable[Listed], recorded: Iterable[Listed] = ()
) -> dict[int, str]:
    """On resume: the parts the bucket holds that are kept, with the SHA-256 to name each
    by when the upload is completed. A part is kept when the plan has it, the bucket
    lists it with the size the plan gives it, and its SHA-256 is known (listed, or
    recorded when it was uploaded; an upload begun with SHA-256 is completed only with
    each part's) and, when both are known, the same. Everything else is fetched and
    uploaded again (UploadPart of the same number replaces it). Some stores (SeaweedFS)
    list no checksum: a part the bucket took but the store did not record yet (a kill
    between the two) is then sent again."""
    sums = {part.number: part.sha256 for part in recorded}
    kept: dict[int, str] = {}
    for part in listed:
        if not 1 <= part.number <= plan.count or part.size != plan.length(part.number):
            continue
        known = sums.get(part.number, "")
        if known and part.sha256 and known != part.sha256:
            continue
        if known or part.sha256:
            kept[part.number] = part.sha256 or known
    return dict(sorted(kept.items()))
