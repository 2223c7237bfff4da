"""The work-stealing plan: examples, then invariants over random operation sequences.

Invariants checked after every operation:

- done, free and ``[start, end)`` of every active segment cover ``[0, size)`` exactly once;
- every active segment has ``start <= pos <= requested <= end`` and ``start < end``;
- done plus ``[start, pos)`` of the active segments never exceeds the bytes written;
- a steal never takes a byte already requested (a request in flight is never cut): it
  takes the second half of the largest unrequested range, when that is worth it, else
  nothing;
- a claim takes the lowest free range whole before it steals anything.

And, driving everything to its end: the plan completes, and the bytes assembled on a
simulated disk equal the source for any chunking of the bodies.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sa1b.ranges import RangeSet
from sa1b.segments import ALIGN, Segment, SegmentPlan

MiB = 1024 * 1024
COMPLEMENT = bytes(range(255, -1, -1))
ROTATE = bytes([*range(1, 256), 0])

# -- examples ------------------------------------------------------------------------------


def test_fresh_plan_is_one_free_range() -> None:
    plan = SegmentPlan(1000, min_steal=10)
    assert list(plan.free) == [(0, 1000)]
    assert not plan.done
    assert not plan.active
    assert not plan.complete
    assert plan.done_bytes() == 0


def test_plan_starts_from_recorded_ranges_without_aliasing() -> None:
    done = RangeSet([(0, 100), (300, 400)])
    plan = SegmentPlan(500, done, min_steal=10)
    assert list(plan.free) == [(100, 300), (400, 500)]
    assert plan.done_bytes() == 200
    done.add(100, 300)
    assert list(plan.done) == [(0, 100), (300, 400)]  # a copy, not the caller's set


def test_fully_done_plan_is_complete() -> None:
    plan = SegmentPlan(10, RangeSet([(0, 10)]), min_steal=1)
    assert plan.complete
    assert plan.claim() is None


def test_empty_file_is_complete() -> None:
    plan = SegmentPlan(0, min_steal=1)
    assert plan.complete
    assert plan.claim() is None
    plan.restart()
    assert plan.complete


def test_claim_takes_lowest_free_range_whole() -> None:
    plan = SegmentPlan(1000, RangeSet([(100, 200), (500, 600)]), min_steal=10)
    first = plan.claim()
    assert first is not None
    assert (first.start, first.end, first.pos, first.requested) == (0, 100, 0, 0)
    second = plan.claim()
    assert second is not None
    assert (second.start, second.end) == (200, 500)
    assert list(plan.free) == [(600, 1000)]
    assert plan.active == [first, second]


def test_next_request_is_bounded_and_ends_at_segment_end() -> None:
    plan = SegmentPlan(1000, min_steal=10)
    segment = plan.claim()
    assert segment is not None
    assert plan.next_request(segment, 300) == (0, 300)
    assert segment.requested == 300
    segment.pos = 300
    assert plan.next_request(segment, 300) == (300, 600)
    # Near the end, at most half of what is left: the rest stays stealable.
    segment.pos = 900
    assert plan.next_request(segment, 300) == (900, 950)
    # Less than a stealable half would be left (4 * min_steal): the rest, whole.
    segment.pos = 961
    assert plan.next_request(segment, 300) == (961, 1000)
    assert segment.requested == 1000
    segment.pos = 1000
    assert plan.next_request(segment, 300) is None


def test_release_marks_fetched_done_and_rest_free() -> None:
    plan = SegmentPlan(1000, min_steal=10)
    segment = plan.claim()
    assert segment is not None
    plan.next_request(segment, 400)
    segment.pos = 250
    assert plan.done_bytes() == 250
    plan.release(segment)
    assert list(plan.done) == [(0, 250)]
    assert list(plan.free) == [(250, 1000)]
    assert not plan.active
    again = plan.claim()
    assert again is not None
    assert (again.start, again.end) == (250, 1000)


def test_steal_takes_aligned_second_half_above_requested() -> None:
    size = 64 * MiB
    plan = SegmentPlan(size, min_steal=2 * MiB)
    victim = plan.claim()
    assert victim is not None
    plan.next_request(victim, 8 * MiB)
    victim.pos = 3 * MiB
    thief = plan.claim()  # no free bytes: steals
    assert thief is not None
    assert thief.start == 8 * MiB + (size - 8 * MiB) // 2
    assert thief.start % ALIGN == 0
    assert (thief.end, victim.end) == (size, thief.start)
    assert victim.requested == 8 * MiB  # the in-flight request is untouched


def test_steal_alignment_never_goes_below_min_steal() -> None:
    plan = SegmentPlan(1000, min_steal=100)
    victim = plan.claim()
    assert victim is not None
    plan.next_request(victim, 10)
    thief = plan.steal()
    assert thief is not None
    # middle = 10 + 990 // 2 = 505, aligned down to 0, raised to 10 + 100.
    assert (thief.start, thief.end, victim.end) == (110, 1000, 110)


def test_steal_never_cuts_a_request_in_flight() -> None:
    plan = SegmentPlan(16 * ALIGN, min_steal=ALIGN)
    victim = plan.claim()
    assert victim is not None
    victim.requested = 15 * ALIGN  # one ALIGN unrequested: too little to steal
    assert plan.stealable == 0
    assert plan.steal() is None  # though 15 ALIGN are still to come on one request
    assert (victim.end, victim.requested) == (16 * ALIGN, 15 * ALIGN)


def test_a_small_file_stays_on_one_connection() -> None:
    """The shape measured at 1.35x the data served: a 4.3 MB file whose first request
    (4 MiB, before its size was known) leaves less than a steal's worth."""
    plan = SegmentPlan(4_403_200, min_steal=512 * 1024)
    first = plan.adopt(0)
    first.requested = 4 * MiB
    assert plan.claim() is None
    first.pos = first.requested
    assert plan.next_request(first, 64 * MiB) == (4 * MiB, 4_403_200)  # the rest at once


def test_steal_refuses_small_tails() -> None:
    plan = SegmentPlan(1000, min_steal=100)
    victim = plan.claim()
    assert victim is not None
    victim.pos, victim.requested = 700, 801  # 199 unrequested
    assert plan.stealable == 0
    assert plan.steal() is None
    assert plan.claim() is None
    assert victim.end == 1000
    victim.requested = 800  # 200 unrequested: twice min_steal is worth it
    assert plan.stealable == 200
    thief = plan.steal()
    assert thief is not None
    assert (victim.end, thief.start, thief.end) == (900, 900, 1000)
    assert SegmentPlan(10, min_steal=1).steal() is None  # nothing active
    assert SegmentPlan(10, min_steal=1).stealable == 0


def test_steal_picks_the_largest_unrequested_range() -> None:
    plan = SegmentPlan(10_000, RangeSet([(1000, 2000)]), min_steal=10)
    small = plan.claim()
    big = plan.claim()
    assert small is not None
    assert big is not None
    assert (small.end, big.end) == (1000, 10_000)
    thief = plan.steal()
    assert thief is not None
    assert thief.end == 10_000
    assert big.end == thief.start
    assert small.end == 1000


def test_adopt_claims_from_a_byte_inside_a_free_range() -> None:
    plan = SegmentPlan(1000, min_steal=10)
    segment = plan.adopt(0)
    assert (segment.start, segment.end) == (0, 1000)
    plan2 = SegmentPlan(1000, RangeSet([(0, 100)]), min_steal=10)
    inner = plan2.adopt(300)
    assert (inner.start, inner.end) == (300, 1000)
    assert list(plan2.free) == [(100, 300)]
    with pytest.raises(ValueError, match="not free"):
        plan2.adopt(50)
    with pytest.raises(ValueError, match="not free"):
        plan2.adopt(500)


def test_restart_cancels_and_frees_everything() -> None:
    plan = SegmentPlan(1000, RangeSet([(0, 100)]), min_steal=10)
    segment = plan.claim()
    assert segment is not None
    plan.next_request(segment, 50)
    segment.pos = 150
    plan.restart()
    assert segment.cancelled
    assert not plan.active
    assert not plan.done
    assert list(plan.free) == [(0, 1000)]
    assert plan.done_bytes() == 0
    plan.release(segment)  # a stale release changes nothing
    assert not plan.done
    assert list(plan.free) == [(0, 1000)]


def test_segment_stealable() -> None:
    segment = Segment(10, 100)
    assert (segment.pos, segment.requested, segment.stealable) == (10, 10, 90)
    segment.requested = 40
    assert segment.stealable == 60
    segment.pos = 50  # past the request (a longer answer): counts from pos
    assert segment.stealable == 50


# -- the property machinery ----------------------------------------------------------------


@dataclass
class Driver:
    """Drives a plan like the engine does and keeps a model of the disk."""

    plan: SegmentPlan
    source: bytearray | None = None
    disk: bytearray | None = None
    written: RangeSet = field(default_factory=RangeSet)
    held: list[Segment] = field(default_factory=list)  # incl. cancelled ones

    @classmethod
    def start(
        cls, size: int, done: RangeSet, min_steal: int, *, with_bytes: bool = False
    ) -> Driver:
        driver = cls(SegmentPlan(size, done, min_steal=min_steal), written=done.copy())
        if with_bytes:
            driver.source = bytearray(random.Random(size).randbytes(size))
            driver.disk = driver.source.translate(COMPLEMENT)  # every byte wrong
            for s, e in done:
                driver.disk[s:e] = driver.source[s:e]
        driver.check()
        return driver

    # operations

    def claim(self) -> Segment | None:
        plan = self.plan
        free_before = list(plan.free)
        before = self.snapshot()
        segment = plan.claim()
        if free_before:
            assert segment is not None
            assert (segment.start, segment.end) == free_before[0]
            assert list(plan.free) == free_before[1:]
            others = {k: v for k, v in self.snapshot().items() if k != id(segment)}
            assert others == before  # nobody was robbed while bytes were free
        else:
            self.check_steal(before, segment)
        if segment is not None:
            self.held.append(segment)
        return segment

    def steal(self) -> Segment | None:
        before = self.snapshot()
        free_before = list(self.plan.free)
        segment = self.plan.steal()
        assert list(self.plan.free) == free_before
        self.check_steal(before, segment)
        if segment is not None:
            self.held.append(segment)
        return segment

    def adopt(self, byte: int) -> None:
        segment = self.plan.adopt(byte)
        assert segment.start == byte
        self.held.append(segment)

    def request(self, segment: Segment, length: int) -> tuple[int, int] | None:
        pos, end = segment.pos, segment.end
        span = self.plan.next_request(segment, length)
        if pos >= end:
            assert span is None
        else:
            left = end - pos
            whole = left < 4 * self.plan.min_steal  # else half: the rest stays stealable
            expected = pos + min(length, left if whole else left // 2)
            assert span == (pos, expected)
            assert segment.requested == expected
        return span

    def advance(self, segment: Segment, amount: int) -> None:
        """Bytes of the in-flight request arrive: write them, then move ``pos``."""
        assert segment.pos + amount <= segment.requested <= segment.end
        start, stop = segment.pos, segment.pos + amount
        if self.disk is not None and self.source is not None:
            self.disk[start:stop] = self.source[start:stop]
        self.written.add(start, stop)
        segment.pos = stop

    def release(self, segment: Segment) -> None:
        self.plan.release(segment)
        self.held.remove(segment)

    def release_stale(self, segment: Segment) -> None:
        before = (list(self.plan.done), list(self.plan.free), list(self.plan.active))
        self.plan.release(segment)
        assert (list(self.plan.done), list(self.plan.free), list(self.plan.active)) == before
        self.held.remove(segment)

    def restart(self) -> None:
        active = list(self.plan.active)
        self.plan.restart()
        assert all(segment.cancelled for segment in active)
        assert not self.plan.done
        self.written = RangeSet()  # every byte on disk is void now
        if self.source is not None:  # the object changed: every byte differs
            self.source[:] = self.source.translate(ROTATE)

    def drain(self, lengths: st.DataObject) -> None:
        """Fetch everything, stealing as the engine would, then check completion."""
        for segment in [s for s in self.held if s.cancelled]:
            self.release_stale(segment)
        while True:
            size = self.plan.size
            for segment in list(self.plan.active):
                while self.request(segment, lengths.draw(st.integers(max(1, size // 16), size))):
                    # The body arrives in two pieces cut at a random point.
                    stop = segment.requested
                    self.advance(segment, lengths.draw(st.integers(0, stop - segment.pos)))
                    self.advance(segment, stop - segment.pos)
                    self.check()
                self.release(segment)
                self.check()
            if self.claim() is None:
                break
            self.check()
        assert not self.plan.active
        assert self.plan.complete
        assert list(self.plan.done) == ([(0, self.plan.size)] if self.plan.size else [])
        assert self.written.covers(0, self.plan.size)
        if self.disk is not None:
            assert self.disk == self.source

    # checks

    def snapshot(self) -> dict[int, tuple[int, int, int, int]]:
        return {id(s): (s.start, s.end, s.pos, s.requested) for s in self.plan.active}

    def check_steal(
        self, before: dict[int, tuple[int, int, int, int]], segment: Segment | None
    ) -> None:
        plan = self.plan
        after = self.snapshot()
        best = max((end - max(req, p) for _, end, p, req in before.values()), default=0)
        if segment is None:
            assert after == before
            assert best < 2 * plan.min_steal
            return
        changed = [key for key in before if before[key] != after[key]]
        assert len(changed) == 1
        start, old_end, pos, requested = before[changed[0]]
        new_start, new_end, new_pos, new_requested = after[changed[0]]
        assert (new_start, new_pos, new_requested) == (start, pos, requested)
        assert new_end == segment.start
        assert segment.end == old_end
        # The largest unrequested range, split above what its owner asked for: no byte
        # already requested changes hands, and the thief gets at least min_steal.
        assert old_end - max(requested, pos) == best >= 2 * plan.min_steal
        assert segment.start >= max(requested, pos) + plan.min_steal
        assert segment.end - segment.start >= plan.min_steal

    def check(self) -> None:
        plan = self.plan
        spans = [*plan.done, *plan.free]
        for segment in plan.active:
            assert not segment.cancelled
            assert segment.start < segment.end
            assert segment.start <= segment.pos <= segment.requested <= segment.end
            spans.append((segment.start, segment.end))
        spans.sort()
        cursor = 0
        for start, end in spans:  # exactly once: no overlap, no hole
            assert start == cursor, f"{spans} at {cursor}"
            assert end > start
            cursor = end
        assert cursor == plan.size
        recorded = plan.done.copy()
        for segment in plan.active:
            recorded.add(segment.start, segment.pos)
        for start, end in recorded:
            assert self.written.covers(start, end), f"{recorded} ahead of {self.written}"
        assert plan.done_bytes() == recorded.total
        assert set(map(id, plan.active)) <= set(map(id, self.held))


sizes = st.one_of(st.integers(1, 10**7), st.integers(1, 5000))
min_steals = st.sampled_from([1, 2, 100, 4096, ALIGN, 2 * MiB])


@st.composite
def done_sets(draw: st.DrawFn, size: int) -> RangeSet:
    cuts = draw(st.lists(st.integers(0, size), max_size=8))
    points = sorted(cuts)
    return RangeSet(zip(points[::2], points[1::2], strict=False))


OPS = ["claim", "claim", "steal", "request", "advance", "advance", "release", "restart", "adopt"]


def run_ops(driver: Driver, data: st.DataObject, steps: int) -> None:
    plan = driver.plan
    for _ in range(steps):
        op = data.draw(st.sampled_from(OPS))
        live = [s for s in driver.held if not s.cancelled]
        if op == "claim":
            driver.claim()
        elif op == "steal":
            driver.steal()
        elif op == "adopt" and plan.free:
            s, e = data.draw(st.sampled_from(list(plan.free)))
            driver.adopt(data.draw(st.integers(s, e - 1)))
        elif op == "request" and live:
            segment = data.draw(st.sampled_from(live))
            if segment.pos == segment.requested:  # the engine asks only between requests
                driver.request(segment, data.draw(st.integers(1, max(1, plan.size // 3))))
        elif op == "advance" and live:
            segment = data.draw(st.sampled_from(live))
            driver.advance(segment, data.draw(st.integers(0, segment.requested - segment.pos)))
        elif op == "release" and driver.held:
            segment = data.draw(st.sampled_from(driver.held))
            if segment.cancelled:
                driver.release_stale(segment)
            else:
                driver.release(segment)
        elif op == "restart" and data.draw(st.integers(0, 3)) == 0:
            driver.restart()
        driver.check()


# -- properties ----------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(size=sizes, min_steal=min_steals, data=st.data())
def test_invariants_hold_for_any_operation_sequence(
    size: int, min_steal: int, data: st.DataObject
) -> None:
    driver = Driver.start(size, data.draw(done_sets(size)), min_steal)
    run_ops(driver, data, data.draw(st.integers(0, 60)))


@settings(max_examples=100, deadline=None)
@given(size=sizes, min_steal=min_steals, data=st.data())
def test_driving_everything_to_the_end_completes(
    size: int, min_steal: int, data: st.DataObject
) -> None:
    driver = Driver.start(size, data.draw(done_sets(size)), min_steal)
    run_ops(driver, data, data.draw(st.integers(0, 30)))
    driver.drain(data)


@settings(max_examples=100, deadline=None)
@given(
    size=st.integers(1, 200_000),
    min_steal=st.sampled_from([1, 3, 1000, ALIGN]),
    data=st.data(),
)
def test_assembled_bytes_equal_the_source(size: int, min_steal: int, data: st.DataObject) -> None:
    driver = Driver.start(size, data.draw(done_sets(size)), min_steal, with_bytes=True)
    run_ops(driver, data, data.draw(st.integers(0, 40)))
    driver.drain(data)


@settings(max_examples=100, deadline=None)
@given(
    size=st.integers(1, 10**7),
    min_steal=st.integers(1, 3 * MiB),
    data=st.data(),
)
def test_many_connections_split_the_file_then_finish(
    size: int, min_steal: int, data: st.DataObject
) -> None:
    """Connections keep joining while every one has a request in flight."""
    driver = Driver.start(size, RangeSet(), min_steal)
    for _ in range(data.draw(st.integers(1, 20))):
        segment = driver.claim()
        if segment is None:
            break
        driver.request(segment, data.draw(st.integers(1, size)))
        driver.advance(segment, data.draw(st.integers(0, segment.requested - segment.pos)))
        driver.check()
    for segment in driver.plan.active:
        assert segment.end - segment.start >= min(min_steal, size)
    driver.drain(data)
