"""When a file is draining (its last requests under way, nothing left to claim or steal):
then it leaves its place under ``--files`` (:mod:`sa1b.jobchoice`). A table of plans."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from sa1b.engine.tasks import Task
from sa1b.links import Link
from sa1b.progress import FileState
from sa1b.retry import FailureAccount, RetryPolicy
from sa1b.segments import SegmentPlan

MIB = 1024 * 1024
MIN_STEAL = MIB // 2


def _nothing(plan: SegmentPlan) -> None:
    pass


def _claimed(plan: SegmentPlan) -> None:
    plan.claim()


def _requested(plan: SegmentPlan) -> None:
    """Every byte asked for: one connection's segment, its whole rest requested."""
    segment = plan.claim()
    assert segment is not None
    plan.next_request(segment, 64 * MIB)  # under 4 * MIN_STEAL left: asked for whole
    assert segment.requested == segment.end


def _fetched(plan: SegmentPlan) -> None:
    """Every byte in: no request under way any more."""
    segment = plan.claim()
    assert segment is not None
    plan.next_request(segment, 64 * MIB)
    segment.pos = segment.end
    plan.release(segment)


@dataclass(frozen=True)
class Case:
    size: int
    work: Callable[[SegmentPlan], None]
    """What its connections did."""
    expected: bool
    drains: bool = True
    state: FileState = "active"
    single_stream: bool = False


CASES: dict[str, Case] = {
    "every byte requested: draining": Case(MIB, _requested, True),
    "a tar extracted from the disk never drains": Case(MIB, _requested, False, drains=False),
    "free bytes left to claim": Case(MIB, _nothing, False),
    "a range worth a steal left": Case(64 * MIB, _claimed, False),
    "nothing under way: not draining, whole": Case(MIB, _fetched, False),
    "being verified: not draining": Case(MIB, _requested, False, state="verifying"),
    "a single stream may run for long": Case(MIB, _requested, False, single_stream=True),
}


def _task(state: FileState, size: int | None = None) -> Task:
    link = Link(name="sa_000000.tar", url="https://cdn.example/sa_000000.tar")
    failures = FailureAccount(RetryPolicy(), floor=4096)
    return Task(link=link, id=1, generation=0, failures=failures, state=state, size=size)


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_draining(case: Case) -> None:
    task = _task(case.state, case.size)
    task.plan = SegmentPlan(case.size, min_steal=MIN_STEAL)
    task.drains, task.single_stream = case.drains, case.single_stream
    case.work(task.plan)
    assert task.draining is case.expected


def test_a_file_not_yet_sized_is_not_draining() -> None:
    task = _task("active")
    task.drains = True
    assert task.draining is False
