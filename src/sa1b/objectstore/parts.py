"""How a shard is cut into the parts of one multipart upload, and which parts its
downloaded bytes make whole. Pure: no I/O.

S3's limits: at most 10,000 parts, each at least 5 MiB except the last, at most 5 GiB.
The default part is 64 MiB: a 10.5 GiB shard is 168 parts, few enough that ListParts
answers in one page (1,000) and the parts in flight fit the memory budget (one part per
connection, 16 connections: 1 GiB), large enough that a request's cost (a round trip, a
signature, a checksum) is spread over many bytes. A file too large for 10,000 parts of
the preferred size gets larger parts, in whole MiB.

Parts are numbered from 1, as S3 numbers them; byte ranges are half-open ``[start, end)``,
as :class:`~sa1b.ranges.RangeSet` keeps them. Downloads are ranged and land anywhere, so a
part is sent when every byte of it has arrived (:meth:`PartPlan.complete`), and on resume
the parts the bucket already holds are the bytes not downloaded again
(:meth:`PartPlan.missing`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from sa1b.ranges import RangeSet

MIB = 1 << 20
MIN_PART = 5 * MIB
MAX_PART = 5 * 1024 * MIB
MAX_PARTS = 10_000
DEFAULT_PART = 64 * MIB


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
