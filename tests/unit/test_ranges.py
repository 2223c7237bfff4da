"""RangeSet: examples, and a model test against a plain set of integers."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sa1b.ranges import RangeSet

UNIVERSE = 200


def as_set(ranges: RangeSet) -> set[int]:
    return {i for s, e in ranges for i in range(s, e)}


def check_canonical(ranges: RangeSet) -> None:
    """Sorted, non-empty, disjoint and not touching (touching ranges are merged)."""
    spans = list(ranges)
    assert len(spans) == len(ranges)
    assert bool(ranges) == bool(spans)
    for s, e in spans:
        assert 0 <= s < e
    for (_, e1), (s2, _) in pairwise(spans):
        assert e1 < s2


# -- examples ----------------------------------------------------------------------------


def test_add_merges_touching_and_overlapping() -> None:
    ranges = RangeSet()
    ranges.add(0, 5)
    ranges.add(5, 9)
    assert list(ranges) == [(0, 9)]
    ranges.add(20, 30)
    ranges.add(12, 15)
    assert list(ranges) == [(0, 9), (12, 15), (20, 30)]
    ranges.add(8, 21)
    assert list(ranges) == [(0, 30)]


def test_add_empty_and_invalid() -> None:
    ranges = RangeSet([(3, 4)])
    ranges.add(7, 7)
    assert list(ranges) == [(3, 4)]
    with pytest.raises(ValueError, match="bad range"):
        ranges.add(5, 4)
    with pytest.raises(ValueError, match="bad range"):
        ranges.add(-1, 4)
    assert list(ranges) == [(3, 4)]


def test_constructor_merges_unsorted_input() -> None:
    assert list(RangeSet([(10, 20), (0, 5), (5, 10), (30, 31)])) == [(0, 20), (30, 31)]


def test_remove_splits_and_trims() -> None:
    ranges = RangeSet([(0, 100)])
    ranges.remove(10, 20)
    assert list(ranges) == [(0, 10), (20, 100)]
    ranges.remove(0, 5)
    assert list(ranges) == [(5, 10), (20, 100)]
    ranges.remove(90, 200)
    assert list(ranges) == [(5, 10), (20, 90)]
    ranges.remove(7, 25)
    assert list(ranges) == [(5, 7), (25, 90)]
    ranges.remove(50, 50)
    ranges.remove(60, 40)
    assert list(ranges) == [(5, 7), (25, 90)]
    ranges.remove(0, 1000)
    assert list(ranges) == []
    assert not ranges


def test_covers() -> None:
    ranges = RangeSet([(0, 10), (20, 30)])
    assert ranges.covers(0, 10)
    assert ranges.covers(3, 7)
    assert ranges.covers(20, 30)
    assert ranges.covers(25, 25)
    assert ranges.covers(15, 15)  # empty range is always covered
    assert not ranges.covers(0, 11)
    assert not ranges.covers(9, 21)
    assert not ranges.covers(10, 20)
    assert not ranges.covers(15, 16)
    assert not ranges.covers(29, 31)
    assert not RangeSet().covers(0, 1)


def test_gaps_prefix_total() -> None:
    ranges = RangeSet([(5, 10), (20, 30)])
    assert list(ranges.gaps(40)) == [(0, 5), (10, 20), (30, 40)]
    assert list(ranges.gaps(25)) == [(0, 5), (10, 20)]
    assert list(ranges.gaps(5)) == [(0, 5)]
    assert list(ranges.gaps(0)) == []
    assert ranges.prefix() == 0
    assert ranges.total == 15
    ranges.add(0, 5)
    assert ranges.prefix() == 10
    assert list(RangeSet().gaps(7)) == [(0, 7)]
    assert RangeSet().prefix() == 0
    assert RangeSet().total == 0


def test_copy_is_independent_and_equality() -> None:
    ranges = RangeSet([(0, 4)])
    clone = ranges.copy()
    assert clone == ranges
    clone.add(10, 12)
    assert clone != ranges
    assert list(ranges) == [(0, 4)]
    assert RangeSet([(0, 2), (2, 4)]) == RangeSet([(0, 4)])
    assert RangeSet() != [(0, 4)]
    assert repr(ranges) == "RangeSet([(0, 4)])"


def test_unhashable() -> None:
    with pytest.raises(TypeError):
        hash(RangeSet())


# -- model test --------------------------------------------------------------------------

bounds = st.tuples(st.integers(0, UNIVERSE), st.integers(0, UNIVERSE)).map(sorted).map(tuple)
operations = st.lists(st.tuples(st.sampled_from(["add", "remove"]), bounds), max_size=40)


@given(operations)
def test_model_against_a_set_of_ints(ops: list[tuple[str, tuple[int, int]]]) -> None:
    ranges, model = RangeSet(), set[int]()
    for op, (start, end) in ops:
        if op == "add":
            ranges.add(start, end)
            model |= set(range(start, end))
        else:
            ranges.remove(start, end)
            model -= set(range(start, end))
        check_canonical(ranges)
        assert as_set(ranges) == model
        assert ranges.total == len(model)
    prefix = 0
    while prefix in model:
        prefix += 1
    assert ranges.prefix() == prefix


@given(operations, bounds, st.integers(0, UNIVERSE + 20))
def test_queries_against_a_set_of_ints(
    ops: list[tuple[str, tuple[int, int]]], query: tuple[int, int], size: int
) -> None:
    ranges, model = RangeSet(), set[int]()
    for op, (start, end) in ops:
        getattr(ranges, op)(start, end)
        if op == "add":
            model |= set(range(start, end))
        else:
            model -= set(range(start, end))
    start, end = query
    assert ranges.covers(start, end) == set(range(start, end)).issubset(model)
    gaps = ranges.gaps(size)
    check_canonical(gaps)
    assert as_set(gaps) == set(range(size)) - model
    clone = ranges.copy()
    assert clone == ranges
    assert RangeSet(list(ranges)) == ranges
