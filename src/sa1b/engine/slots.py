"""The job of each transport slot: which bytes it asks for next, and where the answer goes.

The transport (:mod:`sa1b.net.curl`) owns the sockets and calls a slot's
:class:`SlotJob` when the slot is free; the job asks the
:class:`JobSource` (the engine, which holds the lock and the state of every file)
for a job and turns it into range requests of about ``request_seconds`` each.
Each answer goes to a :class:`RangeReceiver`, which judges its head before a single
body byte is written (:func:`~sa1b.net.answers.judge_range_answer`), then keeps the
body's chunks until they make :data:`FLUSH` bytes and writes them at their offset by one
``pwritev``, noting it in the crash journal. A write lands only inside the segment this
request serves, and only while the file is still in the generation the request began
in: that is checked at the write, not assumed from timing. An answer whose file the disk
worker is still opening and allocating (its first answer, a restart) is held in memory
meanwhile, up to :data:`HOLD` bytes; if the request ends first, the disk worker writes
what was held once the file is ready, then lets go of the segment.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import ClassVar, Protocol

from sa1b.config import DownloadConfig
from sa1b.engine.bodies import Claim, Ended
from sa1b.engine.tasks import Task
from sa1b.errors import (
    BadResponseError,
    FatalTransferError,
    SA1BError,
    StorageError,
    TransferError,
    TruncatedBodyError,
)
from sa1b.links import redact
from sa1b.net.answers import BodyPlan, ErrorPage, judge_range_answer
from sa1b.net.curl import Request
from sa1b.net.heads import Head
from sa1b.redaction import quote
from sa1b.segments import Segment
from sa1b.store.journal import Journal
from sa1b.store.writeback import Chunk, write_at
from sa1b.versions import Validator

log = logging.getLogger(__name__)

FLUSH = 128 * 1024
"""Bytes kept before a write: one system call per eight TLS records, and little to fetch
again after a kill. The chunks libcurl hands over are kept as they are and written by one
``pwritev``, not copied into a block first: with 256 connections, their blocks (32 MiB)
missed the CPU's caches, and the copy took 14% of the transport thread's samples over a
capped CDN (``benchmarks/governor-results.txt``)."""


HOLD = 8 * 1024 * 1024
"""Bytes of one answer held in memory while its file is made ready (a first request
asks for less); past it the request ends, and the rest is asked for again later."""


class JobSource(Protocol):
    """What a connection asks of the engine (:class:`sa1b.engine.scheduler.Scheduler`):
    work, and what to do with each answer. Every method may be called from any
    transport loop; the engine serialises them under its lock."""

    config: DownloadConfig
    journal: Journal

    @property
    def stopping(self) -> bool:
        """The run is stopping: finish the current read and take no new work."""
        ...

    def take_job(self) -> tuple[Task, Segment | Claim | None] | None:
        """An item to work on and what of it this connection now owns: a segment of a
        file (None: the file's first request, its size still unknown), or a body's
        request; None when there is no work now."""
        ...

    def next_span(self, task: Task, segment: Segment, length: int) -> tuple[int, int] | None:
        """The next ``[start, end)`` to ask for in ``segment``, at most ``length`` bytes;
        None when the segment is done."""
        ...

    def adopt(self, task: Task, answer: BodyPlan, segment: Segment | None) -> Segment | None:
        """Where the body of a judged ``answer`` goes: the segment to write into, or
        None to write nothing (the file restarted, or its bytes were on disk already)."""
        ...

    def should_leave(self, task: Task, segment: Segment) -> bool:
        """Stop writing into ``segment`` now (the run stops, the file halted or restarted)."""
        ...

    def ready(self, task: Task) -> bool:
        """The file's partial file is open and allocated: its bytes may be written now."""
        ...

    def hold(self, task: Task) -> bool:
        """False when the file is ready; else True, and the caller holds the bytes of
        its answer in memory until :meth:`unhold` (no thief cuts that answer meanwhile)."""
        ...

    def unhold(self, task: Task) -> None:
        """The held bytes are written (or void): the file may be worked on again."""
        ...

    def write_later(
        self, task: Task, segment: Segment, *, generation: int, offset: int, data: bytes
    ) -> None:
        """Write ``data`` at ``offset`` once the file is ready, then let go of ``segment``
        (for a connection whose request ended before its file was ready), then
        :meth:`unhold` it."""
        ...

    def release(self, task: Task, segment: Segment | None) -> None:
        """This connection lets go of ``task``: what it wrote is done, the rest free."""
        ...

    def request_failed(self, task: Task, error: TransferError) -> None:
        """A request of ``task`` failed: retry later, or give the file up."""
        ...

    def abort(self, error: SA1BError) -> None:
        """End the whole run (a full disk, an internal error)."""
        ...


class SlotJob:
    """The job of one transport slot, kept from one request to the next."""

    def __init__(
        self, scheduler: JobSource, index: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.scheduler = scheduler
        self.index = index
        self.pace = Pace(scheduler.config)
        self.task: Task | None = None
        self.segment: Segment | None = None
        self.clock = clock

    def next_request(self) -> Request | None:
        """The next request of this connection's job (taking a job if it has none)."""
        scheduler = self.scheduler
        while True:
            if self.task is None:
                job = scheduler.take_job()
                if job is None:
                    return None
                self.task, held = job
                if self.task.body is not None:  # its next request may depend on this answer
                    assert held is not None and not isinstance(held, Segment)
                    return held.request(self._claim_ended)
                assert held is None or isinstance(held, Segment)
                self.segment = held
                if self.segment is None:  # a file's first request: its size is unknown
                    return self._request(self.task, None, (0, scheduler.config.first_request))
            task, segment = self.task, self.segment
            if segment is not None and not scheduler.should_leave(task, segment):
                span = scheduler.next_span(task, segment, self.pace.length())
                if span is not None:
                    return self._request(task, segment, span)
            self.release()

    def release(self) -> None:
        """Give the job back (what was fetched is done, the rest free again)."""
        task, segment = self.task, self.segment
        self.task = self.segment = None
        if task is not None:
            self.scheduler.release(task, segment)

    def _request(self, task: Task, segment: Segment | None, span: tuple[int, int]) -> Request:
        start, end = span
        headers = [f"Range: bytes={start}-{end - 1}"]
        if segment is not None and (validator := task.validator.if_range()):
            headers.append(f"If-Range: {validator}")
        receiver = RangeReceiver(self, task, segment, start, end)
        return Request(task.link.url, tuple(headers), receiver)

    def _failed(self, task: Task, error: SA1BError | None) -> None:
        """What ended a request of ``task``, for every kind of item: a disk that cannot be
        written ends the run; a failed transfer is counted by the task's account."""
        scheduler = self.scheduler
        if isinstance(error, StorageError):
            scheduler.abort(error)
        elif isinstance(error, TransferError) and not scheduler.stopping:
            scheduler.request_failed(task, error)

    def _claim_ended(self, error: SA1BError | None) -> None:
        """A body's request is over: the job is given back (its next request is the
        scheduler's choice again, now that this answer is in)."""
        assert self.task is not None
        self._failed(self.task, error)
        self.release()

    def ended(self, receiver: RangeReceiver, error: SA1BError | None) -> None:
        """A request of this connection's job is over (called by its receiver)."""
        scheduler = self.scheduler
        self.segment = receiver.segment
        self._failed(receiver.task, error)
        segment, held = self.segment, receiver.held
        if held is not None:  # its file is not ready yet
            receiver.held = None
            if held and segment is not None:  # the disk worker writes them, lets go of the job
                self.task = self.segment = None
                scheduler.write_later(
                    receiver.task, segment, generation=receiver.generation,
                    offset=receiver.offset, data=bytes(held),
                )  # fmt: skip
                return
            scheduler.unhold(receiver.task)
        if error is not None or self.segment is None or scheduler.stopping:
            self.release()
        else:
            self.pace.observe(receiver.written, self.clock() - receiver.began)


class RangeReceiver:
    """The answer to one range request: judged, then written where it belongs."""

    def __init__(
        self, connection: SlotJob, task: Task, segment: Segment | None, start: int, end: int
    ) -> None:
        self.connection = connection
        self.scheduler = connection.scheduler
        self.task = task
        self.segment = segment
        self.asked = (start, end)
        self.began = connection.clock()
        self.error: SA1BError | None = None
        self.refusal: ErrorPage | None = None
        self.fd = -1
        self.generation = task.generation
        self.offset = self.until = 0
        self.written = 0
        self.cut = False
        """The request was ended early on purpose (held bytes reached :data:`HOLD`): the
        rest is asked for again, so a short body is no failure."""
        self.gathered: list[bytes] = []
        """Body chunks not written yet, :attr:`filled` bytes in all."""
        self.filled = 0
        self.held: bytearray | None = None
        """Body bytes kept in memory while the file is not ready (None: not holding)."""

    # -- the transport's Receiver --------------------------------------------

    def head(self, head: Head) -> bool:
        """Judge the answer; only a usable 200/206 lets body bytes through."""
        task, (start, end) = self.task, self.asked
        ranged = self.segment is not None
        try:
            judged = judge_head(
                head,
                task,
                start=start,
                end=end,
                size=task.size if ranged else None,
                validator=task.validator if ranged else None,
            )
            if isinstance(judged, ErrorPage):
                self.refusal = judged
                return True  # read its page: it tells an expired link from another refusal
            answer = judged
            self.segment = self.scheduler.adopt(task, answer, self.segment)
        except SA1BError as error:  # a bad answer
            self.error = error
            return False
        if self.segment is None:  # the file changed and starts over
            return False
        self.generation = task.generation
        self.offset, self.until = answer.start, answer.start + answer.length
        if self.scheduler.hold(task):
            self.held = bytearray()
        else:
            assert task.fd is not None
            self.fd = task.fd
        return True

    def body(self, data: bytes) -> bool:
        if self.refusal is not None:
            return self.refusal.add(data)
        segment = self.segment
        assert segment is not None
        if self.scheduler.should_leave(self.task, segment):
            return False
        if self.held is not None and not self._write_held() and self.held is None:
            return False  # the held bytes, written now, may not be
        held = self.held
        # A steal never takes bytes already requested (segments.py), so the answer
        # ends inside its segment; the bound on the segment keeps it so whatever happens.
        room = min(self.until, segment.end) - self.offset
        room -= self.filled if held is None else len(held)
        if len(data) > room:
            self.error = BadResponseError(
                "the body is longer than its Content-Range",
                name=self.task.name,
                url=redact(self.task.link.url),
            )
            if held is not None:
                held += data[: max(room, 0)]
            elif room > 0 and self._gather(data[:room]):
                self._flush()
            return False
        if held is None:
            return self._gather(data)
        held += data  # the file is not ready: kept until it is
        if len(held) < HOLD:
            return True
        self.cut = True  # the rest is asked for again once the file is ready
        return False

    def end(self, error: TransferError | None) -> None:
        try:
            failure = self._verdict(error)
        except Exception as bug:  # the job must still be given back, or the file hangs
            log.exception("%s: internal error while ending a request", self.task.name)
            failure = FatalTransferError(f"internal error: {bug!r}", name=self.task.name)
        self.connection.ended(self, failure)

    def _verdict(self, error: TransferError | None) -> SA1BError | None:
        """What ended this request, once the last gathered bytes are written."""
        failure: SA1BError | None = self.error or error
        if self.segment is not None and self.filled:
            self._flush()
            failure = self.error or failure
        if self.held is not None:  # written now if the file is ready, else by the worker
            self._write_held()
            failure = self.error or failure
        reached = self.offset + len(self.held or b"")
        if self.refusal is not None:  # its status says more than how its page ended
            failure = self.refusal.error(self.task.link, now=time.time())
        elif (
            failure is None
            and self.segment is not None
            and not self.cut
            and reached < min(self.until, self.segment.end)
            and not self.scheduler.should_leave(self.task, self.segment)
        ):
            failure = TruncatedBodyError(
                f"the body ended {min(self.until, self.segment.end) - reached} bytes early",
                name=self.task.name,
                url=redact(self.task.link.url),
            )
        return failure

    # -- writing --------------------------------------------------------------

    def _write_held(self) -> bool:
        """Write the held bytes if the file is ready now; False while it is not, or when
        the request must end."""
        if not self.scheduler.ready(self.task):
            return False
        held, self.held = self.held, None
        assert held is not None and self.task.fd is not None
        self.fd = self.task.fd
        written = not held or self._write([held])
        self.scheduler.unhold(self.task)
        return written

    def _gather(self, data: bytes) -> bool:
        """Keep ``data``, writing what is kept once it makes a :data:`FLUSH`."""
        self.gathered.append(data)
        self.filled += len(data)
        return self.filled < FLUSH or self._flush()

    def _flush(self) -> bool:
        """Write out the kept chunks; False when the request must end."""
        gathered, self.gathered, self.filled = self.gathered, [], 0
        return not gathered or self._write(gathered)

    def _write(self, chunks: Sequence[Chunk]) -> bool:
        """Write the next bytes of the answer at their offset; False to end."""
        task, segment = self.task, self.segment
        assert segment is not None
        with task.writing:
            if segment.cancelled or task.generation != self.generation or task.fd != self.fd:
                return False  # the file restarted or ended since: these bytes belong nowhere
            try:
                written = write_answer(self.fd, chunks, self.offset, name=task.name)
            except StorageError as error:
                self.error = error
                return False
        self.offset += written
        self.written += written
        segment.pos = self.offset
        index = self.connection.index
        self.scheduler.journal.write(index, task.id, self.generation, segment.start, self.offset)
        return True


def judge_head(
    head: Head,
    task: Task,
    *,
    start: int,
    end: int,
    size: int | None,
    validator: Validator | None,
) -> ErrorPage | BodyPlan:
    """What the head of an answer to ``Range: bytes=start-(end-1)`` of ``task`` means,
    for every kind of body: a refusal whose page is to be read (an :class:`ErrorPage`),
    or what its body holds (:func:`~sa1b.net.answers.judge_range_answer`, given the
    ``size`` and ``validator`` known before it). Raises :class:`~sa1b.errors.SA1BError`
    for an answer that cannot be used."""
    refusal = ErrorPage.of(head)
    if refusal is not None:
        return refusal
    url = redact(task.link.url)
    coding = head.headers.get("content-encoding", "identity").strip().lower()
    if coding not in ("", "identity"):
        raise BadResponseError(
            f"the server sent a {quote(coding)}-encoded body although identity was asked",
            name=task.name,
            url=url,
        )
    return judge_range_answer(
        head.status,
        head.headers,
        start=start,
        end=end,
        size=size,
        validator=validator,
        name=task.name,
        url=url,
    )


class Restartable(Protocol):
    """A body whose answers are void once it starts over (its generation moves on)."""

    generation: int

    def start_over(self, task: Task) -> None: ...


class BodyAnswer(ABC):
    """What the answers to a body's requests share (a walk's step, an upload's part): a
    range of the item asked for, its head judged as every answer's is
    (:func:`judge_head`), a refusal's page read to its end (it tells an expired link
    from another refusal), and a file that changed on the server started over."""

    shard: Restartable
    again: ClassVar[str] = "fetching"
    """What the body does once more when the file changed, for the warning."""

    def __init__(self, task: Task, shard: Restartable, start: int, stop: int) -> None:
        self.task, self.shard = task, shard
        self.start, self.stop = start, stop  # the range of the item asked for
        self.generation = shard.generation
        self.refusal: ErrorPage | None = None
        self.error: SA1BError | None = None
        self.ended: Ended = lambda failure: None

    def request(self, ended: Ended) -> Request:
        self.ended = ended
        headers = (f"Range: bytes={self.start}-{self.stop - 1}",)
        return Request(self.task.link.url, headers, self)

    @property
    def current(self) -> bool:
        return self.generation == self.shard.generation and not self.task.halted

    def judged(self, head: Head) -> BodyPlan | None:
        """The head judged (the run's lock held), or None when no data is to be read:
        :attr:`error` says why, or :attr:`refusal` holds the page to read (the receiver
        then reads on only if there is one)."""
        task = self.task
        if not self.current:
            return None
        known = task.size is not None
        try:
            judged = judge_head(
                head,
                task,
                start=self.start,
                end=self.stop,
                size=task.size,
                validator=task.validator if known else None,
            )
        except SA1BError as error:
            self.error = error
            return None
        if isinstance(judged, ErrorPage):
            self.refusal = judged
            return None
        if judged.kind == "changed":
            self.error = task.failures.changed(task.name)
            if self.error is None:
                self.start_over()
            return None
        return judged

    def start_over(self) -> None:
        """The file changed on the server (within the limit on changes): its body starts
        over."""
        log.warning("%s: the file changed on the server; %s it again", self.task.name, self.again)
        self.shard.start_over(self.task)

    def failure(self, error: TransferError | None) -> SA1BError | None:
        """What ended the answer: a refusal's status says more than how its page ended,
        then what it found wrong itself, then the transport's ``error``."""
        if self.refusal is not None:
            return self.refusal.error(self.task.link, now=time.time())
        return self.error or error

    # -- the transport's Receiver (sa1b.net.curl) ---------------------------------------

    @abstractmethod
    def head(self, head: Head) -> bool: ...

    @abstractmethod
    def body(self, data: bytes) -> bool: ...

    @abstractmethod
    def end(self, error: TransferError | None) -> None: ...


def write_answer(fd: int, chunks: Sequence[Chunk], offset: int, *, name: str) -> int:
    """Write an answer's ``chunks`` at ``offset`` of file ``name``
    (:func:`~sa1b.store.writeback.write_at`); a failing disk is a :class:`StorageError`."""
    try:
        return write_at(fd, chunks, offset)
    except OSError as error:
        raise StorageError(f"{name}: cannot write: {error.strerror}") from None


class Pace:
    """Sizes one connection's requests to last about ``request_seconds`` each."""

    def __init__(self, config: DownloadConfig) -> None:
        self._config = config
        self._speed: float | None = None

    def observe(self, length: int, seconds: float) -> None:
        if length >= self._config.min_request and seconds > 0:
            self._speed = length / seconds

    def length(self) -> int:
        cfg = self._config
        if self._speed is None:
            return cfg.first_request
        wanted = int(self._speed * cfg.request_seconds)
        return max(cfg.min_request, min(cfg.max_request, wanted))
