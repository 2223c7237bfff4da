"""The scheduler: what connections and the transport ask of a run.

Each transport slot has a :class:`~sa1b.engine.slots.SlotJob`; a free one asks for a
job, and :func:`sa1b.jobchoice.choose_job` decides which (claim free bytes or a body's
next request, open the next item, or steal half of a range in flight), read over every
item for whole files and over the few that may have a request to make for walks
(:mod:`sa1b.engine.ready`). The scheduler carries the decision out, has every failed
request counted by its item's account of failures, and hands an item whose bytes are all
in to the publisher: the same for a whole file and for a body (:mod:`sa1b.engine.bodies`).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from sa1b.config import DownloadConfig
from sa1b.engine.bodies import Claim
from sa1b.engine.files import FileControl
from sa1b.engine.ready import ReadyItems
from sa1b.engine.run import Run
from sa1b.engine.slots import SlotJob, write_answer
from sa1b.engine.tasks import Task
from sa1b.errors import (
    ConnectError,
    LinkExpiredError,
    RetryableError,
    SA1BError,
    TransferError,
)
from sa1b.jobchoice import Job as Choice
from sa1b.jobchoice import choose_job, first_unfinished
from sa1b.lifecycle import next_state
from sa1b.net.answers import BodyPlan
from sa1b.net.curl import Request
from sa1b.progress import FINAL_STATES, FileState, waiting_note
from sa1b.retry import waiting_reason
from sa1b.segments import Segment
from sa1b.store.journal import Journal

log = logging.getLogger(__name__)

Job = tuple[Task, Segment | Claim | None]
NOTABLE_WAIT = 10.0
"""A server's Retry-After of this many seconds or more is said on the screen: the run
looks stalled meanwhile. Shorter ones are only logged."""


class Scheduler:
    """The :class:`~sa1b.engine.slots.JobSource` and the transport's
    :class:`~sa1b.net.curl.RequestSource` of one run."""

    def __init__(
        self,
        run: Run,
        files: FileControl,
        journal: Journal,
        *,
        slots: int,
        per_file: int,
        max_files: int,
        ready_queue: bool = False,
        abort: Callable[[SA1BError], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.run = run
        self.config: DownloadConfig = run.config
        self.files = files
        self.journal = journal
        self.per_file = per_file
        self.max_files = max_files
        self.abort = abort
        self.clock = clock
        self.jobs = [SlotJob(self, i, clock=clock) for i in range(slots)]
        self._unreachable: set[str] = set()
        self._unfinished = 0
        """Every task before this index is finished (see ``first_unfinished``)."""
        self.ready_items = ReadyItems(run.tasks) if ready_queue else None
        """A walking run's items that may have a request to make (None: every item is
        read for each request, as whole files and uploads are)."""

    # -- the transport's RequestSource -------------------------------------------

    def next_request(self, slot: int) -> Request | None:
        return self.jobs[slot].next_request()

    def park(self, slot: int) -> None:
        self.jobs[slot].release()

    @property
    def finished(self) -> bool:
        """No file needs a connection any more (each is done, failed, or ended)."""
        run = self.run
        with run.lock:
            return run.stopping or all(t.state in FINAL_STATES for t in run.tasks)

    # -- what connections ask ------------------------------------------------------

    @property
    def stopping(self) -> bool:
        return self.run.stopping

    def take_job(self) -> Job | None:
        """Work for a free connection, or None when there is none right now."""
        with self.run.lock:
            return self._carry_out_choice()

    def _carry_out_choice(self) -> Job | None:
        run = self.run
        while not run.stopping:
            job = self._choose()
            if job is None:
                return None
            task = run.tasks[job.index]
            if task.body is not None:  # a body is never stolen from: "open" or "claim"
                if job.kind == "open":
                    task.state = next_state(task.state, "begin")
                    if self.ready_items is not None:
                        self.ready_items.begun(task)
                    self.settle(task)  # found complete at start-up: published now
                    continue
                claim = task.body.claim(task)
                return _assign(task, claim) if claim is not None else None
            if job.kind == "open":
                if task.size is None:  # its first request asks for its size
                    task.state = next_state(task.state, "first-request")
                    return _assign(task, None)
                self.files.open(task)  # the disk worker opens it; connections claim it then
                continue
            assert task.plan is not None
            segment = task.plan.claim() if job.kind == "claim" else task.plan.steal()
            return _assign(task, segment) if segment is not None else None
        return None

    def _choose(self) -> Choice | None:
        now = self.clock()
        if self.ready_items is not None:
            ended = self.files.ended
            return self.ready_items.choose(
                now=now, per_file=self.per_file, max_files=self.max_files, ended=ended
            )
        self._unfinished = first_unfinished(self.run.tasks, self._unfinished)
        return choose_job(
            self.run.tasks,
            now=now,
            per_file=self.per_file,
            max_files=self.max_files,
            start=self._unfinished,
        )

    def should_leave(self, task: Task, segment: Segment) -> bool:
        return self.run.stopping or task.halted or segment.cancelled

    def ready(self, task: Task) -> bool:
        return task.fd is not None and not task.preparations

    def hold(self, task: Task) -> bool:
        with self.run.lock:
            if self.ready(task):
                return False
            task.holding += 1
            return True

    def unhold(self, task: Task) -> None:
        with self.run.lock:
            task.holding -= 1
            self.files.settle(task)

    def write_later(
        self, task: Task, segment: Segment, *, generation: int, offset: int, data: bytes
    ) -> None:
        self.files.disk.submit(
            task.id,
            lambda: self._write_held(
                task, segment, generation=generation, offset=offset, data=data
            ),
        )

    def _write_held(
        self, task: Task, segment: Segment, *, generation: int, offset: int, data: bytes
    ) -> None:
        """In the disk worker, after the file's allocation: what a connection held."""
        try:
            with task.writing:
                if segment.cancelled or task.generation != generation or task.fd is None:
                    return  # the file restarted or ended since: these bytes belong nowhere
                written = write_answer(task.fd, [data], offset, name=task.name)
            with self.run.lock:
                segment.pos = max(segment.pos, offset + written)
        finally:
            self.release(task, segment)
            self.unhold(task)

    def next_span(self, task: Task, segment: Segment, length: int) -> tuple[int, int] | None:
        with self.run.lock:
            assert task.plan is not None
            return task.plan.next_request(segment, length)

    def adopt(self, task: Task, answer: BodyPlan, segment: Segment | None) -> Segment | None:
        with self.run.lock:
            return self.files.adopt(task, answer, segment)

    def release(self, task: Task, segment: Segment | None) -> None:
        """A connection lets go of ``task``: what it fetched is done, the rest free."""
        with self.run.lock:
            task.connections -= 1
            if self.ready_items is not None:  # its next request may depend on this answer
                self.ready_items.offer(task)
            if segment is not None and task.plan is not None:
                if not segment.cancelled and segment.pos > segment.start:
                    end = min(segment.pos, segment.end)
                    self.journal.log(task.id, task.generation, segment.start, end)
                task.plan.release(segment)
            unsized = task.body is None and task.plan is None and task.state == "active"
            if unsized and not task.connections:  # its first request failed
                task.state = next_state(task.state, "first-request-failed")
            if task.halted and not task.connections:
                self.files.end(task)
            else:
                self.settle(task)

    def settle(self, task: Task) -> None:
        """An active item whose bytes are all in goes to the publisher (lock held)."""
        with self.run.lock:
            if task.state == "active" and task.complete:
                log.debug("%s: all %s bytes are in", task.name, task.size)
                task.state = next_state(task.state, "all-in")
                self.files.publisher.submit(task)

    def request_failed(self, task: Task, error: TransferError) -> None:
        """A request of ``task`` failed: its account of failures (:class:`~sa1b.retry.
        FailureAccount`) weighs the task's progress and says whether to back off or to
        give the item up."""
        error.name = error.name or task.name
        with self.run.lock:
            now = self.clock()
            progress = task.progress
            verdict = task.failures.failed(
                error, progress=progress, now=now, jitter=random.random()
            )
            if verdict.action == "same outage":
                log.debug("%s: %s (same outage)", task.name, error.message)
                return
            if verdict.action == "give up":
                log.info("%s: %s%s", task.name, error.message, verdict.note)  # the run reports it
                state: FileState = "expired" if isinstance(error, LinkExpiredError) else "failed"
                self.files.halt(task, state, error, note=verdict.note)
                return
            delay = verdict.delay
            task.waiting_for = waiting_reason(error, delay)
            asked = isinstance(error, RetryableError) and error.retry_after is not None
            if asked and delay >= NOTABLE_WAIT:  # a run that looks stalled says why
                until = time.time() + task.not_before - now
                log.warning("%s", waiting_note(task.name, task.waiting_for, until))
            else:
                log.info("%s: %s; retrying in %.1fs", task.name, error.message, delay)
            host = urlsplit(task.link.url).hostname or "?"
            if isinstance(error, ConnectError) and host not in self._unreachable:
                self._unreachable.add(host)  # once per host: a user staring at 0% learns why
                log.warning("cannot connect to %s (%s); retrying. %s", host, error, error.hint)


def _assign(task: Task, segment: Segment | Claim | None) -> Job:
    task.connections += 1
    return task, segment
