"""The disk worker: one file's jobs in order, files side by side, every error ends the run."""

from __future__ import annotations

import signal
import threading
import time
from types import FrameType

import pytest

from sa1b.engine.diskworker import DiskWorker
from sa1b.errors import SA1BError, StorageError
from tests.waiting import inside


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


def test_a_ctrl_c_during_close_still_waits_for_every_job() -> None:
    """The run's end closes the store right after: a job cut short would write to it
    closed (on Python 3.11 a Ctrl-C inside ``Thread.join`` even marks a running
    thread stopped)."""
    main = threading.get_ident()
    interrupted = threading.Event()
    done: list[str] = []

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        interrupted.set()
        raise KeyboardInterrupt

    def job() -> None:  # a store write still running when Ctrl-C lands in close()
        while not inside(main, "close"):
            time.sleep(0.001)
        signal.pthread_kill(main, signal.SIGINT)
        interrupted.wait()
        time.sleep(0.05)  # close() must wait this out, not return at the interrupt
        done.append("written")

    worker = DiskWorker(lambda error: None)
    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        worker.start()
        worker.submit("store", job)
        worker.close()
    finally:
        signal.signal(signal.SIGINT, previous)
    assert interrupted.is_set() and done == ["written"]
