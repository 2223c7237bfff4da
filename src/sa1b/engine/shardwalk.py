"""The requests of a run that fetches some members of each shard (``--only``).

Each shard is walked by range reads (:class:`~sa1b.tarwalk.TarWalk`): one request in
flight per shard, since each header says where the next one is, and many shards at
once, so that their round trips overlap. Members a resumed walk already knows of
(its catalog) are fetched by their own ranges, several at once. A server that
ignores ranges answers with the whole shard: the walk then reads that one stream,
keeping what it wants. Wanted bytes go to the shard's staging folder, one file per
member; :mod:`sa1b.engine.selective` publishes them once the shard is walked.

Requests are made and answered in the transport's thread, under the source's lock;
the writing of staged pieces is queued as jobs, which the run's thread hands to the
writer threads of :mod:`sa1b.engine.staging`.
"""

from __future__ import annotations

import os
import random
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sa1b.engine.staging import Job, stage_piece
from sa1b.errors import (
    BadResponseError,
    LinkExpiredError,
    SA1BError,
    StorageError,
    TransferError,
)
from sa1b.layout import Layout
from sa1b.links import Link, redact
from sa1b.net.answers import BodyPlan, ErrorPage, judge_range_answer
from sa1b.net.curl import Request
from sa1b.net.heads import Head
from sa1b.progress import FileOutcome, FileState
from sa1b.retry import FailureAccount
from sa1b.store.walks import Checkpoint
from sa1b.tarformat import BLOCK
from sa1b.tarwalk import CHUNK, Entry, Piece, TarWalk
from sa1b.versions import Validator

MEMBERS_AT_ONCE = 4
"""Known members of one shard fetched by their ranges at the same time."""
HELD_BUDGET = 64 * 1024 * 1024
"""Bytes the walk may hold in memory (its requests in flight, by their lengths, and
the staged pieces waiting for the disk) before it starts no new request: a disk slower
than the network then paces the walk, instead of the queue of pieces growing by the
difference, and a thousand shards walked at once do not buffer a chunk each. Past it,
the run's thread writes the queue at once rather than at its next tick. A request is
at most a :data:`~sa1b.tarwalk.CHUNK` and a header: the walk holds at most this and one
such request. A server without ranges sends each shard as one stream, which no request
bounds: that stream waits while the pieces fill the budget
(:meth:`WalkSource.wait_for_disk`)."""
STOP_CHECK = 0.25
"""Seconds between looks at whether the run stops, while a stream waits for the disk."""


@dataclass(eq=False)
class WalkedShard:
    """One shard of the run: its walk, the members still to fetch, how it ends."""

    link: Link
    file_id: int
    staging: Path
    wanted: Callable[[str], bool]
    layout: Layout
    failures: FailureAccount
    size: int | None = None
    validator: Validator | None = None
    walk: TarWalk | None = None
    todo: deque[Part] = field(default_factory=deque)
    """Members of the catalog to fetch by their ranges."""
    staged: set[str] = field(default_factory=set)
    """Wanted members whose every byte is in the staging folder."""
    written: dict[str, int] = field(default_factory=dict)
    """Bytes of members on their way into the staging folder, written so far."""
    writing: int = 0
    """Pieces handed to the stager and not written yet."""
    write_lock: threading.Lock = field(default_factory=threading.Lock)
    """Held to write a staged piece, and to start the walk over: a piece of an older
    generation is never written once the staging folder is voided."""
    generation: int = 0
    """Moves on when the walk starts over: answers to older requests write nothing."""
    walker: _Answer | None = None
    """The walk's request in flight, if any (one at a time)."""
    busy: int = 0
    parts_fetched: int = 0
    """Bytes of the catalog's members that arrived in whole parts."""
    saved: tuple[int, int] = (0, 0)
    publishing: bool = False
    outcome: FileOutcome | None = None

    @property
    def name(self) -> str:
        return self.link.name

    @property
    def progress(self) -> int:
        """How far the shard got, in bytes (its account of failures judges it): the
        walk's next byte and the bytes of members fetched by their ranges."""
        walk = self.walk
        if walk is None:
            return self.parts_fetched
        need = walk.need()
        return (need[0] if need else walk.size) + self.parts_fetched

    @property
    def reached(self) -> int:
        """Bytes of the shard walked through so far."""
        return self.walk.checkpoint[0] if self.walk else 0

    @property
    def ready_to_publish(self) -> bool:
        walked = self.walk is not None and self.walk.finished
        idle = not (self.todo or self.busy or self.writing)
        return walked and idle and self.outcome is None and not self.publishing


@dataclass(frozen=True, slots=True)
class Part:
    """A stretch of a member the catalog knows, fetched by its own range (a member is
    fetched in parts of at most :data:`~sa1b.tarwalk.CHUNK` bytes, each held in memory
    until it is complete)."""

    entry: Entry
    at: int
    length: int


def parts_of(entry: Entry) -> list[Part]:
    return [Part(entry, at, min(CHUNK, entry.size - at)) for at in range(0, entry.size, CHUNK)]


@dataclass(frozen=True, slots=True)
class Identity:
    """A shard's first answer (or a new version): the store starts its walk afresh."""

    file_id: int
    size: int
    validator: Validator


class WalkSource:
    """The transport's :class:`~sa1b.net.curl.RequestSource` for walked shards.

    ``on_ready`` hears of a shard that is walked and complete (to publish it),
    ``on_end`` of one that failed; :attr:`records` collects what the store must
    keep, in order (new identities and checkpoints), for the committer to save.
    """

    def __init__(
        self,
        shards: list[WalkedShard],
        *,
        on_ready: Callable[[WalkedShard], None],
        on_end: Callable[[WalkedShard], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.shards = shards
        self.on_ready, self.on_end = on_ready, on_end
        self.clock = clock
        self.lock = threading.RLock()
        self.ready: deque[WalkedShard] = deque(s for s in shards if s.outcome is None)
        self.records: list[Identity | Checkpoint] = []
        self.fetched = 0
        self.jobs: list[Job] = []
        """Writes of staged pieces, queued for the run's thread to hand to the stager."""
        self.requested = 0
        """Bytes of the requests in flight, by their lengths."""
        self.unwritten = 0
        """Bytes of the pieces queued and not written yet."""
        self.behind = threading.Event()
        """Set when :attr:`held` passes the budget: the queue is to be written now."""
        self.stopping = False
        """The run ends: a stream waiting for the disk goes on, to end too."""
        self._drained = threading.Condition(self.lock)

    @property
    def held(self) -> int:
        """Bytes the walk holds or may soon hold in memory (see :data:`HELD_BUDGET`)."""
        return self.requested + self.unwritten

    def wait_for_disk(self) -> None:
        """Under the lock, for a stream nothing else paces (a server without ranges):
        wait while the pieces waiting for the disk fill the budget. The transport reads
        no socket meanwhile and TCP holds the server back, as a download's writes do."""
        while self.unwritten >= HELD_BUDGET and not self.stopping:
            self.behind.set()
            self._drained.wait(STOP_CHECK)

    # -- RequestSource -------------------------------------------------------

    def next_request(self, slot: int) -> Request | None:
        with self.lock:
            if self.held >= HELD_BUDGET:
                return None  # the disk or the network is behind (asked again each tick)
            now = self.clock()
            for _ in range(len(self.ready)):
                shard = self.ready.popleft()
                if shard.outcome is not None or shard.publishing:
                    continue
                if shard.failures.not_before > now:
                    self.ready.append(shard)
                    continue
                request = self._request(shard)
                if request is not None:
                    if shard.todo and shard.busy < MEMBERS_AT_ONCE:
                        self.ready.append(shard)
                    return request
        return None

    def park(self, slot: int) -> None:
        pass  # a request holds nothing between its end and the next

    @property
    def finished(self) -> bool:
        with self.lock:
            return all(shard.outcome is not None for shard in self.shards)

    def _request(self, shard: WalkedShard) -> Request | None:
        walk = shard.walk
        if shard.walker is None and (walk is None or not walk.finished):
            need = (0, BLOCK) if walk is None else walk.need()
            assert need is not None
            answer = _Answer(self, shard, *need)
            shard.walker = answer
        elif shard.todo and shard.busy < MEMBERS_AT_ONCE:
            part = shard.todo.popleft()
            start = part.entry.offset + part.at
            answer = _Answer(self, shard, start, start + part.length, part)
        else:
            return None
        shard.busy += 1
        start, end = answer.start, answer.stop
        self.requested += end - start
        return Request(shard.link.url, (f"Range: bytes={start}-{end - 1}",), answer)

    # -- what answers report (under the lock) -----------------------------------

    def identify(self, shard: WalkedShard, plan: BodyPlan) -> None:
        """The shard's size and version are known: its walk can start."""
        shard.size, shard.validator = plan.total, plan.validator
        shard.walk = TarWalk(shard.name, plan.total, shard.wanted, layout=shard.layout)
        shard.saved = (0, 0)
        self.records.append(Identity(shard.file_id, plan.total, plan.validator))

    def start_over(self, shard: WalkedShard) -> None:
        """Walk from byte 0 again (a new version, or a server that sends only the whole
        shard): answers in flight are void and so is the staging folder."""
        with shard.write_lock:
            shard.generation += 1
            shutil.rmtree(shard.staging, ignore_errors=True)
        shard.walker, shard.walk = None, None
        shard.todo.clear()
        shard.staged.clear()
        shard.written.clear()

    def changed(self, shard: WalkedShard) -> None:
        unstable = shard.failures.changed(shard.name)
        if unstable is not None:
            self._end(shard, unstable)
            return
        self.start_over(shard)
        shard.size = shard.validator = None

    def ended(self, answer: _Answer, error: SA1BError | None) -> None:
        shard = answer.shard
        shard.busy -= 1
        self.requested -= answer.stop - answer.start
        if shard.walker is answer:
            shard.walker = None
        if answer.generation == shard.generation and shard.outcome is None:
            if error is None and answer.part is not None:
                part = answer.part
                shard.parts_fetched += part.length
                self.stage(shard, Piece(part.entry, part.at, bytes(answer.buffer)), parts=True)
            elif error is not None:
                if answer.part is not None:
                    shard.todo.append(answer.part)
                self._failed(shard, error)
            self._note_checkpoint(shard)
        if shard.outcome is None and not self._publish_if_ready(shard):
            self.ready.append(shard)

    def stage(self, shard: WalkedShard, piece: Piece, *, parts: bool = False) -> None:
        """Queue the writing of ``piece``. A member fetched in parts is written beside its
        name and renamed to it once whole, so that a staged file that has its member's
        size is whole (a run killed mid-member leaves a ``.partial`` file, never trusted)."""
        shard.writing += 1
        self.unwritten += len(piece.data)
        if self.held >= HELD_BUDGET:
            self.behind.set()
        generation, name = shard.generation, piece.entry.name
        path = shard.staging / (f"{name}.partial" if parts else name)

        def write() -> None:  # in a writer thread
            error: OSError | None = None
            whole = False
            try:
                with shard.write_lock:
                    if shard.generation == generation:
                        stage_piece(path, piece)
                whole = self._count(shard, generation, piece)
                if whole and parts:
                    with shard.write_lock:
                        if shard.generation == generation:
                            os.replace(path, shard.staging / name)
            except OSError as failure:
                error = failure
            self._written(shard, generation, piece, whole=whole, error=error)

        self.jobs.append(write)

    def take_jobs(self) -> list[Job]:
        with self.lock:
            jobs, self.jobs = self.jobs, []
        return jobs

    def _count(self, shard: WalkedShard, generation: int, piece: Piece) -> bool:
        """Count a written piece; True for the one that makes its member whole."""
        with self.lock:
            if generation != shard.generation:
                return False
            name = piece.entry.name
            got = shard.written.get(name, 0) + len(piece.data)
            shard.written[name] = got
            return got == piece.entry.size

    def _written(
        self,
        shard: WalkedShard,
        generation: int,
        piece: Piece,
        *,
        whole: bool,
        error: OSError | None,
    ) -> None:
        """A piece's job is done: its member is staged when this piece made it whole."""
        name = piece.entry.name
        with self.lock:
            shard.writing -= 1
            self.unwritten -= len(piece.data)
            self._drained.notify_all()
            if generation != shard.generation or shard.outcome is not None:
                return
            if error is not None:
                problem = f"{shard.staging}: cannot write {name} ({error.strerror})"
                self._end(shard, StorageError(problem))
            elif whole:
                del shard.written[name]
                shard.staged.add(name)
            self._publish_if_ready(shard)

    def _publish_if_ready(self, shard: WalkedShard) -> bool:
        if not shard.ready_to_publish:
            return False
        shard.publishing = True
        self.on_ready(shard)
        return True

    def _note_checkpoint(self, shard: WalkedShard) -> None:
        walk = shard.walk
        if walk is None or walk.checkpoint == shard.saved:
            return
        (at, count), (_, before) = walk.checkpoint, shard.saved
        self.records.append(Checkpoint(shard.file_id, at, tuple(walk.entries[before:count])))
        shard.saved = walk.checkpoint

    def _failed(self, shard: WalkedShard, error: SA1BError) -> None:
        progress, now = shard.progress, self.clock()
        verdict = shard.failures.failed(error, progress=progress, now=now, jitter=random.random())
        if verdict.action == "give up":
            self._end(shard, error, note=verdict.note)

    def _end(self, shard: WalkedShard, error: SA1BError, *, note: str = "") -> None:
        state: FileState = "expired" if isinstance(error, LinkExpiredError) else "failed"
        hint = error.hint or None
        shard.outcome = FileOutcome(shard.name, state, shard.size, error.message + note, hint)
        self.on_end(shard)


class _Answer:
    """The receiver of one request: a step of the walk, or a part of a known member."""

    def __init__(
        self,
        source: WalkSource,
        shard: WalkedShard,
        start: int,
        end: int,
        part: Part | None = None,
    ) -> None:
        self.source, self.shard = source, shard
        self.start, self.stop, self.part = start, end, part
        self.generation = shard.generation
        self.offset = start
        self.refusal: ErrorPage | None = None
        self.whole = False
        """The server sent the whole shard, not the range asked for."""
        self.error: SA1BError | None = None
        self.buffer = bytearray()

    @property
    def current(self) -> bool:
        return self.generation == self.shard.generation and self.shard.outcome is None

    def head(self, head: Head) -> bool:
        self.refusal = ErrorPage.of(head)
        if self.refusal is not None:
            return True  # read its page: it tells an expired link from another refusal
        with self.source.lock:
            if not self.current:
                return False
            return self._judge(head)

    def _judge(self, head: Head) -> bool:
        shard = self.shard
        try:
            plan = judge_range_answer(
                head.status,
                head.headers,
                start=self.start,
                end=self.stop,
                size=shard.size,
                validator=shard.validator,
                name=shard.name,
                url=redact(shard.link.url),
            )
        except SA1BError as error:
            self.error = error
            return False
        if plan.kind == "changed":
            self.source.changed(shard)
            return False
        if plan.kind == "whole":  # no ranges here: the walk reads the one stream
            if shard.walk is not None:
                self.source.start_over(shard)
            self.generation, self.part, self.offset = shard.generation, None, 0
            self.whole = True
            shard.walker = self
        if shard.walk is None:
            self.source.identify(shard, plan)
        return True

    def body(self, data: bytes) -> bool:
        if self.refusal is not None:
            return self.refusal.add(data)
        with self.source.lock:
            if self.whole:
                self.source.wait_for_disk()
            if not self.current:
                return False
            self.source.fetched += len(data)
            try:
                return self._take(data)
            except SA1BError as error:
                self.error = error
                return False

    def _take(self, data: bytes) -> bool:
        if self.part is not None:
            self.buffer += data
            self.offset += len(data)
            return True
        walk = self.shard.walk
        assert walk is not None
        try:
            pieces = walk.feed(self.offset, data)
        except ValueError as error:
            if isinstance(error, SA1BError):
                raise
            raise BadResponseError(f"an answer out of step with the walk: {error}") from None
        self.offset += len(data)
        for piece in pieces:
            self.source.stage(self.shard, piece)
        return not walk.finished

    def end(self, error: TransferError | None) -> None:
        failure: SA1BError | None = self.error or error
        if self.refusal is not None:
            failure = self.refusal.error(self.shard.link, now=time.time())
        with self.source.lock:
            if failure is None and self.offset == self.start and self.current:
                failure = BadResponseError("an answer without a byte", name=self.shard.name)
            elif failure is None and self.part is not None and self.offset != self.stop:
                failure = BadResponseError(
                    f"{self.part.entry.name}: {self.offset - self.start} of "
                    f"{self.part.length} bytes arrived",
                    name=self.shard.name,
                )
            self.source.ended(self, failure)
