"""A walking run's ready items (sa1b.engine.ready): an item that may have become claimable
is offered and taken, lowest index first, as choose_job's table says; one the rule passes
over (halted, backing off, at its connection cap, nothing to ask) is forgotten until its
next event, a backoff's end included; pending items open in order while fewer than
max_files are in flight, counted again once an item ended."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from sa1b.engine.ready import ReadyItems
from sa1b.jobchoice import Job
from sa1b.progress import FileState

NOW = 100.0


@dataclass(eq=False)
class Item:
    state: FileState = "pending"
    not_before: float = 0.0
    halted: bool = False
    connections: int = 0
    claimable: bool = False
    stealable: int = 0
    draining: bool = False  # a walked shard never is


def walking() -> Item:
    return Item("active", claimable=True)


def choose(
    ready: ReadyItems, *, now: float = NOW, max_files: int = 8, ended: int = 0
) -> Job | None:
    return ready.choose(now=now, per_file=8, max_files=max_files, ended=ended)


def begun(items: list[Item], *indices: int) -> ReadyItems:
    """Items ``indices`` (active) began in this order; the rest are as given."""
    ready = ReadyItems(items)
    for index in indices:
        ready.begun(items[index])
    return ready


# name: (items, begun in this order, max_files, expected job)
CASES: dict[str, tuple[list[Item], list[int], int, Job | None]] = {
    "nothing at all": ([], [], 8, None),
    "open the first pending item": ([Item(), Item()], [], 8, Job("open", 0)),
    "an item begun is claimed": ([walking()], [0], 8, Job("claim", 0)),
    "claim before opening": ([walking(), Item()], [0], 8, Job("claim", 0)),
    "the lowest index first, whatever the order offered": (
        [walking(), walking(), walking()], [2, 0, 1], 8, Job("claim", 0)
    ),
    "a halted item is passed over": (
        [Item("active", halted=True, claimable=True), walking()], [0, 1], 8, Job("claim", 1)
    ),
    "one backing off is passed over": (
        [Item("active", not_before=NOW + 1, claimable=True), walking()], [0, 1], 8,
        Job("claim", 1),
    ),
    "one at its connection cap is passed over": (
        [Item("active", connections=8, claimable=True), walking()], [0, 1], 8, Job("claim", 1)
    ),
    "one with nothing to ask opens the next": ([Item("active"), Item()], [0], 8, Job("open", 1)),
    "a halted pending item is passed over": (
        [Item(halted=True), Item()], [], 8, Job("open", 1)
    ),
    "max_files in flight: wait": ([Item("active"), Item()], [0], 1, None),
    "a finished item is not in flight": ([Item("done"), Item()], [], 1, Job("open", 1)),
}  # fmt: skip


@pytest.mark.parametrize(
    ("items", "order", "max_files", "expected"), CASES.values(), ids=CASES.keys()
)
def test_choose(items: list[Item], order: list[int], max_files: int, expected: Job | None) -> None:
    assert choose(begun(items, *order), max_files=max_files) == expected


def test_an_item_is_taken_only_once_offered() -> None:
    items = [Item("active"), walking()]
    ready = begun(items, 0)
    assert choose(ready) is None, "the second item was not offered: it is not read"
    items[0].claimable = True
    assert choose(ready) is None, "the first was passed over: forgotten until its next event"
    ready.offer(items[0])  # a request of it ended
    assert choose(ready) == Job("claim", 0)
    assert choose(ready) == Job("claim", 0), "still claimable (a member): still offered"
    ready.offer(items[1])
    assert choose(ready) == Job("claim", 0), "the lowest index first"
    items[0].claimable = False
    assert choose(ready) == Job("claim", 1)


def test_an_item_backing_off_comes_back_when_its_backoff_ends() -> None:
    items = [Item("active", not_before=NOW + 5, claimable=True)]
    ready = begun(items, 0)
    assert choose(ready) is None
    assert choose(ready, now=NOW + 4.9) is None
    assert choose(ready, now=NOW + 5) == Job("claim", 0), "offered again, with no event"


def test_items_in_flight_are_counted_again_once_one_ended() -> None:
    items = [Item(), Item(), Item()]
    ready = ReadyItems(items)
    for index in (0, 1):
        assert choose(ready, max_files=2) == Job("open", index)
        items[index].state = "active"  # what the scheduler does: begin it
        ready.begun(items[index])
    assert choose(ready, max_files=2) is None
    items[0].state = "done"
    assert choose(ready, max_files=2, ended=1) == Job("open", 2)
