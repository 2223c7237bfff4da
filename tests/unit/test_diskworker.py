"""The disk worker: one file's jobs in order, files side by side, every error ends the run."""

from __future__ import annotations

import threading

import pytest

from sa1b.engine.diskworker import DiskWorker
from sa1b.errors import SA1BError, StorageError


def test_a_keys_jobs_run_in_order_while_another_key_is_held_up() -> None:
    errors: list[SA1BError] = []
    worker = DiskWorker(errors.append, threads=2)
    blocked, done, released = threading.Event(), [], []
    worker.start()
    worker.submit("slow", lambda: released.append(blocked.wait(60)))  # a slow allocation
    for k in range(20):
        worker.submit("fast", lambda k=k: done.append(k))
    worker.submit("fast", blocked.set)  # runs only if "fast" is not stuck behind "slow"
    worker.close()  # waits for every job, those of "slow" included
    assert done == list(range(20))
    assert released == [True]  # let go by a later job of another key
    assert errors == []


def test_close_runs_what_jobs_submit() -> None:
    worker, ran = DiskWorker(lambda error: None), []
    worker.start()
    worker.submit(1, lambda: worker.submit(1, lambda: ran.append("after")))
    worker.close()
    assert ran == ["after"]


@pytest.mark.parametrize(
    ("raised", "message"),
    [
        (StorageError("out: the disk is full"), "out: the disk is full"),
        (OSError(28, "No space left on device"), "No space left on device"),
        (KeyError("a bug"), "internal error"),
    ],
    ids=["sa1b-error", "os-error", "bug"],
)
def test_an_error_ends_the_run(raised: Exception, message: str) -> None:
    errors: list[SA1BError] = []
    worker = DiskWorker(errors.append)
    worker.start()

    def fail() -> None:
        raise raised

    worker.submit("file", fail)
    worker.close()
    assert len(errors) == 1 and isinstance(errors[0], SA1BError)
    assert message in errors[0].message
