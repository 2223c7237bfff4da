"""Shard selection: specs by id, extras only on request, missing shards reported, sorted."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sa1b.errors import InputError, SelectionError
from sa1b.links import Link
from sa1b.selection import MAX_SHARD, parse_shard_spec, select_links, within_budget
from sa1b.sizes import NOMINAL_SHARD_SIZE

# -- parse_shard_spec ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "ids"),
    [
        ("0", {0}),
        ("999", {999}),
        ("0-3", {0, 1, 2, 3}),
        ("5-5", {5}),
        ("0,7,42", {0, 7, 42}),
        ("0-2,120", {0, 1, 2, 120}),
        ("sa_000777", {777}),
        ("sa_000777.tar", {777}),
        ("sa_7", {7}),
        ("7.tar", {7}),
        ("007", {7}),
        ("000999", {999}),
        ("sa_000010-sa_000012", {10, 11, 12}),
        ("sa_000010.tar-12", {10, 11, 12}),
        (" 1 , 2 - 4 ,sa_000005 ", {1, 2, 3, 4, 5}),
        ("3,3,1-3", {1, 2, 3}),
        ("0-999", set(range(1000))),
    ],
)
def test_parse_shard_spec(spec: str, ids: set[int]) -> None:
    assert parse_shard_spec(spec) == frozenset(ids)


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("", "empty item"),
        ("1,,2", "empty item"),
        ("1,", "empty item"),
        (",1", "empty item"),
        (" , ", "empty item"),
        ("5-3", "backwards"),
        ("sa_000010-sa_000002", "backwards"),
        ("1000", "not a shard id"),
        ("0-1000", "not a shard id"),
        ("sa_001000", "not a shard id"),
        ("0000007", "not a shard id"),
        ("abc", "not a shard id"),
        ("1-", "not a shard id"),
        ("-1", "not a shard id"),
        ("1-2-3", "not a shard id"),
        ("0x10", "not a shard id"),
        ("1.5", "not a shard id"),
        ("+1", "not a shard id"),
        ("sa_000001.tar.gz", "not a shard id"),
        ("sa_images_ids.txt", "not a shard id"),
        ("1 2", "not a shard id"),
        ("1;2", "not a shard id"),
    ],
)
def test_bad_specs_raise_selection_error(spec: str, fragment: str) -> None:
    with pytest.raises(SelectionError) as info:
        parse_shard_spec(spec)
    assert fragment in str(info.value)
    assert repr(spec) in str(info.value)
    assert info.value.hint
    assert isinstance(info.value, InputError)


@given(st.lists(st.tuples(st.integers(0, MAX_SHARD), st.integers(0, 50)), min_size=1))
def test_spec_of_ranges_is_the_union(items: list[tuple[int, int]]) -> None:
    parts, expected = [], set()
    for low, width in items:
        high = min(MAX_SHARD, low + width)
        parts.append(f"{low}-{high}" if width else f"sa_{low:06d}")
        expected.update(range(low, high + 1))
    assert parse_shard_spec(",".join(parts)) == expected


# -- select_links --------------------------------------------------------------------------


def link(name: str, line: int = 0) -> Link:
    return Link(name, f"https://h.example/{name}?oe=ff", line)


# Unsorted, like the official file.
LINKS = [
    link("sa_000020.tar", 2),
    link("sa_000021.tar", 3),
    link("sa_000130.tar", 4),
    link("sa_images_ids.txt", 5),
    link("sa_000000.tar", 6),
    link("sa_co_gold.tar", 7),
    link("sa_000007.tar", 8),
]


def names(links: list[Link]) -> list[str]:
    return [item.name for item in links]


def test_all_shards_without_extras_sorted() -> None:
    assert names(select_links(LINKS)) == [
        "sa_000000.tar",
        "sa_000007.tar",
        "sa_000020.tar",
        "sa_000021.tar",
        "sa_000130.tar",
    ]


def test_extras_only_with_extras() -> None:
    chosen = names(select_links(LINKS, extras=True))
    assert chosen == sorted(item.name for item in LINKS)
    assert "sa_images_ids.txt" in chosen
    assert "sa_co_gold.tar" in chosen
    assert "sa_co_gold.tar" not in names(select_links(LINKS))


def test_selected_ids_only() -> None:
    assert names(select_links(LINKS, shards={130, 0})) == ["sa_000000.tar", "sa_000130.tar"]
    assert names(select_links(LINKS, shards=parse_shard_spec("20-21"), extras=True)) == [
        "sa_000020.tar",
        "sa_000021.tar",
        "sa_co_gold.tar",
        "sa_images_ids.txt",
    ]


def test_selection_keeps_links_unchanged() -> None:
    chosen = select_links(LINKS, shards=[7])
    assert chosen == [LINKS[6]]
    assert chosen[0].url == LINKS[6].url
    assert chosen[0].line == 8


def test_missing_shards_are_reported() -> None:
    with pytest.raises(SelectionError) as info:
        select_links(LINKS, shards={0, 1, 2})
    message = str(info.value)
    assert "sa_000001" in message
    assert "sa_000002" in message
    assert "sa_000000" not in message
    assert info.value.hint


def test_many_missing_shards_are_summarised() -> None:
    with pytest.raises(SelectionError) as info:
        select_links(LINKS, shards=range(100))
    message = str(info.value)
    assert "sa_000001, sa_000002, sa_000003, sa_000004, sa_000005" in message
    assert "and 91 more" in message  # 100 asked, 4 present (0, 7, 20, 21), 5 shown


def test_no_shards_in_file_is_an_error_unless_extras() -> None:
    extras_only = [link("sa_images_ids.txt"), link("sa_co_gold.tar")]
    with pytest.raises(SelectionError, match="nothing selected"):
        select_links(extras_only)
    assert names(select_links(extras_only, extras=True)) == ["sa_co_gold.tar", "sa_images_ids.txt"]


def test_empty_shard_set_selects_nothing() -> None:
    with pytest.raises(SelectionError):
        select_links(LINKS, shards=[])
    assert names(select_links(LINKS, shards=[], extras=True)) == [
        "sa_co_gold.tar",
        "sa_images_ids.txt",
    ]


@given(
    present=st.sets(st.integers(0, MAX_SHARD), min_size=1, max_size=40),
    wanted=st.sets(st.integers(0, MAX_SHARD), max_size=40),
    extras=st.booleans(),
    order=st.randoms(use_true_random=False),
)
def test_selection_property(
    present: set[int], wanted: set[int], extras: bool, order: object
) -> None:
    links = [link(f"sa_{i:06d}.tar") for i in present] + [link("sa_images_ids.txt")]
    order.shuffle(links)  # type: ignore[attr-defined]
    if not wanted <= present:
        with pytest.raises(SelectionError) as info:
            select_links(links, shards=wanted, extras=extras)
        assert f"sa_{min(wanted - present):06d}" in str(info.value)
        return
    if not wanted and not extras:
        with pytest.raises(SelectionError):
            select_links(links, shards=wanted, extras=extras)
        return
    chosen = select_links(links, shards=wanted, extras=extras)
    assert names(chosen) == sorted(names(chosen))
    assert {item.shard_id for item in chosen if item.shard_id is not None} == wanted
    assert ("sa_images_ids.txt" in names(chosen)) == extras


# -- budgets -------------------------------------------------------------------------------

THOUSAND = [Link(f"sa_{i:06d}.tar", f"https://h/{i}", i) for i in (999, *range(999))]
EXTRA = Link("sa_images_ids.txt", "https://h/ids", 1001)


@pytest.mark.parametrize(
    ("budget", "ids"),
    [
        ({"fraction": Fraction(1, 10)}, range(100)),
        ({"fraction": Fraction("0.29")}, range(290)),  # exact: not 289 by float rounding
        ({"fraction": Fraction(1)}, range(1000)),
        ({"fraction": Fraction(1, 100_000)}, range(1)),  # at least one shard
        ({"max_bytes": 2 * 1024**4}, range(195)),  # 2 TiB / 10.5 GiB = 195.04
        ({"max_bytes": NOMINAL_SHARD_SIZE}, range(1)),
        ({}, range(1000)),
    ],
)
def test_a_budget_takes_the_lowest_ids_whatever_the_row_order(
    budget: dict[str, Any], ids: range
) -> None:
    chosen = within_budget([*THOUSAND, EXTRA], **budget)
    assert sorted(link.shard_id for link in chosen if link.shard_id is not None) == list(ids)
    assert EXTRA in chosen  # extras are not counted in a budget, nor dropped by it


@pytest.mark.parametrize(
    ("links", "budget", "message"),
    [
        (THOUSAND, {"max_bytes": NOMINAL_SHARD_SIZE - 1}, "less than one shard"),
        (THOUSAND, {"fraction": Fraction(0)}, "not above 0"),
        (THOUSAND, {"fraction": Fraction(3, 2)}, "not above 0 and at most 1"),
        ([EXTRA], {"fraction": Fraction(1, 2)}, "selects shards: none is selected"),
    ],
)
def test_an_impossible_budget_is_refused(
    links: list[Link], budget: dict[str, Any], message: str
) -> None:
    with pytest.raises(SelectionError, match=message):
        within_budget(links, **budget)
