"""Splitting a download among workers: where the index comes from (a table), and the
parts themselves (properties: disjoint, complete, balanced, blind to row order)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sa1b.errors import SelectionError
from sa1b.links import Link
from sa1b.split import WorkerPart, take_part, worker_part

SLURM = {"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "8"}

# -- where this worker's index comes from --------------------------------------------------


@pytest.mark.parametrize(
    ("index", "count", "env", "part"),
    [
        # no split at all
        (None, None, {}, None),
        (None, None, {"JOB_COMPLETION_INDEX": "2"}, None),  # a Job without a count
        (None, None, {"SLURM_ARRAY_TASK_ID": "3"}, None),  # not an array: no count
        # the options
        (0, 1, {}, WorkerPart(0, 1, "--shard-index")),
        (2, 4, {}, WorkerPart(2, 4, "--shard-index")),
        (2, 4, SLURM, WorkerPart(2, 4, "--shard-index")),  # the options win over Slurm
        # a Slurm array, from 0 or from its first id
        (None, None, SLURM, WorkerPart(3, 8, "SLURM_ARRAY_TASK_ID")),
        (None, 8, SLURM, WorkerPart(3, 8, "SLURM_ARRAY_TASK_ID")),
        (
            None,
            None,
            {**SLURM, "SLURM_ARRAY_TASK_ID": "10", "SLURM_ARRAY_TASK_MIN": "10"},
            WorkerPart(0, 8, "SLURM_ARRAY_TASK_ID"),
        ),
        # a Kubernetes indexed Job, with the count given
        (None, 5, {"JOB_COMPLETION_INDEX": "4"}, WorkerPart(4, 5, "JOB_COMPLETION_INDEX")),
    ],
)
def test_where_the_worker_index_comes_from(
    index: int | None, count: int | None, env: dict[str, str], part: WorkerPart | None
) -> None:
    assert worker_part(index, count, env) == part


@pytest.mark.parametrize(
    ("index", "count", "env", "message"),
    [
        (1, None, {}, "--shard-index needs --shard-count"),
        (None, 4, {}, "--shard-count needs --shard-index"),
        (4, 4, {}, "worker index 4 is outside 0..3"),
        (-1, 4, {}, "worker index -1 is outside 0..3"),
        (0, 0, {}, "the worker count is 0"),
        (None, 4, SLURM, "--shard-count 4 disagrees with SLURM_ARRAY_TASK_COUNT=8"),
        (None, None, {**SLURM, "SLURM_ARRAY_TASK_ID": "x"}, "SLURM_ARRAY_TASK_ID='x' is not"),
        (None, None, {**SLURM, "SLURM_ARRAY_TASK_ID": "9"}, "worker index 9 is outside 0..7"),
        (None, 2, {"JOB_COMPLETION_INDEX": "2"}, "JOB_COMPLETION_INDEX: worker index 2"),
    ],
)
def test_a_wrong_split_is_refused_with_its_reason(
    index: int | None, count: int | None, env: dict[str, str], message: str
) -> None:
    with pytest.raises(SelectionError, match=message.replace("(", r"\(").replace(".", r"\.")):
        worker_part(index, count, env)


# -- the parts -----------------------------------------------------------------------------

NAMES = st.one_of(
    st.integers(0, 999).map(lambda i: f"sa_{i:06d}.tar"),
    st.sampled_from(["sa_co_gold.tar", "extra.zip", "README.txt"]),
)


def _links(names: list[str]) -> list[Link]:
    return [
        Link(name, f"https://cdn.example/{name}?oe=7FFFFFFF", line)
        for line, name in enumerate(names, 1)
    ]


@given(
    names=st.lists(NAMES, unique=True, max_size=60),
    count=st.integers(1, 9),
    data=st.data(),
)
def test_parts_are_disjoint_complete_balanced_and_blind_to_row_order(
    names: list[str], count: int, data: st.DataObject
) -> None:
    links = _links(names)
    shuffled = _links(data.draw(st.permutations(names)))
    parts = [take_part(links, WorkerPart(i, count, "test")) for i in range(count)]
    taken = [link.name for part in parts for link in part]
    assert sorted(taken) == sorted(names)  # every file in exactly one part
    assert max(map(len, parts), default=0) - min(map(len, parts), default=0) <= 1
    for index, part in enumerate(parts):
        again = take_part(shuffled, WorkerPart(index, count, "test"))
        assert {link.name for link in again} == {link.name for link in part}
        assert part == [link for link in links if link in part]  # in the file's order


def test_equal_shards_are_dealt_round_robin_by_name() -> None:
    links = _links([f"sa_{i:06d}.tar" for i in (5, 0, 3, 1, 4, 2, 6)])
    second = take_part(links, WorkerPart(1, 3, "test"))
    assert [link.name for link in second] == ["sa_000001.tar", "sa_000004.tar"]
