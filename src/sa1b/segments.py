"""Which bytes of one file are done, being fetched, or free: the work-stealing plan.

Pure bookkeeping, no I/O and no locks (the engine serialises calls). A connection
*claims* a segment; it fetches it in bounded requests from ``pos``; when the file
has no free bytes left, a new connection *steals* the second half of the largest
range not yet requested, so a file never crawls to its end on one connection. A
request in flight is never cut: what the server has sent on it would be thrown away.
Invariants (property-tested): done, free and the outstanding part of every active
segment cover ``[0, size)`` exactly once; a steal never takes a byte already requested.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sa1b.ranges import RangeSet

ALIGN = 64 * 1024


@dataclass(eq=False)
class Segment:
    """Bytes ``[start, end)`` owned by one connection; ``[start, pos)`` are on disk.

    ``requested`` is the end of the bytes asked for in the current request. Stealing
    lowers ``end``, never below ``requested``: the answer to a request always lands in
    its own segment. ``cancelled`` tells the owner to drop its work (the file was
    restarted).
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
        """Take the second half of the largest range not yet requested, if it is worth it.

        Its owner loses nothing: the bytes of its request in flight stay its own.
        Cutting that request instead would throw away what the server has already
        sent on it and cost its owner a new request's round trip (measured: 1.33x the
        data served for 1000 files of 4.3 MB). A range under ``2 * min_steal`` is left
        to its owner; so a file smaller than that beyond its first request (the first
        request is ``first_request`` long) is fetched on one connection.
        """
        victim = max(self.active, key=lambda s: s.stealable, default=None)
        if victim is None or victim.stealable < 2 * self.min_steal:
            return None
        base = max(victim.requested, victim.pos)
        middle = base + (victim.end - base) // 2
        middle = max(base + self.min_steal, middle - middle % ALIGN)
        segment = Segment(middle, victim.end)
        victim.end = middle
        return self._activate(segment)

    @property
    def stealable(self) -> int:
        """Bytes of the largest range not yet requested, when worth a steal (else 0)."""
        largest = max((s.stealable for s in self.active), default=0)
        return largest if largest >= 2 * self.min_steal else 0

    def adopt(self, start: int) -> Segment:
        """Claim the free range that begins at ``start`` (the first request of a file)."""
        for s, e in self.free:
            if s <= start < e:
                self.free.remove(start, e)
                return self._activate(Segment(start, e))
        raise ValueError(f"byte {start} is not free")

    def next_request(self, segment: Segment, max_length: int) -> tuple[int, int] | None:
        """The next ``[start, end)`` to ask for on this segment, or None when it is done.

        At most ``max_length``, and at most half of what is left while that half is
        worth a steal: a connection looking for work then finds an unrequested half to
        take. What is left below that (``4 * min_steal``) is asked for whole, as a
        thief would never take the rest and its owner would pay one more round trip.
        """
        left = segment.end - segment.pos
        if left <= 0:
            return None
        length = min(max_length, left if left < 4 * self.min_steal else left // 2)
        segment.requested = segment.pos + length
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
