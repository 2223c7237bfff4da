"""The memory budget of an upload run, as the scheduler meets it: a part takes its length
when it is claimed, a claim waits while the budget is spent, and a part gives its memory
back once uploaded (sa1b.engine.upload, with the uploaders replaced by a list)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sa1b.config import DownloadConfig, UploadOptions
from sa1b.engine.run import Run
from sa1b.engine.tasks import Task
from sa1b.engine.upload import PartAnswer, UploadBody, Uploads
from sa1b.errors import BucketError, SA1BError, StoreUnavailableError
from sa1b.links import Link
from sa1b.objectstore.location import BucketLocation
from sa1b.objectstore.parts import PartPlan
from sa1b.retry import RetryPolicy
from sa1b.store.state import StateStore

MiB = 1024 * 1024
PART = 5 * MiB


@pytest.fixture
def sent() -> list[bytearray]:
    """The parts handed to the uploaders."""
    return []


@pytest.fixture
def uploads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sent: list[bytearray]
) -> Iterator[Uploads]:
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    options = UploadOptions(location=BucketLocation("b", "p"), part_size=PART, memory=2 * PART)
    config = DownloadConfig(
        out=tmp_path,
        state_dir=tmp_path,
        extract=None,
        upload=options,
        retry=RetryPolicy(attempts=4, backoff=0.01, backoff_max=0.01),
    )
    with StateStore(tmp_path, state=tmp_path) as store:
        made = Uploads(Run(config, store), abort=lambda error: None)
        monkeypatch.setattr(made, "send", lambda task, body, n, buffer: sent.append(buffer))
        yield made
        made.close()


def shard(uploads: Uploads, name: str) -> tuple[Task, UploadBody]:
    link = Link(name, f"https://cdn.example/{name}")
    task = Task(link=link, id=1, generation=0, failures=uploads.config.failure_account())
    body = UploadBody(uploads, f"tars/{name}")
    body.resume(task, "up", PartPlan(4 * PART, PART), {})
    task.body = body
    return task, body


def arrive(answer: PartAnswer, count: int) -> None:
    assert answer.buffer is not None
    answer.got += count


def test_claims_wait_while_the_budget_is_spent_and_go_once_a_part_is_uploaded(
    uploads: Uploads, sent: list[bytearray]
) -> None:
    task_a, a = shard(uploads, "sa_000000.tar")
    _, b = shard(uploads, "sa_000001.tar")
    first, second = a.claim(task_a), a.claim(task_a)
    assert first is not None and second is not None
    assert (first.number, second.number) == (1, 2)  # the lowest parts first
    assert uploads.budget.held == 2 * PART
    assert not a.claimable and not b.claimable  # spent: no new part is claimed
    # A request cut half-way keeps its bytes and its memory: the rest is asked for later.
    arrive(first, 2 * MiB)
    a.answered(task_a, first)
    assert a.claimable and not b.claimable
    again = a.claim(task_a)
    assert again is not None and (again.number, again.start, again.stop) == (1, 2 * MiB, PART)
    arrive(again, 3 * MiB)
    a.answered(task_a, again)
    assert [len(buffer) for buffer in sent] == [PART]
    assert not b.claimable  # still held: being uploaded
    uploads.give(sent.pop())
    assert uploads.budget.held == PART
    assert b.claimable and a.claimable
    assert uploads.tick_now.is_set()  # the transport is woken for the claims waiting


def test_a_shard_that_ends_gives_back_the_memory_of_its_incomplete_parts(
    uploads: Uploads,
) -> None:
    task, body = shard(uploads, "sa_000000.tar")
    answer = body.claim(task)
    assert answer is not None
    arrive(answer, MiB)
    body.answered(task, answer)
    assert uploads.budget.held == PART
    body.record_status(task, "expired", "the link expired")
    assert uploads.budget.held == 0


def failing(errors: list[SA1BError]) -> Callable[[], str]:
    """A store call that raises ``errors`` in turn, then answers."""

    def call() -> str:
        if errors:
            raise errors.pop(0)
        return "answered"

    return call


def busy() -> StoreUnavailableError:
    return StoreUnavailableError("s3://b/p/k: the store answered 503 SlowDown", status=503)


def test_a_busy_store_is_asked_again_by_the_run_s_policy(uploads: Uploads) -> None:
    errors: list[SA1BError] = [busy(), busy(), busy()]
    assert uploads._call(failing(errors)) == "answered"
    assert errors == []


def test_a_store_busy_past_the_policy_raises_its_last_failure(uploads: Uploads) -> None:
    with pytest.raises(StoreUnavailableError):
        uploads._call(failing([busy(), busy(), busy(), busy()]))


def test_a_store_that_refuses_for_good_is_not_asked_again(uploads: Uploads) -> None:
    errors: list[SA1BError] = [BucketError("s3://b: access denied", bucket="b"), busy()]
    with pytest.raises(BucketError):
        uploads._call(failing(errors))
    assert len(errors) == 1


def test_a_run_that_stops_stops_waiting_for_a_busy_store(uploads: Uploads) -> None:
    uploads.run.stop()
    errors: list[SA1BError] = [busy(), busy()]
    with pytest.raises(StoreUnavailableError):
        uploads._call(failing(errors))
    assert len(errors) == 1
