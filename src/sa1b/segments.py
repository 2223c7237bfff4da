"""Which bytes of one file are done, being fetched, or free: the work-stealing plan.

Pure bookkeeping, no I/O and no locks (the engine serialises calls). A connection
*claims* a segment; it fetches it in bounded requests from ``pos``; when the file
has no free bytes left, a new connection *steals* the second half of the largest
range still outstanding (the part not yet requested), so a file never crawls to its
end on one connection. Invariant (property-tested): done, free and the outstanding
part of every active segment cover ``[0, size)`` exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sa1b.ranges import RangeSet

ALIGN = 64 * 1024


@dataclass(eq=False)
class Segment:
    """Bytes ``[start, end)`` owned by one connection; ``[start, pos)`` are on disk.

    ``requested`` is the end of the bytes asked for in the current request. Stealing
    lowers ``end``, usually to no less than ``requested``; when it cuts an in-flight
    request, the owner stops reading at ``end``. ``cancelled`` tells the owner to drop
    its work (the file was restarted).
    """

    start: int
    end: int
    pos: int = field(init=False)
    requested: int = field(init=False)
    cancelled: bool = False

    def __post_init__(self) -> None:
        self.pos = self.start
        self.requested = self.start

    @property
    def stealable(self) -> int:
        return self.end - max(self.requested, self.pos)


class SegmentPlan:
    """The state of one file's bytes while it downloads."""

    def __init__(self, size: int, done: RangeSet | None = None, *, min_steal: int) -> None:
        self.size = size
        self.min_steal = min_steal
        self.done = done.copy() if done else RangeSet()
        self.free = self.done.gaps(size)
        self.active: list[Segment] = []

    @property
    def complete(self) -> bool:
        return not self.free and not self.active and self.done.covers(0, self.size)

    def done_bytes(self) -> int:
        """Bytes on disk, counting what active segments have written so far."""
        return self.done.total + sum(min(s.pos, s.end) - s.start for s in self.active)

    def written(self) -> RangeSet:
        """Every byte written so far: done, and what active segments have fetched."""
        spans = self.done.copy()
        for segment in self.active:
            spans.add(segment.start, max(segment.start, min(segment.pos, segment.end)))
        return spans

    def prefix(self) -> int:
        """How many bytes from byte 0 on are written, without a gap."""
        return self.written().prefix()

    def claim(self) -> Segment | None:
        """A segment for a new connection: the lowest free range, else a stolen half."""
        if self.free:
            start, end = next(iter(self.free))
            self.free.remove(start, end)
            return self._activate(Segment(start, end))
        return self.steal()

    def steal(self) -> Segment | None:
        """Take the second half of the largest outstanding range, if it is worth it.

        Bytes not yet requested are taken first: their owner loses nothing. Failing
        that, an in-flight request is cut in two; its owner stops at the new end and
        drops its connection, which is cheaper than a file crawling to its end.
        """
        if not self.active:
            return None
        victim = max(self.active, key=lambda s: s.stealable)
        base = max(victim.requested, victim.pos)
        if victim.stealable < 2 * self.min_steal:
            # Cutting costs the bytes in flight on the victim's connection: only
            # for a range worth twice as much as an ordinary steal.
            victim = max(self.active, key=lambda s: s.end - s.pos)
            base = victim.pos
            if victim.end - base < 4 * self.min_steal:
                return None
        middle = base + (victim.end - base) // 2
        middle = max(base + self.min_steal, middle - middle % ALIGN)
        segment = Segment(middle, victim.end)
        victim.end = middle
        return self._activate(segment)

    def adopt(self, start: int) -> Segment:
        """Claim the free range that begins at ``start`` (the first request of a file)."""
        for s, e in self.free:
            if s <= start < e:
                self.free.remove(start, e)
                return self._activate(Segment(start, e))
        raise ValueError(f"byte {start} is not free")

    def next_request(self, segment: Segment, max_length: int) -> tuple[int, int] | None:
        """The next ``[start, end)`` to ask for on this segment, or None when it is done.

        At most ``max_length``, and at most half of what is left (but never less than
        ``min_steal``), so that a connection looking for work finds an unrequested
        half to take instead of having to cut a request in flight.
        """
        left = segment.end - segment.pos
        if left <= 0:
            return None
        length = min(max_length, max(left // 2, self.min_steal))
        segment.requested = min(segment.end, segment.pos + length)
        return segment.pos, segment.requested

    def release(self, segment: Segment) -> None:
        """The connection is done with ``segment``: what it fetched is done, the rest free."""
        if segment.cancelled:
            return
        self.active.remove(segment)
        # An owner may write past an end lowered during its last read: the same bytes
        # its thief writes, so only [start, end) counts as its own.
        self.done.add(segment.start, min(segment.pos, segment.end))
        if segment.pos < segment.end:
            self.free.add(segment.pos, segment.end)

    def restart(self) -> None:
        """Forget every byte (the object changed): cancel active segments, free everything."""
        for segment in self.active:
            segment.cancelled = True
        self.active = []
        self.done = RangeSet()
        self.free = RangeSet([(0, self.size)]) if self.size else RangeSet()

    def _activate(self, segment: Segment) -> Segment:
        self.active.append(segment)
        return segment
