"""The download engine: connections that fetch ranges into preallocated partial files.

The transport (:class:`~sa1b.transport.pool.Transport`: an event loop over libcurl,
or several) runs in a thread of its own; each of its slots asks its
:class:`~sa1b.connection.Connection` for work, and the connection asks this engine,
which decides: a free range of a file in flight, else the first request of the
next file, else half of the largest range still outstanding anywhere (work
stealing). Bytes go straight to their offsets with ``pwrite``; each connection also
notes its position in the crash :class:`~sa1b.journal.Journal`. The calling thread
supervises: it reports progress, and about once a second makes written bytes
durable (``fdatasync``) and only then records them in the
:class:`~sa1b.state.StateStore`. Shards are extracted while they download
(:mod:`sa1b.unpacker`, following each file's written prefix), and the
:class:`~sa1b.publishing.Publisher` verifies complete files and publishes them; the
engine owns every task's state and hears its verdict.
"""

from __future__ import annotations

import errno
import logging
import os
import random
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

from sa1b.config import DownloadConfig
from sa1b.connection import Connection
from sa1b.errors import (
    ConnectError,
    CorruptArchiveError,
    ExtractionError,
    FatalTransferError,
    LinkExpiredError,
    SA1BError,
    StorageError,
    TransferError,
    UnstableSourceError,
)
from sa1b.journal import Journal, Span, fold
from sa1b.layout import shard_folders
from sa1b.lifecycle import next_state
from sa1b.links import Link, object_key
from sa1b.progress import (
    FINAL_STATES,
    FileOutcome,
    FileProgress,
    FileState,
    ProgressListener,
    Snapshot,
)
from sa1b.publishing import Publisher, dispose_tar
from sa1b.ranges import RangeSet
from sa1b.reconcile import DiskFacts, reconcile
from sa1b.responses import BodyPlan, Validator
from sa1b.scheduling import choose_job
from sa1b.segments import Segment, SegmentPlan
from sa1b.sizes import NOMINAL_SHARD_SIZE
from sa1b.state import StateStore, Status, state_dir
from sa1b.tasks import Task, final_path, partial_path
from sa1b.transport.curl import Request
from sa1b.transport.governor import Governor
from sa1b.transport.pool import Transport
from sa1b.transport.ratelimit import RateLimiter
from sa1b.unpacker import Superseded, Unpacker
from sa1b.writeback import start_writeback

log = logging.getLogger(__name__)

MAX_CHANGES = 3
"""Restarts of one file because its version changed, before the run gives it up: a
real replacement happens once; origins out of step flap for ever."""
PREFIX_POLL = 0.02
"""Seconds an extractor waits before looking again at how far its download got."""


class Engine:
    """Downloads ``links`` into ``config.out``; :meth:`run` blocks until all have ended."""

    def __init__(
        self,
        links: Sequence[Link],
        config: DownloadConfig,
        store: StateStore,
        *,
        listener: ProgressListener,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.store = store
        self.listener = listener
        self._clock = clock
        self._lock = threading.RLock()
        self._stopping = False
        self._fatal: SA1BError | None = None
        self._stopped = threading.Event()
        self._unreachable: set[str] = set()
        policy = config.connection_policy()
        slots = policy.ceiling
        self._per_file = config.connections_per_file or slots
        self._connections = [Connection(self, i, clock=clock) for i in range(slots)]
        self._unpacker = (
            Unpacker(staging_root=state_dir(config.out) / "staging", layout=config.extract.layout)
            if config.extract
            else None
        )
        self._publisher = Publisher(config, store, self, unpacker=self._unpacker)
        partial_path(config.out, "x").parent.mkdir(parents=True, exist_ok=True)
        journal_path = state_dir(config.out) / "journal"
        recovered = Journal.recover(journal_path)
        self._tasks = [self._prepare(link) for link in links]
        self._recover(recovered)
        self.journal = Journal(journal_path, slots=slots)
        # Last: it holds sockets and descriptors that only its run() releases.
        self.transport = Transport(
            config.transport,
            self,
            slots=slots,
            governor=Governor(policy, clock()),
            limiter=RateLimiter(config.max_rate, now=clock()) if config.max_rate else None,
            loops=config.loops,
            clock=clock,
        )

    # -- start-up -----------------------------------------------------------

    def _prepare(self, link: Link) -> Task:
        """Match a link with what the store and the disk say about its file: gather the
        facts, let :func:`reconcile` decide, carry the decision out."""
        record = self.store.register(link.name, object_key(link.url))
        task = Task(link=link, id=record.id, generation=record.generation)
        final = final_path(self.config.out, link.name)
        partial = partial_path(self.config.out, link.name)
        extracted = record.extracted
        disk = DiskFacts(
            final_size=final.stat().st_size if final.exists() else None,
            partial_size=partial.stat().st_size if partial.exists() else None,
            extraction_present=all(
                (self.config.out / folder).is_dir()
                for folder in (shard_folders(link.name, extracted) if extracted else ())
            ),
        )
        expired = link.expires_at is not None and link.expires_at <= time.time()
        layout = self.config.extract.layout if self.config.extract else None
        action = reconcile(
            record, disk, extracts=self._extracts(task), layout=layout, expired=expired
        )
        if action.warning:
            log.warning("%s: %s", link.name, action.warning)
        if action.restart:
            task.generation = self.store.restart(record.id)
        size = None if action.restart else record.size
        if action.start == "extracted":
            if action.dispose_partial:  # a crash between record and clean-up
                dispose_tar(self.config, task.name)
            task.state, task.size = next_state(task.state, "found-done"), size
            task.outcome = FileOutcome(link.name, "done", size, "already extracted")
        elif action.start == "extract-kept-tar":
            os.replace(final, partial)
            self.store.set_status(record.id, "partial")
            task.size, task.validator = size, record.validator
            task.recorded = RangeSet([(0, disk.final_size or 0)])
        elif action.start == "on-disk":
            if action.mark_done:
                self.store.set_status(record.id, "done")
            task.state, task.size = next_state(task.state, "found-done"), size
            task.outcome = FileOutcome(link.name, "done", size, "already on disk")
        elif action.start == "resume":
            task.size, task.validator, task.recorded = size, record.validator, record.ranges
        elif action.start == "expired":
            # No request can succeed: say so now, keep every byte for a fresh links file.
            error = LinkExpiredError("the signed link expired before this run", name=link.name)
            self.store.set_status(record.id, "expired", error.message)
            task.state, task.halted, task.size = next_state(task.state, "found-expired"), True, size
            task.outcome = FileOutcome(link.name, "expired", size, error.message, error.hint)
        else:
            task.unrecorded_final = action.adopt_final
        return task

    def _extracts(self, task: Task) -> bool:
        """Shards (``sa_NNNNNN.tar``) are extracted unless told not to; extras never."""
        return self._unpacker is not None and task.link.shard_id is not None

    def _recover(self, spans: Sequence[Span]) -> None:
        """Fold in what a killed run wrote after its last durable record."""
        touched: dict[int, Task] = {}
        for task in self._tasks:
            if task.size is None or task.state in FINAL_STATES:
                continue
            folded = fold(
                task.recorded, spans, file_id=task.id, generation=task.generation, size=task.size
            )
            if folded != task.recorded:
                task.recorded = folded
                touched[task.id] = task
        if not touched:
            return
        for task in touched.values():
            fd = os.open(partial_path(self.config.out, task.name), os.O_RDWR)
            try:
                os.fdatasync(fd)
            finally:
                os.close(fd)
        self.store.save_ranges({t.id: (t.generation, t.recorded) for t in touched.values()})
        log.info("recovered unrecorded progress of %d file(s) from the journal", len(touched))

    # -- the run ------------------------------------------------------------

    def run(self) -> list[FileOutcome]:
        """Download everything; returns each file's outcome. Re-raises KeyboardInterrupt."""
        transport = threading.Thread(target=self._transport, name="sa1b-transport", daemon=True)
        started = self._clock()
        for outcome in (t.outcome for t in self._tasks if t.outcome):
            self.listener.finished(outcome)
        self._publisher.start()
        transport.start()
        last_commit = last_transient_commit = started
        warned_expiry = False
        history: list[tuple[float, int]] = [(started, 0)]
        try:
            while transport.is_alive() or not self._publisher.idle:
                transport.join(self.config.tick_interval)
                now = self._clock()
                if now - last_transient_commit >= self.config.transient_commit_interval:
                    self._commit()
                    last_commit = last_transient_commit = now
                elif now - last_commit >= self.config.commit_interval:
                    self._commit(transient=False)
                    last_commit = now
                else:
                    self._start_writeback()
                history = [*history[-40:], (now, self.fetched)]
                snapshot = self._snapshot(now - started, history)
                self.listener.update(snapshot)
                if not warned_expiry and now - started >= self.config.expiry_check_after:
                    warned_expiry = True
                    self._warn_if_links_expire_first(snapshot)
                if self._fatal:
                    self._stop()
        except KeyboardInterrupt:
            self._stop()
            raise
        finally:
            self._stop()
            transport.join()
            self._publisher.close()
            if self._unpacker is not None:
                self._unpacker.join()
                for task in self._tasks:  # what a failed or interrupted shard left half-made
                    shutil.rmtree(self._unpacker.staging(task.name), ignore_errors=True)
            self._commit()
            self._close_files()
            self.journal.close()
            now = self._clock()
            self.listener.update(self._snapshot(now - started, [*history, (now, self.fetched)]))
        if self._fatal:
            raise self._fatal
        return [task.outcome or self._unfinished(task) for task in self._tasks]

    @property
    def fetched(self) -> int:
        """Bytes received in this run (all files, all connections)."""
        return self.transport.received

    def cancel(self) -> None:
        """Stop soon, from any thread: connections finish their current read and leave."""
        self._stop()

    def _stop(self) -> None:
        with self._lock:
            self._stopping = True
            self._stopped.set()
        self.transport.stop()  # every request ends within a tick, however slow its server

    def _transport(self) -> None:
        """The transport thread: its loop runs until every file has ended, or a stop."""
        try:
            self.transport.run()
        except Exception as error:  # a bug: end the run loudly rather than hang it
            log.exception("internal error in the transport")
            self.abort(StorageError(f"internal error in the transport: {error!r}"))

    def _warn_if_links_expire_first(self, snapshot: Snapshot) -> None:
        """Once the speed is known: say so if the run will likely outlive its links."""
        with self._lock:
            stamps = [
                stamp
                for task in self._tasks
                if task.state not in FINAL_STATES and (stamp := task.link.expires_at) is not None
            ]
        if not stamps or snapshot.speed <= 0:
            return
        remaining = snapshot.total_bytes(guess=NOMINAL_SHARD_SIZE) - snapshot.done_bytes
        needed = remaining / snapshot.speed
        left = min(stamps) - time.time()
        if needed > left:
            log.warning(
                "at %.0f MB/s the remaining %.1f GB need about %.1f h, but links start to "
                "expire in %.1f h: when they do, fetch a fresh links file and run the same "
                "command with it (the bytes on disk are kept)",
                snapshot.speed / 1e6,
                remaining / 1e9,
                needed / 3600,
                left / 3600,
            )

    def _unfinished(self, task: Task) -> FileOutcome:
        done = task.plan.done_bytes() if task.plan else task.recorded.total
        return FileOutcome(task.name, "failed", task.size, f"interrupted at {done} bytes")

    def _snapshot(self, elapsed: float, history: list[tuple[float, int]]) -> Snapshot:
        window = [h for h in history if h[0] >= history[-1][0] - 5.0] or history
        span = window[-1][0] - window[0][0]
        speed = (window[-1][1] - window[0][1]) / span if span > 0 else 0.0
        with self._lock:
            files = tuple(
                FileProgress(
                    name=t.name,
                    state=t.state,
                    size=t.size,
                    done=(
                        t.size or 0
                        if t.state == "done"
                        else t.plan.done_bytes()
                        if t.plan
                        else t.recorded.total
                    ),
                    connections=t.connections,
                )
                for t in self._tasks
            )
        return Snapshot(
            files=files,
            fetched=self.fetched,
            elapsed=elapsed,
            speed=speed,
            connections=self.transport.busy,
        )

    # -- scheduling ---------------------------------------------------------

    def take_job(self) -> tuple[Task, Segment | None] | None:
        """Work for a free connection, or None when there is none right now: a free
        range of a file in flight, the first request of a file to open, or a range
        to steal. A full disk (preallocation fails) ends the run."""
        try:
            with self._lock:
                return self._choose_job()
        except StorageError as error:
            self.abort(error)
            return None

    def _choose_job(self) -> tuple[Task, Segment | None] | None:
        """Carry out :func:`choose_job` (lock held)."""
        while not self._stopping:
            job = choose_job(
                self._tasks,
                now=self._clock(),
                per_file=self._per_file,
                max_files=self.config.max_files,
            )
            if job is None:
                return None
            task = self._tasks[job.index]
            if job.kind == "open":
                opened = self._open(task)
                if opened is None:  # every byte was on disk, or nothing free: choose again
                    continue
                return opened
            assert task.plan is not None
            segment = task.plan.claim() if job.kind == "claim" else task.plan.steal()
            return self._assign(task, segment) if segment is not None else None
        return None

    def _assign(self, task: Task, segment: Segment | None) -> tuple[Task, Segment | None]:
        task.connections += 1
        return task, segment

    def _open(self, task: Task) -> tuple[Task, Segment | None] | None:
        """Start a file: from the store's record if it has one, else by a first request."""
        task.state = next_state(task.state, "open")
        if task.size is None:
            return self._assign(task, None)
        self._activate(task, task.size, task.validator, single_stream=False)
        assert task.plan is not None
        if task.plan.complete:  # every byte was on disk already: verify and publish
            task.state = next_state(task.state, "all-in")
            self._publisher.submit(task)
            return None
        segment = task.plan.claim()
        return self._assign(task, segment) if segment else None

    def _activate(
        self, task: Task, size: int, validator: Validator, *, single_stream: bool
    ) -> None:
        """Give a file its size, partial file and plan (called with the lock held)."""
        path = partial_path(self.config.out, task.name)
        if task.fd is None:
            task.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if os.fstat(task.fd).st_size != size:
                os.ftruncate(task.fd, size)
                if size:
                    _preallocate(task.fd, size)
        except OSError as error:
            message = f"{path}: cannot preallocate {size} bytes: {error.strerror}"
            raise StorageError(message) from error
        if task.size is None:
            self.store.set_identity(task.id, size, validator)
        task.size, task.validator, task.single_stream = size, validator, single_stream
        min_steal = size + 1 if single_stream else self.config.min_steal
        task.plan = SegmentPlan(size, task.recorded, min_steal=min_steal)
        if self._unpacker is not None and self._extracts(task):
            expected = self.config.checksums.get(task.name)
            generation = task.generation
            self._unpacker.start(
                task.name,
                generation=generation,
                path=path,
                size=size,
                wait=self._prefix_waiter(task, generation),
                digest_algorithm=expected.algorithm if expected else None,
                on_error=lambda error: self._extraction_failed(task, generation, error),
            )

    def _prefix_waiter(self, task: Task, generation: int) -> Callable[[int], None]:
        """``wait(end)`` for the extractor: returns once ``[0, end)`` is written."""
        known = 0

        def wait(end: int) -> None:
            nonlocal known
            while end > known:
                with self._lock:
                    if task.generation != generation or task.halted or self._stopping:
                        raise Superseded
                    if task.plan is not None:
                        known = task.plan.prefix()
                if end > known:
                    self._stopped.wait(PREFIX_POLL)

        return wait

    def _extraction_failed(self, task: Task, generation: int, error: ExtractionError) -> None:
        """An unsafe or corrupt shard: stop fetching it now (the finisher reports it)."""
        with self._lock:
            if task.generation != generation or task.state != "active":
                return
            if isinstance(error, CorruptArchiveError):
                self._void(task)
            self._halt(task, "failed", error)
            if not task.connections:
                self._end(task)

    # -- what the transport asks (transport.curl.RequestSource) --------------

    def next_request(self, slot: int) -> Request | None:
        return self._connections[slot].next_request()

    def park(self, slot: int) -> None:
        self._connections[slot].release()

    @property
    def finished(self) -> bool:
        """No file needs a connection any more (each is done, failed, or ended)."""
        with self._lock:
            return self._stopping or all(t.state in FINAL_STATES for t in self._tasks)

    # -- what connections ask (connection.Scheduler) ------------------------

    @property
    def stopping(self) -> bool:
        return self._stopping

    def should_leave(self, task: Task, segment: Segment) -> bool:
        return self._stopping or task.halted or segment.cancelled

    def next_span(self, task: Task, segment: Segment, length: int) -> tuple[int, int] | None:
        with self._lock:
            assert task.plan is not None
            return task.plan.next_request(segment, length)

    def adopt(self, task: Task, answer: BodyPlan, segment: Segment | None) -> Segment | None:
        """Where the body of ``answer`` goes: ``segment`` itself; a new segment of the
        whole file (a first answer, or a server that ignored the range); or nowhere
        (None: the file changed and starts over)."""
        with self._lock:
            if answer.kind == "changed":
                task.changes += 1
                if task.changes > MAX_CHANGES:
                    message = (
                        f"the file changed on the server {task.changes} times during this "
                        "run (its ETag, Last-Modified or size keeps flapping)"
                    )
                    self._halt(task, "failed", UnstableSourceError(message, name=task.name))
                    return None
                self._restart(task, answer.total, answer.validator)
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
            self._activate(task, answer.total, answer.validator, single_stream=whole)
            assert task.plan is not None
            adopted = task.plan.adopt(0)
            adopted.requested = answer.start + answer.length
            return adopted

    def _adopt_final(self, task: Task, answer: BodyPlan) -> None:
        """Take the unrecorded file under the final name as this file's bytes (lock held):
        it goes through verification (size, checksum, extraction) as if just fetched."""
        log.info("%s: the file on disk has the server's size; verifying it", task.name)
        final, partial = (
            final_path(self.config.out, task.name),
            partial_path(self.config.out, task.name),
        )
        try:
            os.replace(final, partial)
        except OSError as error:
            raise StorageError(f"{final}: cannot move it to verify it: {error.strerror}") from error
        task.recorded = RangeSet([(0, answer.total)])
        self._activate(task, answer.total, answer.validator, single_stream=False)
        self.store.save_ranges({task.id: (task.generation, task.recorded)})

    def _restart(
        self,
        task: Task,
        size: int,
        validator: Validator,
        *,
        reason: str = "the file changed on the server",
    ) -> None:
        """Void the file's bytes and start over (lock held)."""
        log.warning("%s: %s; starting it over", task.name, reason)
        self._void(task)
        task.size, task.single_stream = None, False
        self._activate(task, size, validator, single_stream=False)

    def _void(self, task: Task) -> None:
        """Make every byte of the file void: in the store (a new generation, no ranges)
        and in this run (segments cancelled; no write of the old bytes is between its
        check and its ``pwrite`` once this returns). Lock held."""
        generation = self.store.restart(task.id)  # (its sync is outside the write lock)
        with task.writing:
            if task.plan is not None:
                task.plan.restart()
            task.generation = generation
        task.recorded = RangeSet()

    def release(self, task: Task, segment: Segment | None) -> None:
        with self._lock:
            task.connections -= 1
            if segment is not None and task.plan is not None:
                if not segment.cancelled and segment.pos > segment.start:
                    end = min(segment.pos, segment.end)
                    self.journal.log(task.id, task.generation, segment.start, end)
                task.plan.release(segment)
            if task.plan is None and task.state == "active" and not task.connections:
                task.state = next_state(task.state, "first-request-failed")
            if task.halted and not task.connections:
                self._end(task)
            elif task.plan is not None and task.plan.complete and task.state == "active":
                log.debug("%s: all %d bytes are in", task.name, task.size)
                task.state = next_state(task.state, "all-in")
                self._publisher.submit(task)

    def failed(self, task: Task, error: TransferError) -> None:
        """A request of ``task`` failed. Failures count per outage, not per connection:
        one that arrives while the file waits out the backoff of an earlier one is
        part of the same outage (a blip that stalls 16 connections at once is one)."""
        error.name = error.name or task.name
        with self._lock:
            if isinstance(error, FatalTransferError):
                log.info("%s: %s", task.name, error.message)  # the run reports it
                state: FileState = "expired" if isinstance(error, LinkExpiredError) else "failed"
                self._halt(task, state, error)
                return
            if self._clock() < task.not_before:
                log.debug("%s: %s (same outage)", task.name, error.message)
                return
            # Failures count in a row, without progress between them: bytes on disk
            # beyond the best seen at a failure reset the count; bytes written again
            # (a server without Range restarting its one stream) do not.
            done = task.plan.done_bytes() if task.plan else task.recorded.total
            if done > task.best_done:
                task.failures, task.best_done = 0, done
            task.failures += 1
            delay = self.config.retry.delay(error, task.failures, jitter=random.random())
            if delay is None:
                note = f" (gave up after {task.failures} attempts in a row)"
                log.info("%s: %s%s", task.name, error, note)
                self._halt(task, "failed", error, note=note)
                return
            log.info("%s: %s; retrying in %.1fs", task.name, error.message, delay)
            task.not_before = max(task.not_before, self._clock() + delay)
            host = urlsplit(task.link.url).hostname or "?"
            if isinstance(error, ConnectError) and host not in self._unreachable:
                self._unreachable.add(host)  # once per host: a user staring at 0% learns why
                log.warning("cannot connect to %s (%s); retrying. %s", host, error, error.hint)

    def _halt(self, task: Task, state: FileState, error: SA1BError, *, note: str = "") -> None:
        """Stop a file for this run, keeping its bytes (lock held)."""
        if task.halted:
            return
        task.halted = True
        message = f"{error.message}{note}"
        task.outcome = FileOutcome(task.name, state, task.size, message, error.hint)

    def _end(self, task: Task) -> None:
        assert task.outcome is not None
        task.state = next_state(task.state, "expire" if task.outcome.state == "expired" else "fail")
        stored: Status = "expired" if task.state == "expired" else "failed"
        self.store.set_status(task.id, stored, task.outcome.message)
        self.listener.finished(task.outcome)
        self.transport.wake()

    # -- what the publisher decides (TaskControl) -----------------------------

    def fail(self, task: Task, error: SA1BError) -> None:
        with self._lock:
            if isinstance(error, CorruptArchiveError):
                self._void(task)
            self._halt(task, "failed", error)
            self._end(task)

    def redownload(self, task: Task, reason: str) -> None:
        with self._lock:
            task.state = next_state(task.state, "redownload")
            self._restart(task, task.size or 0, task.validator, reason=reason)
        self.transport.wake()

    def done(self, task: Task, message: str | None) -> None:
        with self._lock:
            task.state = next_state(task.state, "published")
            task.outcome = FileOutcome(task.name, "done", task.size, message)
            self._close_file(task)
        log.info("%s: done (%s bytes)%s", task.name, task.size, f", {message}" if message else "")
        self.listener.finished(task.outcome)
        self.transport.wake()  # the last file done ends the run now, not at the next tick

    def abort(self, error: SA1BError) -> None:
        self._fatal = error
        self._stop()

    # -- durability ---------------------------------------------------------

    def _transient(self, task: Task) -> bool:
        """A tar that is deleted once extracted: its bytes need not reach the disk soon."""
        extract = self.config.extract
        return self._extracts(task) and extract is not None and not extract.keep_tars

    def _commit(self, *, transient: bool = True) -> None:
        """Make written bytes durable, then record them: the store never runs ahead.

        With ``transient=False``, tars that will be deleted once extracted are left
        out: syncing them would write every shard to disk twice (tar, then files),
        and a killed run resumes them from the journal anyway.
        """
        with self._lock:
            pending = {}
            for task in self._tasks:
                if task.plan is None or task.fd is None or task.state == "done":
                    continue
                if not transient and self._transient(task):
                    continue
                spans = task.plan.written()
                if spans != task.recorded:
                    # A duplicate, so that the finisher may close the task's own meanwhile.
                    pending[task.id] = (task, os.dup(task.fd), task.generation, spans)
        try:
            for _, fd, _, _ in pending.values():
                os.fdatasync(fd)
            self.store.save_ranges({i: (gen, spans) for i, (_, _, gen, spans) in pending.items()})
        except OSError as error:
            self._fatal = StorageError(f"cannot sync partial files: {error.strerror}")
            return
        finally:
            for _, fd, _, _ in pending.values():
                os.close(fd)
        with self._lock:
            for task, _, generation, spans in pending.values():
                if task.generation == generation:
                    task.recorded = spans

    def _start_writeback(self) -> None:
        """Let the disk work while the network does, so that syncs find little left."""
        with self._lock:
            fds = [
                os.dup(t.fd)
                for t in self._tasks
                if t.fd is not None and t.state == "active" and not self._transient(t)
            ]
        try:
            for fd in fds:
                start_writeback(fd)
        except OSError as error:
            self._fatal = StorageError(f"cannot write partial files: {error.strerror}")
        finally:
            for fd in fds:
                os.close(fd)

    def _close_files(self) -> None:
        with self._lock:
            for task in self._tasks:
                self._close_file(task)

    @staticmethod
    def _close_file(task: Task) -> None:
        """Close a file's descriptor once no write can be between its check and pwrite:
        the number may be reused at once, by another file."""
        with task.writing:
            if task.fd is not None:
                os.close(task.fd)
                task.fd = None


def _preallocate(fd: int, size: int) -> None:
    """Reserve the blocks now (a full disk shows at once, files do not fragment);
    where the filesystem cannot, the sparse file has to do."""
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as error:
        if error.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise
        log.debug("preallocation unsupported here (%s); the file stays sparse", error.strerror)
