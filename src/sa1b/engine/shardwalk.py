"""The requests of a run that fetches some members of each shard (``--only``).

Each shard is walked by range reads (:class:`~sa1b.tarwalk.TarWalk`): one request in
flight per shard, since each header says where the next one is, and many shards at
once, so that their round trips overlap. Members a resumed walk already knows of
(its catalog) are fetched by their own ranges, several at once. A server that
ignores ranges answers with the whole shard: the walk then reads that one stream,
keeping what it wants. Wanted bytes go to the shard's staging folder, one file per
member; :mod:`sa1b.engine.selective` publishes them once the shard is walked.

Everything here runs in the transport's thread, under the source's lock.
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

from sa1b.errors import (
    BadResponseError,
    LinkExpiredError,
    RetryableError,
    SA1BError,
    StorageError,
    TransferError,
    UnstableSourceError,
)
from sa1b.layout import Layout
from sa1b.links import Link, redact
from sa1b.net.answers import BodyPlan, error_for_status, judge_range_answer
from sa1b.net.curl import Request
from sa1b.net.heads import Head
from sa1b.progress import FileOutcome, FileState
from sa1b.retry import RetryPolicy
from sa1b.store.walks import Checkpoint
from sa1b.tarformat import BLOCK
from sa1b.tarwalk import Entry, Piece, TarWalk
from sa1b.versions import Validator

ERROR_BODY = 2048
"""Bytes of an error page read, to tell an expired link from another refusal."""
MEMBERS_AT_ONCE = 4
"""Known members of one shard fetched by their ranges at the same time."""
MAX_RESTARTS = 3
"""New versions of one shard tolerated in a run (then the server is flapping)."""


@dataclass(eq=False)
class WalkedShard:
    """One shard of the run: its walk, the members still to fetch, how it ends."""

    link: Link
    file_id: int
    staging: Path
    wanted: Callable[[str], bool]
    layout: Layout
    size: int | None = None
    validator: Validator | None = None
    walk: TarWalk | None = None
    todo: deque[Entry] = field(default_factory=deque)
    """Members of the catalog to fetch by their ranges."""
    staged: set[str] = field(default_factory=set)
    """Wanted members whose every byte is in the staging folder."""
    generation: int = 0
    """Moves on when the walk starts over: answers to older requests write nothing."""
    walker: object | None = None
    """The walk's request in flight, if any (one at a time)."""
    busy: int = 0
    failures: int = 0
    progress_at_failure: int = -1
    not_before: float = 0.0
    restarts: int = 0
    saved: tuple[int, int] = (0, 0)
    fetched: int = 0
    publishing: bool = False
    outcome: FileOutcome | None = None

    @property
    def name(self) -> str:
        return self.link.name

    @property
    def progress(self) -> int:
        """How far the shard got: a failure after progress starts a new count."""
        return self.reached + len(self.staged)

    @property
    def reached(self) -> int:
        """Bytes of the shard walked through so far."""
        return self.walk.checkpoint[0] if self.walk else 0

    @property
    def ready_to_publish(self) -> bool:
        walked = self.walk is not None and self.walk.finished
        return walked and not self.todo and not self.busy and self.outcome is None


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
        policy: RetryPolicy,
        on_ready: Callable[[WalkedShard], None],
        on_end: Callable[[WalkedShard], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.shards = shards
        self.policy = policy
        self.on_ready, self.on_end = on_ready, on_end
        self.clock = clock
        self.lock = threading.RLock()
        self.ready: deque[WalkedShard] = deque(s for s in shards if s.outcome is None)
        self.records: list[Identity | Checkpoint] = []
        self.fetched = 0

    # -- RequestSource -------------------------------------------------------

    def next_request(self, slot: int) -> Request | None:
        with self.lock:
            now = self.clock()
            for _ in range(len(self.ready)):
                shard = self.ready.popleft()
                if shard.outcome is not None or shard.publishing:
                    continue
                if shard.not_before > now:
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
            entry = shard.todo.popleft()
            answer = _Answer(self, shard, entry.offset, entry.offset + entry.size, entry)
        else:
            return None
        shard.busy += 1
        start, end = answer.start, answer.stop
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
        shard.generation += 1
        shard.walker, shard.walk = None, None
        shard.todo.clear()
        shard.staged.clear()
        shutil.rmtree(shard.staging, ignore_errors=True)

    def changed(self, shard: WalkedShard) -> None:
        shard.restarts += 1
        if shard.restarts > MAX_RESTARTS:
            error = UnstableSourceError(
                f"the shard changed {shard.restarts} times during this run", name=shard.name
            )
            self._end(shard, error)
            return
        self.start_over(shard)
        shard.size = shard.validator = None

    def ended(self, answer: _Answer, error: SA1BError | None) -> None:
        shard = answer.shard
        shard.busy -= 1
        if shard.walker is answer:
            shard.walker = None
        if answer.generation == shard.generation and shard.outcome is None:
            if error is None and answer.entry is not None:
                shard.staged.add(answer.entry.name)
            elif error is not None:
                if answer.entry is not None:
                    shard.todo.append(answer.entry)
                self._failed(shard, error)
            self._note_checkpoint(shard)
        if shard.outcome is None:
            if shard.ready_to_publish and not shard.publishing:
                shard.publishing = True
                self.on_ready(shard)
            else:
                self.ready.append(shard)

    def _note_checkpoint(self, shard: WalkedShard) -> None:
        walk = shard.walk
        if walk is None or walk.checkpoint == shard.saved:
            return
        (at, count), (_, before) = walk.checkpoint, shard.saved
        self.records.append(Checkpoint(shard.file_id, at, tuple(walk.entries[before:count])))
        shard.saved = walk.checkpoint

    def _failed(self, shard: WalkedShard, error: SA1BError) -> None:
        if not isinstance(error, RetryableError):
            self._end(shard, error)
            return
        now = self.clock()
        if now < shard.not_before:
            return  # the same outage as a failure already counted
        if shard.progress > shard.progress_at_failure:
            shard.failures, shard.progress_at_failure = 0, shard.progress
        shard.failures += 1
        delay = self.policy.delay(error, shard.failures, jitter=random.random())
        if delay is None:
            self._end(shard, error)
        else:
            shard.not_before = now + delay

    def _end(self, shard: WalkedShard, error: SA1BError) -> None:
        state: FileState = "expired" if isinstance(error, LinkExpiredError) else "failed"
        hint = error.hint or None
        shard.outcome = FileOutcome(shard.name, state, shard.size, error.message, hint)
        self.on_end(shard)


class _Answer:
    """The receiver of one request: a step of the walk, or one known member."""

    def __init__(
        self,
        source: WalkSource,
        shard: WalkedShard,
        start: int,
        end: int,
        entry: Entry | None = None,
    ) -> None:
        self.source, self.shard = source, shard
        self.start, self.stop, self.entry = start, end, entry
        self.generation = shard.generation
        self.offset = start
        self.refusal: Head | None = None
        self.page = b""
        self.error: SA1BError | None = None
        self.fd: int | None = None

    @property
    def current(self) -> bool:
        return self.generation == self.shard.generation and self.shard.outcome is None

    def head(self, head: Head) -> bool:
        if head.status not in (200, 206):
            self.refusal = head
            return True  # read the page: it tells an expired link from another refusal
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
            self.generation, self.entry, self.offset = shard.generation, None, 0
            shard.walker = self
        if shard.walk is None:
            self.source.identify(shard, plan)
        if self.entry is not None:
            try:
                self.fd = self._open(self.entry, truncate=True)
            except OSError as error:
                self.error = StorageError(f"{shard.staging}: cannot write ({error.strerror})")
                return False
        return True

    def body(self, data: bytes) -> bool:
        if self.refusal is not None:
            self.page += data[: ERROR_BODY - len(self.page)]
            return len(self.page) < ERROR_BODY
        with self.source.lock:
            if not self.current:
                return False
            self.shard.fetched += len(data)
            self.source.fetched += len(data)
            try:
                return self._take(data)
            except SA1BError as error:
                self.error = error
                return False
            except OSError as error:
                self.error = StorageError(f"{self.shard.staging}: cannot write ({error.strerror})")
                return False

    def _take(self, data: bytes) -> bool:
        if self.fd is not None:
            os.write(self.fd, data)
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
            self._write(piece)
        return not walk.finished

    def _write(self, piece: Piece) -> None:
        fd = self._open(piece.entry, truncate=piece.at == 0)
        try:
            os.pwrite(fd, piece.data, piece.at)
        finally:
            os.close(fd)
        if piece.last:
            self.shard.staged.add(piece.entry.name)

    def _open(self, entry: Entry, *, truncate: bool) -> int:
        path = self.shard.staging / entry.name
        path.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if truncate else 0)
        return os.open(path, flags, 0o644)

    def end(self, error: TransferError | None) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        failure: SA1BError | None = self.error or error
        if self.refusal is not None:
            link = self.shard.link
            failure = error_for_status(
                self.refusal.status,
                self.refusal.headers,
                self.page,
                now=time.time(),
                name=link.name,
                url=link.url,
                redacted=redact(link.url),
            )
        with self.source.lock:
            if failure is None and self.offset == self.start and self.current:
                failure = BadResponseError("an answer without a byte", name=self.shard.name)
            elif failure is None and self.entry is not None and self.offset != self.stop:
                failure = BadResponseError(
                    f"{self.entry.name}: {self.offset - self.start} of {self.entry.size} "
                    "bytes arrived",
                    name=self.shard.name,
                )
            self.source.ended(self, failure)
