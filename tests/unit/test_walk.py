"""The walk body's bookkeeping (sa1b.engine.walk): a staged member counts only when
whole, a piece of a voided generation is never written, a member fetched in parts is
renamed into place once whole, a shard makes no request while the disk is behind or the
requests in flight fill the budget (it stays claimable: its request is only held back),
and it is complete only once walked and idle."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sa1b.config import DownloadConfig, ExtractOptions
from sa1b.engine import walk as walk_module
from sa1b.engine.run import Run
from sa1b.engine.tasks import Task
from sa1b.engine.walk import WalkAnswer, WalkBody, Walks, Wanted, parts_of
from sa1b.errors import SA1BError
from sa1b.links import Link
from sa1b.retry import FailureAccount, RetryPolicy
from sa1b.store.state import StateStore
from sa1b.tarformat import BLOCK
from sa1b.tarwalk import CHUNK, Entry, Piece, TarWalk


@pytest.fixture
def walks(tmp_path: Path) -> Iterator[Walks]:
    config = DownloadConfig(out=tmp_path / "out", extract=ExtractOptions(only="jpg"))
    with StateStore(config.out) as store:
        errors: list[SA1BError] = []
        yield Walks(Run(config, store), wanted=Wanted("jpg"), abort=errors.append)
        assert not errors


def shard(walks: Walks, number: int = 0) -> tuple[Task, WalkBody]:
    name = f"sa_{number:06d}.tar"
    link = Link(name=name, url=f"http://127.0.0.1/{name}")
    failures = FailureAccount(RetryPolicy(), floor=4096)
    task = Task(link=link, id=number + 1, generation=0, failures=failures, state="active")
    body = walks.body(task)
    task.body = body
    return task, body


def run_jobs(walks: Walks) -> None:
    """What the supervising loop does at a tick: the queued writes, one after another."""
    with walks.run.lock:
        jobs, walks.jobs = walks.jobs, []
    for job in jobs:
        job()


def test_a_member_is_staged_once_every_piece_is_written(walks: Walks) -> None:
    task, body = shard(walks)
    entry = Entry("sa_1.jpg", 512, 10)
    with walks.run.lock:
        walks.stage(task, body, Piece(entry, 5, b"fghij"))
        walks.stage(task, body, Piece(entry, 0, b"abcde"))
    first, second = walks.jobs
    first()
    assert body.staged == set() and body.writing == 1
    second()
    assert body.staged == {"sa_1.jpg"} and body.writing == 0
    assert (body.staging / "sa_1.jpg").read_bytes() == b"abcdefghij"


def test_a_piece_of_a_voided_generation_writes_nothing(walks: Walks) -> None:
    task, body = shard(walks)
    entry = Entry("sa_1.jpg", 512, 5)
    with walks.run.lock:
        walks.stage(task, body, Piece(entry, 0, b"old!!"))
        body.start_over(task)  # a new version: the staging folder is void
    run_jobs(walks)
    assert not (body.staging / "sa_1.jpg").exists()
    assert body.staged == set() and body.written == {} and body.writing == 0


def test_a_member_in_parts_is_renamed_into_place_once_whole(walks: Walks) -> None:
    task, body = shard(walks)
    entry = Entry("sa_1.jpg", 512, CHUNK + 3)
    parts = parts_of(entry)
    assert [(p.at, p.length) for p in parts] == [(0, CHUNK), (CHUNK, 3)]
    with walks.run.lock:
        walks.stage(task, body, Piece(entry, CHUNK, b"xyz"), parts=True)
    run_jobs(walks)
    assert not (body.staging / "sa_1.jpg").exists()  # never a whole-sized file with a hole
    assert (body.staging / "sa_1.jpg.partial").stat().st_size == CHUNK + 3
    with walks.run.lock:
        walks.stage(task, body, Piece(entry, 0, b"a" * CHUNK), parts=True)
    run_jobs(walks)
    assert (body.staging / "sa_1.jpg").read_bytes() == b"a" * CHUNK + b"xyz"
    assert body.staged == {"sa_1.jpg"}


def test_progress_counts_the_bytes_a_walk_got_through_and_whole_parts(walks: Walks) -> None:
    """What the task's account of failures weighs: bytes, including those of a header
    still incomplete (a request cut mid-header kept them), never a count of members."""
    task, body = shard(walks)
    assert task.progress == 0
    body.walk = TarWalk(task.name, 10 * 1024, lambda n: True, layout="shard")
    body.walk.feed(0, b"abc")  # three bytes of the first header
    assert task.progress == 3
    body.parts_fetched = 1000
    assert task.progress == 1003
    body.walk = TarWalk(task.name, 10 * 1024, lambda n: True, layout="shard", start=None)
    assert task.progress == 10 * 1024 + 1000  # walked to the end


def test_a_shard_is_complete_once_walked_and_idle(walks: Walks) -> None:
    task, body = shard(walks)
    assert task.claimable and not task.complete and task.stealable == 0
    body.walk = TarWalk(task.name, 10 * 1024, lambda n: True, layout="shard", start=None)
    body.todo.extend(parts_of(Entry("sa_1.jpg", 512, 10)))
    assert task.claimable and not task.complete  # a member of its catalog to fetch
    with walks.run.lock:
        answer = body.claim(task)
    assert answer is not None and not task.claimable and not task.complete  # in flight
    answer.end(None)  # an answer without a byte: the part is asked for again
    assert body.todo and task.claimable
    body.todo.clear()
    assert task.complete and not task.claimable


@pytest.fixture
def behind(walks: Walks, monkeypatch: pytest.MonkeyPatch) -> tuple[Task, WalkBody]:
    """A walk whose pieces waiting for the disk fill its budget: 10 bytes of 8."""
    monkeypatch.setattr(walk_module, "HELD_BUDGET", 8)
    task, body = shard(walks)
    entry = Entry("sa_1.jpg", 512, 10)
    with walks.run.lock:
        walks.stage(task, body, Piece(entry, 0, b"abcde"))
        walks.stage(task, body, Piece(entry, 5, b"fghij"))
    return task, body


def test_no_request_starts_while_the_disk_is_behind(
    walks: Walks, behind: tuple[Task, WalkBody]
) -> None:
    task, body = behind
    assert walks.tick_now.is_set(), "the supervising loop is asked to write at once"
    with walks.run.lock:
        assert task.claimable and body.claim(task) is None
    run_jobs(walks)
    assert (body.staging / "sa_1.jpg").read_bytes() == b"abcdefghij"
    with walks.run.lock:
        assert body.claim(task) is not None


def test_no_request_starts_while_the_requests_in_flight_fill_the_budget(
    walks: Walks, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(walk_module, "HELD_BUDGET", BLOCK)
    first, first_body = shard(walks, 0)
    second, second_body = shard(walks, 1)
    with walks.run.lock:
        answer = first_body.claim(first)  # the first shard's first header: BLOCK bytes
        assert isinstance(answer, WalkAnswer)
        assert second.claimable and second_body.claim(second) is None
    answer.end(None)  # an answer without a byte: a failure, the bytes let go
    with walks.run.lock:
        assert second_body.claim(second) is not None


def test_a_stream_waits_until_the_disk_catches_up_or_the_run_stops(
    walks: Walks, behind: tuple[Task, WalkBody]
) -> None:
    _, body = behind
    walks.run.stopping = True
    with walks.run.lock:
        walks.wait_for_disk()  # the run stops: no waiting, nothing written yet
    assert not (body.staging / "sa_1.jpg").exists()
    walks.run.stopping = False
    writer = threading.Thread(target=run_jobs, args=(walks,))
    with walks.run.lock:
        writer.start()  # it writes once the wait lets go of the lock
        walks.wait_for_disk()  # until the bytes waiting are back within the budget
        assert (body.staging / "sa_1.jpg").read_bytes().startswith(b"abcde")
    writer.join()
