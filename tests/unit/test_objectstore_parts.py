"""The part planner: sizes, spans, and which parts downloaded bytes make whole (tables
and invariants)."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sa1b.objectstore.parts import (
    DEFAULT_CHUNK,
    DEFAULT_MEMORY,
    DEFAULT_PART,
    MAX_PART,
    MAX_PARTS,
    MIB,
    MIN_PART,
    Listed,
    MemoryBudget,
    PartPlan,
    kept_parts,
    latest_parts,
    part_size_for,
)
from sa1b.ranges import RangeSet

GIB = 1024 * MIB
SHARD = 11_298_347_520  # a real SA-1B shard's size (10.5 GiB)

# name: (file size, preferred part, part size chosen, parts)
SIZES = {
    "a real shard": (SHARD, DEFAULT_PART, DEFAULT_PART, 1347),
    "smaller than a part": (1000, DEFAULT_PART, DEFAULT_PART, 1),
    "empty": (0, DEFAULT_PART, DEFAULT_PART, 1),
    "exactly one part": (DEFAULT_PART, DEFAULT_PART, DEFAULT_PART, 1),
    "one byte more": (DEFAULT_PART + 1, DEFAULT_PART, DEFAULT_PART, 2),
    "10,000 parts exactly": (MAX_PARTS * MIN_PART, MIN_PART, MIN_PART, MAX_PARTS),
    "one byte over 10,000 parts": (MAX_PARTS * MIN_PART + 1, MIN_PART, 6 * MIB, 8334),
    "1 TiB at 8 MiB": (1024 * GIB, DEFAULT_PART, 105 * MIB, 9987),
    "5 TiB, S3's largest object": (5 * 1024 * GIB, DEFAULT_PART, 525 * MIB, 9987),
}


@pytest.mark.parametrize(("size", "preferred", "part", "count"), SIZES.values(), ids=SIZES.keys())
def test_part_size_and_count(size: int, preferred: int, part: int, count: int) -> None:
    assert part_size_for(size, preferred=preferred) == part
    plan = PartPlan.for_size(size, preferred=preferred)
    assert (plan.part_size, plan.count) == (part, count)
    assert plan.count <= MAX_PARTS
    assert all(plan.length(n) >= MIN_PART for n in range(1, plan.count))  # all but the last


# name: (size, preferred)
IMPOSSIBLE = {
    "a part under 5 MiB": (100, MIN_PART - 1),
    "a part over 5 GiB": (100, MAX_PART + 1),
    "a negative size": (-1, DEFAULT_PART),
    "more than 10,000 parts of 5 GiB": (MAX_PARTS * MAX_PART + 1, DEFAULT_PART),
}


@pytest.mark.parametrize(("size", "preferred"), IMPOSSIBLE.values(), ids=IMPOSSIBLE.keys())
def test_impossible_plans_are_refused(size: int, preferred: int) -> None:
    with pytest.raises(ValueError):
        part_size_for(size, preferred=preferred)


def test_a_plan_refuses_too_many_parts_and_unknown_part_numbers() -> None:
    with pytest.raises(ValueError, match="at most 10000"):
        PartPlan(MAX_PARTS * MIN_PART + 1, MIN_PART)
    plan = PartPlan(20 * MIB, MIN_PART)
    for number in (0, 5):
        with pytest.raises(ValueError, match="no part"):
            plan.span(number)


SMALL = PartPlan(17 * MIB, 5 * MIB)  # parts 1-3 of 5 MiB, part 4 of 2 MiB

# name: (downloaded ranges, the whole parts, the bytes to download again once those whole
# parts are in the bucket)
DOWNLOADED = {
    "nothing": ([], [], [(0, 17 * MIB)]),
    "everything": ([(0, 17 * MIB)], [1, 2, 3, 4], []),
    "one byte short of part 1": ([(0, 5 * MIB - 1)], [], [(0, 17 * MIB)]),
    "part 1 exactly": ([(0, 5 * MIB)], [1], [(5 * MIB, 17 * MIB)]),
    "part 2 and a bit either side": (
        [(5 * MIB - 1, 10 * MIB + 1)],
        [2],
        [(0, 5 * MIB), (10 * MIB, 17 * MIB)],
    ),
    "the last, short part": ([(15 * MIB, 17 * MIB)], [4], [(0, 15 * MIB)]),
    "two ranges, parts 1 and 3": (
        [(0, 5 * MIB), (10 * MIB, 15 * MIB)],
        [1, 3],
        [(5 * MIB, 10 * MIB), (15 * MIB, 17 * MIB)],
    ),
    "part 2 from two adjacent ranges": (
        [(5 * MIB, 7 * MIB), (7 * MIB, 10 * MIB)],
        [2],
        [(0, 5 * MIB), (10 * MIB, 17 * MIB)],
    ),
    "part 2 with a hole": ([(5 * MIB, 7 * MIB), (7 * MIB + 1, 10 * MIB)], [], [(0, 17 * MIB)]),
}


@pytest.mark.parametrize(("ranges", "whole", "missing"), DOWNLOADED.values(), ids=DOWNLOADED.keys())
def test_which_parts_downloaded_bytes_make_whole(
    ranges: list[tuple[int, int]], whole: list[int], missing: list[tuple[int, int]]
) -> None:
    assert list(SMALL.complete(RangeSet(ranges))) == whole
    assert list(SMALL.missing(whole)) == missing


@given(
    size=st.integers(min_value=0, max_value=200 * MIB),
    cuts=st.lists(st.integers(min_value=0, max_value=200 * MIB), max_size=12),
)
def test_parts_tile_the_file_and_complete_parts_are_downloaded(size: int, cuts: list[int]) -> None:
    plan = PartPlan(size, MIN_PART)
    spans = [plan.span(n) for n in plan.numbers()]
    assert spans[0][0] == 0 and spans[-1][1] == size
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
    # Any downloaded ranges: the whole parts are covered, every other part is not.
    points = sorted(min(cut, size) for cut in cuts)
    downloaded = RangeSet(zip(points[::2], points[1::2], strict=False))
    whole = set(plan.complete(downloaded))
    for number in plan.numbers():
        start, end = plan.span(number)
        assert (number in whole) == (downloaded.covers(start, end) and start < end)
    # What is missing once the whole parts are uploaded is exactly the other parts.
    assert plan.missing(whole).total == size - sum(plan.length(n) for n in whole)


def test_the_defaults_fit_the_benchmark_in_a_gib() -> None:
    # A CDN capping each connection at 2 MB/s and a store ingesting ~133 MB/s: 0.8 of it
    # needs ~53 connections, each on a chunk of a part: the parts they fill, beside one
    # for each of the 8 uploaders, fit the budget, itself well under 1 GiB of RSS.
    connections = 0.8 * 133e6 / 2e6
    filling = math.ceil(connections * DEFAULT_CHUNK / DEFAULT_PART)
    assert (filling + 8) * DEFAULT_PART <= DEFAULT_MEMORY <= 256 * MIB


# name: (limit, held, length, fits)
BUDGET = {
    "room for it": (64 * MIB, 48 * MIB, 8 * MIB, True),
    "exactly full then": (64 * MIB, 56 * MIB, 8 * MIB, True),
    "spent: the claim waits": (64 * MIB, 60 * MIB, 8 * MIB, False),
    "nothing held: a part larger than the budget still goes": (8 * MIB, 0, 16 * MIB, True),
    "something held: the large part waits": (8 * MIB, 1, 16 * MIB, False),
}


@pytest.mark.parametrize(("limit", "held", "length", "fits"), BUDGET.values(), ids=BUDGET.keys())
def test_budget_accounting(limit: int, held: int, length: int, fits: bool) -> None:
    budget = MemoryBudget(limit, held)
    assert budget.fits(length) is fits


def test_budget_gives_back_what_it_took_and_never_more() -> None:
    budget = MemoryBudget(16 * MIB)
    budget.take(8 * MIB)
    budget.take(8 * MIB)
    assert not budget.fits(1)
    budget.give(8 * MIB)
    assert budget.fits(8 * MIB) and budget.held == 8 * MIB
    with pytest.raises(ValueError):
        budget.give(9 * MIB)


PLAN = PartPlan(3 * MIN_PART + 100, MIN_PART)  # parts 1-3 of 5 MiB, part 4 of 100 bytes
A, B = "sha-a=", "sha-b="

# name: (listed by the bucket, recorded in the store, kept: number -> SHA-256 to complete with)
RESUME = {
    "nothing in the bucket": ([], [], {}),
    "listed with checksums, nothing recorded": (
        [Listed(1, MIN_PART, A), Listed(4, 100, B)],
        [],
        {1: A, 4: B},
    ),
    "listed without checksums, recorded": (
        [Listed(1, MIN_PART), Listed(2, MIN_PART)],
        [Listed(1, MIN_PART, A), Listed(2, MIN_PART, B)],
        {1: A, 2: B},
    ),
    "listed without checksums, not recorded (killed before the record)": (
        [Listed(1, MIN_PART), Listed(2, MIN_PART)],
        [Listed(1, MIN_PART, A)],
        {1: A},
    ),
    "a part of the wrong size (another plan)": ([Listed(1, MIN_PART - 1, A)], [], {}),
    "the last part must be the short one": ([Listed(4, MIN_PART, A)], [], {}),
    "a number beyond the plan": ([Listed(5, 100, A)], [], {}),
    "a checksum other than recorded": ([Listed(2, MIN_PART, B)], [Listed(2, MIN_PART, A)], {}),
    "the same checksum": ([Listed(2, MIN_PART, A)], [Listed(2, MIN_PART, A)], {2: A}),
}


@pytest.mark.parametrize(("listed", "recorded", "kept"), RESUME.values(), ids=RESUME.keys())
def test_which_parts_a_resume_keeps(
    listed: list[Listed], recorded: list[Listed], kept: dict[int, str]
) -> None:
    assert kept_parts(PLAN, listed, recorded) == kept
    assert PLAN.missing(kept).total == PLAN.size - sum(PLAN.length(n) for n in kept)


# parts as ListParts lists them (number, ETag): each number once, the last listed, in order
LISTED = [
    ([], []),
    ([(1, "a"), (2, "b")], [(1, "a"), (2, "b")]),
    ([(1, "a"), (1, "a")], [(1, "a")]),  # SeaweedFS 4.48: a part sent twice, listed twice
    ([(1, "a"), (2, "b"), (1, "c")], [(1, "c"), (2, "b")]),  # sent again: the last counts
    ([(3, "c"), (1, "a")], [(1, "a"), (3, "c")]),
]


@pytest.mark.parametrize(("listed", "kept"), LISTED)
def test_listed_parts_are_each_number_once_the_last_listed(
    listed: list[tuple[int, str]], kept: list[tuple[int, str]]
) -> None:
    parts = [Listed(number, 5, etag) for number, etag in listed]
    assert [(p.number, p.sha256) for p in latest_parts(parts)] == kept
