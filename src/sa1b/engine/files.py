"""Every change to a file during a run, made under the run's lock: its size and plan,
its restarts, its halt and end, and the publisher's verdicts on it.

A file moves through :mod:`sa1b.lifecycle`'s table. Its bytes are void whenever its
generation moves on (a new version on the server, a corrupt archive, a checksum
mismatch): :meth:`FileControl.void` cancels its segments under the file's write lock,
so that no write of the old bytes is between its ownership check and its ``pwrite``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from sa1b.engine.diskworker import DiskWorker
from sa1b.engine.durability import close_file
from sa1b.engine.publisher import Publisher
from sa1b.engine.run import Run
from sa1b.engine.tasks import Task
from sa1b.errors import (
    CorruptArchiveError,
    ExtractionError,
    LinkExpiredError,
    SA1BError,
    StorageError,
    UnsafeMemberError,
    expired_link_hint,
    unsafe_member_hint,
)
from sa1b.extract.extractors import Extractors, Superseded
from sa1b.holes import hole_end
from sa1b.lifecycle import next_state
from sa1b.net.answers import BodyPlan
from sa1b.progress import FileOutcome, FileState, ProgressListener
from sa1b.ranges import RangeSet
from sa1b.records import Status
from sa1b.segments import Segment, SegmentPlan
from sa1b.store.allocation import preallocate, punch_hole
from sa1b.store.resume import PackedResume, load_resume, save_resume
from sa1b.versions import Validator

log = logging.getLogger(__name__)

PREFIX_POLL = 0.02
"""Seconds an extractor waits before looking again at how far its download got."""


class FileControl:
    """Changes files' state; the publisher's :class:`~sa1b.engine.publisher.TaskControl`."""

    def __init__(
        self,
        run: Run,
        *,
        extractors: Extractors | None,
        listener: ProgressListener,
        abort: Callable[[SA1BError], None],
    ) -> None:
        self.run = run
        self.extractors = extractors
        self.listener = listener
        self.abort = abort
        self.publisher = Publisher(run.config, run.store, self, extractors=extractors)
        self.disk = DiskWorker(abort)
        self.wake: Callable[[], None] = lambda: None
        """Wakes the transport (set once it exists): a file ended, or needs work again."""
        self.ended = 0
        """Files that ended in this run (done, failed or expired): a walking run's
        scheduler counts the items in flight again when this moves."""

    # -- a file's size, plan and extraction (lock held) ----------------------------

    def open(self, task: Task) -> None:
        """Start a pending file of known size: it is ``opening`` (no connection takes
        it) while the disk worker opens, sizes and allocates its partial file. A small
        one stays on one connection, as it would after a first request (see
        ``DownloadConfig.min_steal``), and can come in one request instead of two."""
        assert task.size is not None
        task.state = next_state(task.state, "open")
        config = self.run.config
        small = task.size < config.first_request + 2 * config.min_steal
        self.activate(task, task.size, task.validator, single_stream=small)

    def activate(self, task: Task, size: int, validator: Validator, *, single_stream: bool) -> None:
        """Give a file its size and plan now; it is ``opening`` (no other connection
        claims it) until the disk worker has sized and allocated its partial file."""
        task.state = next_state(task.state, "sized")
        identity = validator if task.size is None else None  # a first answer, or a restart
        task.size, task.validator, task.single_stream = size, validator, single_stream
        min_steal = size + 1 if single_stream else self.run.config.min_steal
        task.plan = SegmentPlan(size, task.recorded, min_steal=min_steal)
        self._prepare(task, size=size, identity=identity)

    def _prepare(
        self,
        task: Task,
        *,
        size: int,
        identity: Validator | None = None,
        from_final: bool = False,
    ) -> None:
        """Hand the file's blocking work to the disk worker; it stays ``opening`` until
        every piece of that work handed over so far is done."""
        task.preparations += 1
        generation = task.generation
        self.disk.submit(
            task.id,
            lambda: self._open_on_disk(
                task, generation, size=size, identity=identity, from_final=from_final
            ),
        )

    def _open_on_disk(
        self,
        task: Task,
        generation: int,
        *,
        size: int,
        identity: Validator | None,
        from_final: bool,
    ) -> None:
        """In the disk worker: the partial file opened, sized and allocated, its identity
        recorded, its extraction started; then it is ``active`` again."""
        run = self.run
        if from_final:  # the whole file is on disk under its final name, unrecorded
            final = run.config.paths.final(task.name)
            try:
                os.replace(final, run.config.paths.partial(task.name))
            except OSError as error:
                message = f"{final}: cannot move it to verify it: {error.strerror}"
                raise StorageError(message) from error
        self._size_partial(task, size, reopen=from_final)
        if identity is not None:
            run.store.set_identity(task.id, size, identity)
        if from_final:
            run.store.save_ranges({task.id: (generation, RangeSet([(0, size)]))})
        self._start_extraction(task, generation, size)
        with run.lock:
            task.preparations -= 1
            self.settle(task)

    def settle(self, task: Task) -> None:
        """An ``opening`` file whose disk work is done and whose held bytes are written
        is ``active`` again (lock held)."""
        if task.preparations or task.holding or task.state != "opening" or self.run.stopping:
            return
        task.state = next_state(task.state, "opened")
        if task.halted and not task.connections:
            self.end(task)
        elif not task.halted and task.plan is not None and task.plan.complete:
            task.state = next_state(task.state, "all-in")  # its bytes were all on disk
            self.publisher.submit(task)
        self.wake()

    def _size_partial(self, task: Task, size: int, *, reopen: bool) -> None:
        """Open the file's partial file (again, if ``reopen``: the final name replaced
        it), and give it ``size`` bytes of blocks if it has another size."""
        run = self.run
        path = run.config.paths.partial(task.name)
        with run.lock:  # a descriptor of its own: the task's may close meanwhile
            own = None if reopen or task.fd is None else os.dup(task.fd)
        fd = own if own is not None else os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if os.fstat(fd).st_size != size:
                os.ftruncate(fd, size)
                preallocate(fd, size)
        except OSError as error:
            os.close(fd)
            message = f"{path}: cannot preallocate {size} bytes: {error.strerror}"
            raise StorageError(message) from error
        if own is not None:
            os.close(own)
            return
        with run.lock:
            close_file(task)  # none (a first open), or the one the final name replaced
            task.fd = fd

    def _start_extraction(self, task: Task, generation: int, size: int) -> None:
        """A shard's extraction follows its download (a thread started here, not by
        the transport), unless the file has moved on meanwhile."""
        run = self.run
        with run.lock:
            moved_on = task.generation != generation or task.halted
        if moved_on or self.extractors is None or not run.extracts(task):
            return
        expected, frees = run.config.checksums.get(task.name), run.frees(task)
        resume = load_resume(run.store, task.id, generation) if frees else None
        on_checkpoint = self._checkpointer(task, generation) if frees else None
        if on_checkpoint is not None and resume is not None:
            try:  # a crash may have come between its save and its hole
                self._free_below(task, generation, hole_end(resume.next))
            except Superseded:
                return
        self.extractors.start(
            task.name,
            generation=generation,
            path=run.config.paths.partial(task.name),
            size=size,
            wait=self._prefix_waiter(task, generation),
            digest_algorithm=expected.algorithm if expected else None,
            on_error=lambda error: self._extraction_failed(task, generation, error),
            resume=resume,
            on_checkpoint=on_checkpoint,
        )

    def _checkpointer(self, task: Task, generation: int) -> Callable[[PackedResume], None]:
        """``on_checkpoint`` for the extractor: save the checkpoint, then free the tar
        below it."""
        run = self.run

        def save(checkpoint: PackedResume) -> None:
            with run.lock:
                if task.generation != generation:
                    raise Superseded
            try:
                save_resume(run.store, task.id, generation, checkpoint)
            except StorageError as error:  # a full disk under the store ends the run
                self.abort(error)
                raise Superseded from None
            self._free_below(task, generation, hole_end(checkpoint.next))

        return save

    def _free_below(self, task: Task, generation: int, end: int) -> None:
        """Punch a hole in ``[0, end)`` of the file, under its write lock: no byte of a
        newer generation can be there. Where the filesystem cannot, the tar keeps its
        blocks (a warning for another error)."""
        with task.writing:
            if task.generation != generation or task.fd is None:
                raise Superseded
            if end <= 0 or task.cannot_punch:
                return
            try:
                task.cannot_punch = not punch_hole(task.fd, 0, end)
            except OSError as error:
                log.warning("%s: cannot free its tar behind extraction: %s", task.name, error)
                task.cannot_punch = True

    def _prefix_waiter(self, task: Task, generation: int) -> Callable[[int], None]:
        """``wait(end)`` for the extractor: returns once ``[0, end)`` is written."""
        run, known = self.run, 0

        def wait(end: int) -> None:
            nonlocal known
            while end > known:
                with run.lock:
                    if task.generation != generation or task.halted or run.stopping:
                        raise Superseded
                    if task.plan is not None:
                        known = task.plan.prefix()
                if end > known:
                    run.stopped.wait(PREFIX_POLL)

        return wait

    def _extraction_failed(self, task: Task, generation: int, error: ExtractionError) -> None:
        """An unsafe or corrupt shard: stop fetching it now (the publisher reports it)."""
        with self.run.lock:
            if task.generation != generation or task.state not in ("opening", "active"):
                return
            if isinstance(error, CorruptArchiveError):
                self.void(task)
            self.halt(task, "failed", error)
            if not task.connections:
                self.end(task)

    # -- answers that change a file (lock held) --------------------------------------

    def adopt(self, task: Task, answer: BodyPlan, segment: Segment | None) -> Segment | None:
        """Where the body of ``answer`` goes: ``segment`` itself; a new segment of the
        whole file (a first answer, or a server that ignored the range); or nowhere
        (None: the file changed and starts over, or its bytes were on disk already, or
        are all in: an answer to a request sent before another stream completed it)."""
        if task.state not in ("opening", "active") or task.halted:
            return None
        if answer.kind == "changed":
            unstable = task.failures.changed(task.name)
            if unstable is not None:
                self.halt(task, "failed", unstable)
                return None
            self.restart(task, answer.total, answer.validator)
            return None
        if task.unrecorded_final is not None:
            found, task.unrecorded_final = task.unrecorded_final, None
            if found == answer.total:
                self._adopt_final(task, answer)
                return None
        if answer.kind == "range" and segment is not None:
            return segment
        whole = answer.kind == "whole"
        if whole:
            log.warning("%s: server ignored Range; fetching it as one stream", task.name)
            # The stream starts at byte 0 and rewrites what is on disk with the same
            # bytes (same version): the plan starts empty, so byte 0 is free to take.
            task.recorded = RangeSet()
        if task.plan is not None:
            with task.writing:
                task.plan.restart()
        self.activate(task, answer.total, answer.validator, single_stream=whole)
        assert task.plan is not None
        adopted = task.plan.adopt(0)
        adopted.requested = answer.start + answer.length
        return adopted

    def _adopt_final(self, task: Task, answer: BodyPlan) -> None:
        """Take the unrecorded file under the final name as this file's bytes: it goes
        through verification (size, checksum, extraction) as if just fetched."""
        log.info("%s: the file on disk has the server's size; verifying it", task.name)
        task.state = next_state(task.state, "sized")
        task.recorded = RangeSet([(0, answer.total)])
        task.size, task.validator = answer.total, answer.validator
        task.plan = SegmentPlan(answer.total, task.recorded, min_steal=self.run.config.min_steal)
        self._prepare(task, size=answer.total, identity=answer.validator, from_final=True)

    def restart(
        self,
        task: Task,
        size: int,
        validator: Validator,
        *,
        reason: str = "the file changed on the server",
    ) -> None:
        """Void the file's bytes and start over."""
        log.warning("%s: %s; starting it over", task.name, reason)
        self.void(task)
        task.size, task.single_stream = None, False
        self.activate(task, size, validator, single_stream=False)

    def void(self, task: Task) -> None:
        """Make every byte of the file void: in this run at once (a new generation, its
        segments cancelled: no write of the old bytes is between its check and its
        ``pwrite`` once this returns), and in the store by the disk worker (the store
        counts generations the same way)."""
        with task.writing:
            if task.plan is not None:
                task.plan.restart()
            task.generation += 1
        task.recorded = RangeSet()
        file_id, store = task.id, self.run.store

        def record() -> None:
            store.restart(file_id)

        self.disk.submit(file_id, record)

    # -- the end of a file in this run (lock held) ------------------------------------

    def halt(self, task: Task, state: FileState, error: SA1BError, *, note: str = "") -> None:
        """Stop a file for this run, keeping its bytes; it ends once no connection holds it."""
        if task.halted:
            return
        task.halted = True
        message = f"{error.message}{note}"
        hint, config = error.hint, self.run.config
        if isinstance(error, LinkExpiredError) and config.upload is not None:
            hint = expired_link_hint(bucket=True)  # its upload's parts are what is kept
        elif isinstance(error, UnsafeMemberError) and config.upload is not None:
            hint = unsafe_member_hint(
                kept="its upload was aborted: nothing of it is kept in the bucket"
            )
        elif isinstance(error, UnsafeMemberError) and config.extract and config.extract.only:
            hint = unsafe_member_hint(kept="none of its members was published")
        task.outcome = FileOutcome(task.name, state, task.size, message, hint)

    def end(self, task: Task) -> None:
        """A halted file that no connection holds any more: record and report it."""
        assert task.outcome is not None
        task.state = next_state(task.state, "expire" if task.outcome.state == "expired" else "fail")
        self.ended += 1
        stored: Status = "expired" if task.state == "expired" else "failed"
        file_id, message, store, body = task.id, task.outcome.message, self.run.store, task.body
        if body is not None:
            self.disk.submit(file_id, lambda: body.record_status(task, stored, message))
        else:
            self.disk.submit(file_id, lambda: store.set_status(file_id, stored, message))
        self.listener.finished(task.outcome)
        self.wake()

    # -- the publisher's verdicts (TaskControl) ---------------------------------------

    def reject(self, task: Task, error: SA1BError) -> None:
        """The file ends ``failed``: now, or when the last connection still holding it
        lets go (all its bytes are in, but a connection may not have given its job back
        yet: it ends the file then, as after any halt)."""
        with self.run.lock:
            if isinstance(error, CorruptArchiveError):
                self.void(task)
            self.halt(task, "failed", error)
            if not task.connections:
                self.end(task)

    def redownload(self, task: Task, reason: str) -> None:
        with self.run.lock:
            task.state = next_state(task.state, "redownload")
            self.restart(task, task.size or 0, task.validator, reason=reason)
        self.wake()

    def done(self, task: Task, message: str | None) -> None:
        with self.run.lock:
            task.state = next_state(task.state, "published")
            self.ended += 1
            task.outcome = FileOutcome(task.name, "done", task.size, message)
            close_file(task)
        log.info("%s: done (%s bytes)%s", task.name, task.size, f", {message}" if message else "")
        self.listener.finished(task.outcome)
        self.wake()  # the last file done ends the run now, not at the next tick
