"""The Ray engine's own decisions, without a cluster: how files are grouped into tasks,
how progress from tasks (and from a task run again elsewhere) adds up."""

from __future__ import annotations

import pytest

from sa1b.cluster.ray_engine import _groups, _Hub
from sa1b.links import Link
from sa1b.progress import FileOutcome, FileProgress, Snapshot, combine


def _links(count: int) -> list[Link]:
    return [Link(f"sa_{i:06d}.tar", f"https://cdn.example/sa_{i:06d}.tar", i) for i in range(count)]


@pytest.mark.parametrize(
    ("files", "per_task", "sizes"),
    [(0, 8, []), (1, 8, [1]), (8, 8, [8]), (9, 8, [5, 4]), (20, 8, [7, 7, 6]), (3, 1, [1, 1, 1])],
)
def test_files_are_dealt_into_as_few_tasks_as_the_group_size_needs(
    files: int, per_task: int, sizes: list[int]
) -> None:
    groups = _groups(_links(files), per_task)
    assert [len(part) for _, part in groups] == sizes
    assert [(group.index, group.count) for group, _ in groups] == [
        (i, len(sizes)) for i in range(len(sizes))
    ]
    names = [link.name for _, part in groups for link in part]
    assert sorted(names) == [link.name for link in _links(files)]
    assert _groups(list(reversed(_links(files))), per_task) == [
        (group, sorted(part, key=lambda link: link.line, reverse=True)) for group, part in groups
    ]


def _snapshot(name: str, fetched: int, speed: float = 1.0) -> Snapshot:
    return Snapshot(
        files=(FileProgress(name, "active", 100, fetched, 2),),
        fetched=fetched,
        elapsed=1.0,
        speed=speed,
        connections=2,
    )


def test_a_task_run_again_elsewhere_keeps_what_its_lost_attempt_fetched_in_the_total() -> None:
    hub = _Hub()
    done = FileOutcome("b", "done", 100)
    hub.push(0, "first", _snapshot("a", 40), [])
    hub.push(1, "only", _snapshot("b", 100), [done])
    hub.push(0, "first", _snapshot("a", 60), [])
    latest, lost, outcomes = hub.drain()
    assert (latest[0].fetched, lost, outcomes) == (60, 0, [done])
    hub.push(0, "second", _snapshot("a", 10), [])  # node lost: the task starts anew
    latest, lost, outcomes = hub.drain()
    assert (latest[0].fetched, lost, outcomes) == (10, 60, [])


def test_snapshots_of_several_tasks_add_up() -> None:
    both = combine([_snapshot("a", 40, 2.0), _snapshot("b", 10, 3.0)], elapsed=7.0)
    assert [f.name for f in both.files] == ["a", "b"]
    assert (both.fetched, both.speed, both.connections, both.elapsed) == (50, 5.0, 4, 7.0)
