"""The streamed body: a shard fetched into memory part by part and read in order, with
no byte of it on the local disk; what a whole part then feeds is its sink's affair.

A shard is cut into parts (:class:`~sa1b.objectstore.parts.PartPlan`). A part's bytes
are gathered in a buffer of its length, taken from the run's memory budget
(:class:`~sa1b.objectstore.parts.MemoryBudget`) when the part is opened
(:class:`Filling`), by several ranged requests of at most a chunk each, the lowest
unfinished part's first: over connections a CDN caps, a part is then whole in a
fraction of the time one request would take, and few parts are in flight half-filled
(what a SIGKILL loses). A request that fails keeps what arrived, and the next asks for
the rest only; the buffer goes back to the budget only once no request may write into
it. A whole part goes to its sink (:meth:`Streams.dispatch`) and to the reader threads,
which read a shard's parts in order (one thread a shard at a time): with
``--checksums``, the digest; for a shard, sa1b's one tar reader
(:class:`~sa1b.tarwalk.TarWalk`), whose verdict on a damaged tar stops the shard.

The sink is a subclass's: a multipart upload (:mod:`sa1b.engine.upload`, ``-o s3://``)
sends each part to the bucket; extraction into a local folder (:mod:`sa1b.engine.unpack`)
writes each member the walk meets straight into its staged file
(:meth:`Streams.consume`), with no tar on disk.
"""

from __future__ import annotations

import functools
import hashlib
import heapq
import mmap
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import KW_ONLY, dataclass, field
from typing import TYPE_CHECKING, TypeAlias

from sa1b.config import DownloadConfig
from sa1b.engine.bodies import Claim
from sa1b.engine.run import Run
from sa1b.engine.slots import BodyAnswer
from sa1b.engine.tasks import Task
from sa1b.errors import (
    BadResponseError,
    ExtractionError,
    FatalTransferError,
    TransferError,
)
from sa1b.links import is_shard_name, redact
from sa1b.net.answers import BodyPlan
from sa1b.net.governor import GovernorPolicy
from sa1b.net.heads import Head
from sa1b.objectstore.parts import MemoryBudget, PartPlan
from sa1b.repack import Copied
from sa1b.store.uploads import WalkPoint
from sa1b.tarwalk import Piece, TarWalk, headers_only
from sa1b.versions import Validator

if TYPE_CHECKING:
    from hashlib import _Hash


PartBuffer: TypeAlias = bytearray | mmap.mmap
"""Where a part's bytes are gathered: a bytearray, or memory of pages of its own
(:meth:`Streams.allocate`)."""

READERS = 2
"""Threads reading the parts in order (a walk costs little; a digest, a core's share)."""


@dataclass(frozen=True, slots=True)
class StreamOptions:
    """How a streamed shard is fetched: parts of ``part_size``, by requests of at most
    ``chunk`` bytes, within ``memory`` bytes of parts held at once."""

    part_size: int
    chunk: int
    memory: int


class Streams(ABC):
    """What every streamed body of one kind shares in a run (the base of its
    :class:`~sa1b.engine.bodies.Kind`): the memory budget, the reader threads, and the
    records its sink saves. Guarded by the run's lock, unless said otherwise."""

    def __init__(self, run: Run, options: StreamOptions) -> None:
        self.run = run
        self.config: DownloadConfig = run.config
        self.stream_options = options
        self.budget = MemoryBudget(options.memory)
        self.settle: Callable[[Task], None] = lambda task: None
        self.ready_queue = False  # see Kind
        self.whole_files = False  # see Kind
        self.tick_now = threading.Event()
        """Set when memory is given back: the supervising loop wakes the transport."""
        self.identified: list[tuple[int, int, Validator]] = []
        """Shards whose first answer told their size and version (id, size, validator),
        to record: so that the store knows them even before their sink holds a part."""
        self._spare: list[PartBuffer] = []
        """Buffers of a whole part given back, reused rather than allocated again (their
        bytes and those held stay within the budget)."""
        self._readers = ThreadPoolExecutor(READERS, thread_name_prefix="sa1b-read")
        self._holders: dict[int, int] = {}
        """Of each whole part's buffer (by id): how many of the sink and the reader
        still need it."""

    # -- what a sink says --------------------------------------------------------------

    @abstractmethod
    def dispatch(self, task: Task, body: StreamedBody, number: int, buffer: PartBuffer) -> bool:
        """Hand a whole part to the sink (lock held); whether the sink holds ``buffer``
        now (it calls :meth:`let_go` once done with it)."""

    @abstractmethod
    def consume(self, task: Task, body: StreamedBody, pieces: list[Piece]) -> None:
        """In a reader thread: the members' data the walk handed over from one part."""

    def cannot_write(self, task: Task, body: StreamedBody, error: OSError) -> None:
        """In a reader thread: the sink could not write what the walk handed over (or
        make a member's file as the walk met its header); the shard's reading ends."""
        raise error

    # -- the Kind: as many shards and connections as whole files ------------------

    def at_once(self, slots: int) -> int:
        return self.config.max_files

    def policy(self) -> GovernorPolicy:
        return self.config.connection_policy()

    def walked(self, tasks: Sequence[Task]) -> int | None:
        return None

    # -- memory (lock held) -----------------------------------------------------------

    def take(self, length: int) -> PartBuffer:
        """A buffer of ``length`` bytes, counted in the budget."""
        self.budget.take(length)
        if self._spare and len(self._spare[-1]) == length:
            return self._spare.pop()
        return self.allocate(length)

    def allocate(self, length: int) -> PartBuffer:
        """A new buffer of ``length`` bytes (a sink may want its memory aligned)."""
        return bytearray(length)

    def give(self, buffer: PartBuffer) -> None:
        """A buffer's bytes are no longer needed: back to the budget (and kept to be
        reused while the spares and what is held fit it)."""
        self.release(len(buffer))
        spare = sum(len(b) for b in self._spare)
        if len(buffer) == self.stream_options.part_size and (
            self.budget.held + spare + len(buffer) <= self.budget.limit
        ):
            self._spare.append(buffer)

    def release(self, length: int) -> None:
        """``length`` bytes back to the budget: claims waiting may go (the supervising
        loop wakes the transport at once)."""
        self.budget.give(length)
        self.tick_now.set()

    def send(self, task: Task, body: StreamedBody, number: int, buffer: PartBuffer) -> None:
        """A part is whole (lock held): to the sink and to the reader (if the digest or
        the walk is to read it). Its buffer goes back to the budget once both let go."""
        holders = 1 if self.dispatch(task, body, number, buffer) else 0
        if body.verdict is None and not task.halted and number >= body.next_read:
            holders += 1
            body.unread[number] = buffer
            self._readers.submit(self._read_in_order, task, body, body.generation)
        if holders:
            self._holders[id(buffer)] = holders
        else:
            self.give(buffer)

    def let_go(self, buffer: PartBuffer) -> None:
        """The sink or the reader is done with ``buffer`` (lock held): back to the
        budget once the other is too."""
        left = self._holders.pop(id(buffer)) - 1
        if left:
            self._holders[id(buffer)] = left
        else:
            self.give(buffer)

    # -- the readers ------------------------------------------------------------------

    def _read_in_order(self, task: Task, body: StreamedBody, generation: int) -> None:
        """In a reader thread: feed the shard's digest and its walk the parts now whole,
        in order (one thread a shard at a time), whether or not the sink is done with
        them; note where the walk goes on, or its verdict on the tar."""
        with body.reading:
            self._read_parts(task, body, generation)
        self.settle(task)

    def _read_parts(self, task: Task, body: StreamedBody, generation: int) -> None:
        while True:
            with self.run.lock:
                if generation != body.generation:
                    return
                number = body.next_read
                buffer = body.unread.pop(number, None)
                if buffer is None:
                    return
                hasher, walk, plan = body.hasher, body.walk, body.plan
            assert plan is not None
            if hasher is not None:
                hasher.update(buffer)
            verdict: ExtractionError | None = None
            unwritten: OSError | None = None
            if walk is not None and not walk.finished:
                try:
                    with memoryview(buffer) as view:  # (the buffer is reused after)
                        pieces = walk.feed(plan.span(number)[0], view)
                    if pieces:
                        self.consume(task, body, pieces)
                except ExtractionError as error:
                    verdict = error
                except OSError as error:  # the sink's disk (a member's file, its bytes)
                    unwritten = error
                    self.cannot_write(task, body, error)
            with self.run.lock:
                self.let_go(buffer)
                if generation != body.generation or unwritten is not None:
                    return
                body.next_read += 1
                if verdict is not None:
                    body.condemn(verdict)
                    return
                body.note_walk(task)

    def close_readers(self) -> None:
        """Wait for the readers (quick: what they reach is saved after)."""
        self._readers.shutdown(wait=True)


@dataclass(eq=False)
class StreamedBody(ABC):
    """One shard streamed through memory (:class:`~sa1b.engine.bodies.Body`): its parts
    to fetch, being fetched, and read in order; its sink says which parts it holds
    already (:meth:`held`) and when the shard is complete."""

    streams: Streams
    _: KW_ONLY
    plan: PartPlan | None = None
    todo: list[int] = field(default_factory=list)
    """Parts to fetch (a heap: the lowest first, so that a shard completes in order)."""
    parts: dict[int, Filling] = field(default_factory=dict)
    """Parts opened and not yet whole, by number."""
    fetching: int = 0
    reread: set[int] = field(default_factory=set)
    """Parts the sink holds, fetched again to be read in order alone: for the digest
    (``--checksums``: every one), or for the walk (those from where it goes on)."""
    hasher: _Hash | None = None
    walk: TarWalk | None = None
    """The walk of a shard's tar: its catalog so far."""
    walk_saved: tuple[int, int] = (0, 0)
    """The walk's resume point last queued to be saved (offset, entries before it)."""
    verdict: ExtractionError | None = None
    """What the walk found wrong with the tar: nothing more is fetched, and once nothing
    is in flight, publishing fails the shard with it."""
    next_read: int = 1
    """The next part to read in order (past the last part: nothing to read)."""
    unread: dict[int, PartBuffer] = field(default_factory=dict)
    """Parts whole, waiting in memory for those before them to be read."""
    received: int = 0
    generation: int = 0
    """Moves on when the shard starts over: answers and parts of before are void."""
    reading: threading.Lock = field(default_factory=threading.Lock)

    # -- what the sink says ------------------------------------------------------------

    @abstractmethod
    def held(self) -> Collection[int]:
        """The parts the sink holds already (none are fetched, but to be read again)."""

    @abstractmethod
    def note_walk(self, task: Task) -> None:
        """The walk read another part (lock held): the sink may record where it is."""

    @abstractmethod
    def forget_output(self, task: Task) -> None:
        """The shard starts over (lock held): what the sink made of the old version is
        void."""

    def go_whole(self, task: Task) -> str | None:
        """The server ignores Range (lock held): the task goes on as a whole file on the
        engine's own path, its body dropped; or why not (the shard fails with it)."""
        return "an s3:// output needs ranged downloads"

    # -- start ------------------------------------------------------------------------

    def _start(
        self,
        task: Task,
        plan: PartPlan,
        *,
        first: int | None = None,
        walked: WalkPoint | None = None,
    ) -> None:
        """The parts to fetch once the plan is known (``first``: one in flight already),
        and to read in order: every one for the digest, else those from where the walk
        goes on, else none."""
        expected = self.streams.config.checksums.get(task.name)
        self.hasher = hashlib.new(expected.algorithm) if expected else None
        self.walk, self.verdict = None, None
        if is_shard_name(task.name):
            try:
                self.walk = self._tar_walk(task.name, plan.size, walked)
            except ExtractionError as error:  # too short to hold a header
                self.verdict = error
        walk, self.next_read = self.walk, plan.count + 1
        if walk is not None:
            self.walk_saved = walk.resume_point
            if not walk.finished:
                self.next_read = walk.resume_point[0] // plan.part_size + 1
        if self.hasher is not None:
            self.next_read = 1
        held = self.held()
        self.reread = {n for n in held if n >= self.next_read}
        self.todo = [n for n in plan.numbers() if n != first and n not in held]
        self.todo += sorted(self.reread)
        if self.verdict is not None:
            self.todo = []
        heapq.heapify(self.todo)

    def _tar_walk(self, shard: str, size: int, walked: WalkPoint | None) -> TarWalk:
        """The walk of a shard's tar, from the start or from where it was ``walked`` to."""
        if walked is None:
            return TarWalk(shard, size, headers_only)
        start = None if walked.next >= size else walked.next
        return TarWalk(shard, size, headers_only, start=start, entries=walked.entries)

    # -- Body -------------------------------------------------------------------------

    @property
    def claimable(self) -> bool:
        budget, plan = self.streams.budget, self.plan
        if plan is None:  # its first request tells its size: one at a time
            return self.fetching == 0 and budget.fits(self.streams.stream_options.part_size)
        if any(filling.todo for filling in self.parts.values()):
            return True
        return bool(self.todo) and budget.fits(plan.length(self.todo[0]))

    @property
    def progress(self) -> int:
        """Bytes received for it in this run (what its account of failures weighs)."""
        return self.received

    def claim(self, task: Task) -> Claim | None:
        """A request of at most a chunk: into the lowest part opened with stretches left
        to ask for, else into the next part opened (its first request, the shard's size
        unknown: a chunk from byte 0, its budget taken at once)."""
        streams, plan = self.streams, self.plan
        chunk = streams.stream_options.chunk
        if plan is None:
            length = streams.stream_options.part_size
            streams.budget.take(length)  # the part's buffer is made once its size is known
            self.fetching += 1
            return PartAnswer(task, self, None, 0, min(chunk, length), reserved=length)
        waiting = [filling for filling in self.parts.values() if filling.todo]
        filling = min(waiting, key=lambda f: f.number) if waiting else self._open(task)
        if filling is None:
            return None
        span = filling.todo[0]
        length = min(span.length, chunk)
        if length < span.length:
            filling.todo[0] = Copied(span.at + length, span.source + length, span.length - length)
        else:
            filling.todo.pop(0)
        filling.busy += 1
        self.fetching += 1
        into = span.at - plan.span(filling.number)[0]
        return PartAnswer(task, self, filling, span.source, span.source + length, into=into)

    def _open(self, task: Task) -> Filling | None:
        """The lowest part to fill: its buffer taken, its stretches to ask for; a part
        with nothing to ask for (a tar made from a shard: headers and padding alone)
        goes to the sink at once."""
        plan = self.plan
        assert plan is not None
        while self.todo:
            number = heapq.heappop(self.todo)
            buffer = self.streams.take(plan.length(number))
            stretches = self.stretches(number, buffer)
            if stretches:
                filling = self.parts[number] = Filling(number, buffer, stretches)
                return filling
            self.streams.send(task, self, number, buffer)
        return None

    def stretches(self, number: int, buffer: PartBuffer) -> list[Copied]:
        """The stretches of the source to ask for to fill part ``number`` (what is not
        the source's is written into ``buffer`` here): a tar's part is one stretch."""
        assert self.plan is not None
        start, end = self.plan.span(number)
        return [Copied(start, start, end - start)] if end > start else []

    def _let_go(self) -> None:
        """Give back the memory of the parts held here, but that of a part still being
        written into by an answer, which its last answer gives back (lock held)."""
        for filling in self.parts.values():
            filling.todo, filling.dropped = [], True
            if not filling.busy:
                self.streams.give(filling.buffer)
        for buffer in self.unread.values():
            self.streams.let_go(buffer)
        self.parts, self.unread = {}, {}

    # -- what its answers change (under the lock) ----------------------------------

    def identify(self, task: Task, size: int, validator: Validator, *, asked: int) -> Filling:
        """The shard's size and version are known (its first answer, which asked for
        bytes ``[0, asked)``): its plan, and its part 1 opened with that request in it."""
        task.size, task.validator = size, validator
        self.streams.identified.append((task.id, size, validator))
        part_size = self.streams.stream_options.part_size
        self.plan = plan = PartPlan.for_size(size, preferred=part_size)
        self._start(task, plan, first=1)
        end = plan.span(1)[1]
        rest = [Copied(asked, asked, end - asked)] if asked < end else []
        filling = self.parts[1] = Filling(1, self.streams.take(end), rest, busy=1)
        return filling

    def start_over(self, task: Task) -> None:
        """The source changed: what the sink made of the old version is void, every
        answer and part in flight too; the shard is fetched afresh."""
        self.generation += 1
        self.forget_output(task)
        self._let_go()
        self.plan, self.hasher, self.walk = None, None, None
        self.todo, self.reread, self.verdict = [], set(), None
        task.size, task.validator = None, Validator()

    def condemn(self, verdict: ExtractionError) -> None:
        """The walk found the tar damaged (lock held): nothing more is fetched or read,
        the memory of the parts held goes back; publishing fails the shard."""
        self.verdict, self.todo = verdict, []
        self._let_go()

    def answered(self, task: Task, answer: PartAnswer) -> None:
        """An answer is over: the rest of it asked for again if it was cut; its part to
        the sink and the reader once every stretch of it is in."""
        self.fetching -= 1
        self.received += answer.got - answer.began
        if answer.reserved:
            self.streams.release(answer.reserved)
        filling = answer.filling
        if filling is None:  # a first request that never knew the size
            return
        filling.busy -= 1
        if filling.dropped:
            if not filling.busy:
                self.streams.give(filling.buffer)
            return
        reached = answer.delta + answer.got
        if reached < answer.stop:
            assert self.plan is not None
            at = self.plan.span(filling.number)[0] + answer.got
            filling.todo.insert(0, Copied(at, reached, answer.stop - reached))
        elif not filling.todo and not filling.busy:
            del self.parts[filling.number]
            self.streams.send(task, self, filling.number, filling.buffer)


@dataclass(eq=False)
class Filling:
    """A part being filled: its buffer, the stretches of source data still to ask for
    (a stretch is cut into chunks as it is asked for), and the requests in flight into
    it."""

    number: int
    buffer: PartBuffer
    todo: list[Copied]
    busy: int = 0
    dropped: bool = False
    """Let go of (the shard ended, started over or was condemned): its memory goes
    back once the requests in flight into it are over, never while one may still write
    into it."""


def judged_ranged(
    answer: BodyAnswer, head: Head, *, go_whole: Callable[[], str | None] | None = None
) -> BodyPlan | None:
    """The head judged (:meth:`~sa1b.engine.slots.BodyAnswer.judged`, the run's lock
    held), or None when no data is to be read; a part (or a header) of a shard is never
    taken from a whole-file answer: a server that ignores Range is an error here, unless
    ``go_whole`` lets the item go on as a whole file (else it says why not)."""
    judged = answer.judged(head)
    if judged is None or judged.kind != "whole":
        return judged
    if answer.start != 0 or judged.total > answer.stop:
        refused = go_whole() if go_whole else "an s3:// output needs ranged downloads"
        if refused is not None:
            answer.error = FatalTransferError(
                f"the server ignores Range: {refused}",
                name=answer.task.name,
                url=redact(answer.task.link.url),
            )
        return None
    return judged


class PartAnswer(BodyAnswer):
    """A request of source bytes ``[start, stop)`` into its part's buffer from index
    ``got``, and the receiver of its answer (a :class:`~sa1b.engine.bodies.Claim`). A
    shard's first request (its size unknown, ``filling`` None) asks for a chunk from byte
    0 and opens part 1 once the answer says how long it is."""

    shard: StreamedBody

    def __init__(
        self,
        task: Task,
        body: StreamedBody,
        filling: Filling | None,
        start: int,
        stop: int,
        *,
        into: int = 0,
        reserved: int = 0,
    ) -> None:
        super().__init__(task, body, start, stop)
        self.streams = body.streams
        self.filling = filling
        self.buffer = filling.buffer if filling is not None else None
        self.got, self.began = into, into
        self.delta = start - into
        """The source's offset of the buffer's first byte, for this request's bytes
        (what ``got`` counts from)."""
        self.reserved = reserved
        """Budget taken for a first request, before its buffer exists."""

    @property
    def number(self) -> int:
        """Its part's number."""
        return self.filling.number if self.filling is not None else 1

    # -- the transport's Receiver --------------------------------------------

    def head(self, head: Head) -> bool:
        task, body = self.task, self.shard
        with self.streams.run.lock:
            judged = judged_ranged(self, head, go_whole=functools.partial(body.go_whole, task))
            if judged is None:
                return self.refusal is not None
            if body.plan is None:
                self.streams.release(self.reserved)
                self.reserved = 0
                self.stop = min(self.stop, judged.total)
                self.filling = body.identify(task, judged.total, judged.validator, asked=self.stop)
                self.buffer = self.filling.buffer
            return True

    def body(self, data: bytes) -> bool:
        if self.refusal is not None:
            return self.refusal.add(data)
        buffer = self.buffer
        if buffer is None or self.generation != self.shard.generation:
            return False
        room = self.stop - self.delta - self.got
        if len(data) > room:
            self.error = BadResponseError(
                "the body is longer than its Content-Range",
                name=self.task.name,
                url=redact(self.task.link.url),
            )
            data = data[:room]
        buffer[self.got : self.got + len(data)] = data
        self.got += len(data)
        return self.error is None

    def end(self, error: TransferError | None) -> None:
        task, body = self.task, self.shard
        failure = self.failure(error)
        with self.streams.run.lock:
            stale = self.generation != body.generation
            arrived = self.got - self.began
            reached = self.delta + self.got
            if failure is None and self.current and self.buffer is not None:
                if arrived == 0 and self.stop > self.start:
                    failure = BadResponseError("an answer without a byte", name=task.name)
                elif reached < self.stop:
                    failure = BadResponseError(
                        f"part {self.number}: {arrived} of {self.stop - self.start} bytes arrived",
                        name=task.name,
                    )
            body.answered(task, self)
        self.ended(None if stale else failure)
