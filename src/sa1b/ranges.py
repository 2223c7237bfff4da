"""A set of byte ranges: sorted, disjoint, half-open ``[start, end)`` intervals."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator


class RangeSet:
    """Byte ranges, kept merged: adding ``[0, 5)`` then ``[5, 9)`` leaves ``[0, 9)``."""

    __slots__ = ("_ends", "_starts")

    def __init__(self, ranges: Iterable[tuple[int, int]] = ()) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []
        for start, end in ranges:
            self.add(start, end)

    def add(self, start: int, end: int) -> None:
        """Add ``[start, end)``, merging with what it touches or overlaps."""
        if start > end or start < 0:
            raise ValueError(f"bad range [{start}, {end})")
        if start == end:
            return
        # First interval whose end reaches start, last whose start reaches end.
        lo = bisect.bisect_left(self._ends, start)
        hi = bisect.bisect_right(self._starts, end)
        if lo < hi:
            start = min(start, self._starts[lo])
            end = max(end, self._ends[hi - 1])
        self._starts[lo:hi] = [start]
        self._ends[lo:hi] = [end]

    def remove(self, start: int, end: int) -> None:
        """Remove ``[start, end)`` from the set."""
        if start >= end:
            return
        kept = [(s, e) for s, e in self if e <= start or s >= end]
        for s, e in self:
            if s < start < e:
                kept.append((s, start))
            if s < end < e:
                kept.append((end, e))
        self._starts, self._ends = [], []
        for s, e in sorted(kept):
            self.add(s, e)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter(zip(self._starts, self._ends, strict=True))

    def __len__(self) -> int:
        return len(self._starts)

    def __bool__(self) -> bool:
        return bool(self._starts)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RangeSet) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"RangeSet({list(self)!r})"

    def copy(self) -> RangeSet:
        clone = RangeSet()
        clone._starts, clone._ends = list(self._starts), list(self._ends)
        return clone

    @property
    def total(self) -> int:
        """How many bytes the set covers."""
        return sum(e - s for s, e in self)

    def covers(self, start: int, end: int) -> bool:
        """True when every byte of ``[start, end)`` is in the set."""
        i = bisect.bisect_right(self._starts, start) - 1
        return start >= end or (i >= 0 and self._ends[i] >= end)

    def prefix(self) -> int:
        """Length of the contiguous run starting at byte 0."""
        return self._ends[0] if self._starts and self._starts[0] == 0 else 0

    def gaps(self, size: int) -> RangeSet:
        """The ranges of ``[0, size)`` that are not in the set."""
        missing = RangeSet()
        cursor = 0
        for s, e in self:
            if s >= size:
                break
            if s > cursor:
                missing.add(cursor, s)
            cursor = max(cursor, e)
        if cursor < size:
            missing.add(cursor, size)
        return missing
