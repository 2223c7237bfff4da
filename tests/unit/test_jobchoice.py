"""Which job a free connection takes, as a table: one row per scheduling case."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from sa1b.jobchoice import Job, choose_job, first_unfinished
from sa1b.progress import FileState

NOW = 100.0


@dataclass(frozen=True)
class File:
    state: FileState = "pending"
    not_before: float = 0.0
    halted: bool = False
    connections: int = 0
    claimable: bool = False
    stealable: int = 0
    draining: bool = False


PENDING = File()
ACTIVE_FREE = File("active", connections=2, claimable=True, stealable=1000)
ACTIVE_BUSY = File("active", connections=4, stealable=1000)
ACTIVE_BIGGER = File("active", connections=4, stealable=5000)
SINGLE_STREAM = File("active", connections=1)  # a stream runs: nothing to claim or steal
# Its bytes are all requested, or too few are left to be worth a steal: a small file,
# or the end of any file; a tar to extract from the disk, which does not drain.
ALL_REQUESTED = File("active", connections=1)
# The same, where the download is the output (a tar kept, a file that is no shard).
DRAINING = File("active", connections=3, draining=True)
BACKING_OFF = File("active", not_before=NOW + 5, claimable=True, stealable=9000)
HALTED = File("active", halted=True, claimable=True, stealable=9000)
FULL = File("active", connections=8, claimable=True, stealable=9000)  # at per_file
VERIFYING = File("verifying")
DONE, FAILED, EXPIRED = File("done"), File("failed"), File("expired")

# A shard walked member by member (--only) is never stealable: its step's answer says
# where the next one is. It is claimable while it has a request to make now.
WALK_READY = File("active", claimable=True)  # its step is idle and unfinished
WALK_STEPPING = File("active", connections=1)  # its one step in flight
WALK_MEMBERS = File("active", connections=2, claimable=True)  # members, under the cap

# name: (files, max_files, expected job) -- per_file is 8 throughout
CASES: dict[str, tuple[list[File], int, Job | None]] = {
    "nothing to do": ([], 8, None),
    "only finished files": ([DONE, FAILED, EXPIRED], 8, None),
    "open the first pending file": ([DONE, PENDING, PENDING], 8, Job("open", 1)),
    "claim before opening": ([PENDING, ACTIVE_FREE], 8, Job("claim", 1)),
    "claim the first file with free bytes": (
        [ACTIVE_BUSY, ACTIVE_FREE, ACTIVE_FREE], 8, Job("claim", 1)
    ),
    "open while under max_files": ([ACTIVE_BUSY, PENDING], 2, Job("open", 1)),
    "max_files reached: steal instead": ([ACTIVE_BUSY, PENDING], 1, Job("steal", 0)),
    # Until it is published a file holds its tar: --files bounds the tars on the disk.
    "a verifying file counts as in flight": ([VERIFYING, PENDING], 1, None),
    "a verifying file leaves room under max_files": ([VERIFYING, PENDING], 2, Job("open", 1)),
    "steal from the largest unrequested range": ([ACTIVE_BUSY, ACTIVE_BIGGER], 8, Job("steal", 1)),
    "open the next file rather than split a small one": (
        [ALL_REQUESTED, PENDING], 2, Job("open", 1)
    ),
    "a small file is not split: wait": ([ALL_REQUESTED, PENDING], 1, None),
    "steal from a file worth it, past a small one": (
        [ALL_REQUESTED, ACTIVE_BUSY, PENDING], 2, Job("steal", 1)
    ),
    # Files started together end together: the connections the first frees open the next.
    "a draining file leaves its place: open": ([DRAINING, PENDING], 1, Job("open", 1)),
    "a draining file is not stolen from": ([DRAINING], 8, None),
    "draining files leave at most max_files places": (
        [DRAINING, DRAINING, DRAINING, PENDING], 1, None
    ),
    "a draining file and its successor: the next waits": (
        [DRAINING, ACTIVE_BUSY, PENDING], 1, Job("steal", 1)
    ),
    "max_files draining, and as many more in flight: wait": (
        [DRAINING, DRAINING, ACTIVE_BUSY, ALL_REQUESTED, PENDING], 2, Job("steal", 2)
    ),
    "a single stream offers nothing": ([SINGLE_STREAM], 8, None),
    "a file backing off is left alone": ([BACKING_OFF, PENDING], 1, None),
    "a file backing off counts as in flight": ([BACKING_OFF, PENDING], 2, Job("open", 1)),
    "a halted file is left alone": ([HALTED], 8, None),
    "a file at its connection cap is left alone": ([FULL, ACTIVE_BUSY], 8, Job("steal", 1)),
    "a pending file backing off waits its turn": (
        [File(not_before=NOW + 1), PENDING], 8, Job("open", 1)
    ),
    "backoff over exactly now": ([File(not_before=NOW)], 8, Job("open", 0)),
    "a walk's next step is claimed": ([WALK_STEPPING, WALK_READY], 8, Job("claim", 1)),
    "a walk's members are claimed before a shard opens": (
        [WALK_MEMBERS, PENDING], 8, Job("claim", 0)
    ),
    "a walk stepping offers nothing: the next shard opens": (
        [WALK_STEPPING, PENDING], 8, Job("open", 1)
    ),
    "walks stepping fill max_files: wait": ([WALK_STEPPING, WALK_STEPPING, PENDING], 2, None),
}  # fmt: skip


@pytest.mark.parametrize(("files", "max_files", "expected"), CASES.values(), ids=CASES.keys())
def test_choose_job(files: list[File], max_files: int, expected: Job | None) -> None:
    assert choose_job(files, now=NOW, per_file=8, max_files=max_files) == expected


# name: (candidates, items in flight as the caller counts them, max_files, expected job)
COUNTED: dict[str, tuple[list[File], int, int, Job | None]] = {
    "fewer in flight than max_files: open": ([PENDING], 7, 8, Job("open", 0)),
    "max_files in flight, whatever the candidates: wait": ([PENDING], 8, 8, None),
    "the candidates in flight are not counted again": (
        [WALK_STEPPING, PENDING], 1, 2, Job("open", 1)
    ),
    "a draining candidate leaves its place": ([DRAINING, PENDING], 1, 1, Job("open", 1)),
    "max_files in flight: a walk's next step is still claimed": (
        [WALK_READY, PENDING], 8, 8, Job("claim", 0)
    ),
}  # fmt: skip


@pytest.mark.parametrize(
    ("files", "in_flight", "max_files", "expected"), COUNTED.values(), ids=COUNTED.keys()
)
def test_choose_job_with_in_flight_counted(
    files: list[File], in_flight: int, max_files: int, expected: Job | None
) -> None:
    job = choose_job(files, now=NOW, per_file=8, max_files=max_files, in_flight=in_flight)
    assert job == expected


# name: (files, start, max_files, expected job): files before ``start`` are finished
FROM_START: dict[str, tuple[list[File], int, int, Job | None]] = {
    "from the first unfinished file": ([DONE, FAILED, PENDING], 2, 8, Job("open", 2)),
    "nothing left": ([DONE, EXPIRED], 2, 8, None),
    "claim past the finished files": ([DONE, ACTIVE_BUSY, ACTIVE_FREE], 1, 8, Job("claim", 2)),
    "in flight counts from start on": ([DONE, VERIFYING, PENDING], 1, 1, None),
}  # fmt: skip


@pytest.mark.parametrize(
    ("files", "start", "max_files", "expected"), FROM_START.values(), ids=FROM_START.keys()
)
def test_choose_job_from_start(
    files: list[File], start: int, max_files: int, expected: Job | None
) -> None:
    assert first_unfinished(files) == start
    assert choose_job(files, now=NOW, per_file=8, max_files=max_files, start=start) == expected
    assert choose_job(files, now=NOW, per_file=8, max_files=max_files) == expected


# name: (files, from, the first unfinished file)
UNFINISHED: dict[str, tuple[list[File], int, int]] = {
    "none": ([], 0, 0),
    "the first": ([PENDING, DONE], 0, 0),
    "past finished files": ([DONE, FAILED, EXPIRED, ACTIVE_BUSY, DONE], 0, 3),
    "from where it was": ([DONE, DONE, VERIFYING, PENDING], 2, 2),
    "all finished": ([DONE, FAILED], 1, 2),
}  # fmt: skip


@pytest.mark.parametrize(("files", "start", "expected"), UNFINISHED.values(), ids=UNFINISHED.keys())
def test_first_unfinished(files: list[File], start: int, expected: int) -> None:
    assert first_unfinished(files, start) == expected
