"""The walk body: what the answers of a shard fetched member by member feed (``--only``).

A shard is walked by range reads (:class:`~sa1b.tarwalk.TarWalk`): one request in
flight per shard, since each header says where the next one is, and many shards at
once, so that their round trips overlap. Members a resumed walk already knows of (its
catalog) are fetched by their own ranges, :data:`MEMBERS_AT_ONCE` at a time. A server
that ignores ranges answers with the whole shard: the walk then reads that one stream,
keeping what it wants. Wanted bytes go to the shard's staging folder, one file per
member; once the shard is walked and every member written, the publisher moves them
into the layout (:meth:`WalkBody.publish`).

Requests are made and answered in the transport's thread, under the run's lock. The
writing of staged pieces is queued as jobs, which the supervising loop hands to the
writer threads of :mod:`sa1b.engine.staging` at each tick (:meth:`Walks.save`), then
syncs the staging folder and saves the walks' checkpoints, as it commits a file's
ranges after ``fdatasync``.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from sa1b.config import DownloadConfig
from sa1b.engine.run import Run
from sa1b.engine.slots import BodyAnswer
from sa1b.engine.staging import Job, Stager, stage_piece
from sa1b.engine.startup import size_of
from sa1b.engine.tasks import Task
from sa1b.errors import (
    BadResponseError,
    NameClashError,
    SA1BError,
    StorageError,
    TransferError,
    UnsafeMemberError,
)
from sa1b.extract.shard import same_file
from sa1b.layout import Layout, member_target
from sa1b.lifecycle import next_state
from sa1b.links import Link, object_key, redact
from sa1b.net.governor import GovernorPolicy
from sa1b.net.heads import Head
from sa1b.progress import FileOutcome
from sa1b.reconcile import MemberFacts, reconcile_walk
from sa1b.records import Status
from sa1b.store.state import StateStore
from sa1b.store.walks import (
    Checkpoint,
    WalkRecord,
    finish_walk,
    load_walk,
    save_checkpoints,
    start_walk,
)
from sa1b.store.writeback import fsync_dir, sync_fs
from sa1b.tarformat import BLOCK, Header
from sa1b.tarwalk import CHUNK, Entry, Piece, TarWalk
from sa1b.versions import Validator

STAGING = "only"
"""In the output folder's staging: one folder per shard being walked."""
MEMBERS_AT_ONCE = 4
"""Known members of one shard fetched by their ranges at the same time."""
HELD_BUDGET = 64 * 1024 * 1024
"""Bytes the walks may hold in memory (their requests in flight, by their lengths, and
the staged pieces waiting for the disk) before none makes a new request: a disk slower
than the network then paces the walks, instead of the queue of pieces growing by the
difference, and a thousand shards walked at once do not buffer a chunk each. Past it,
the supervising loop writes the queue at once rather than at its next tick. A request
is at most a :data:`~sa1b.tarwalk.CHUNK` and a header: the walks hold at most this and
one such request. A server without ranges sends each shard as one stream, which no
request bounds: that stream waits while the pieces fill the budget
(:meth:`Walks.wait_for_disk`)."""
STOP_CHECK = 0.25
"""Seconds between looks at whether the run stops, while a stream waits for the disk."""


def walked_at_once(slots: int) -> int:
    """Shards walked at once (``max_files`` of a walking run): a shard has one request
    in flight while it walks, so as many shards as connections keep every connection
    busy while each waits for its round trip; a shard being published counts too, as a
    file being verified does."""
    return slots


@dataclass(frozen=True, slots=True)
class Wanted:
    """Which members a run wants: those whose name ends with ``.<kind>``."""

    kind: str

    def __call__(self, name: str) -> bool:
        return name.lower().endswith(f".{self.kind}")


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


class Walks:
    """What every walk of a run shares: the memory budget, the queue of staged writes,
    and the records the store is to keep, saved by the supervising loop at each tick.
    Guarded by the run's lock."""

    def __init__(
        self,
        run: Run,
        *,
        wanted: Wanted,
        abort: Callable[[SA1BError], None],
    ) -> None:
        assert run.config.extract is not None
        self.run = run
        self.config: DownloadConfig = run.config
        self.layout: Layout = run.config.extract.layout
        self.wanted = wanted
        self.abort = abort
        self.root = run.config.paths.staging / STAGING
        self.settle: Callable[[Task], None] = lambda task: None
        """Hears of a task whose body may have become complete (set by the scheduler)."""
        self.records: list[Identity | Checkpoint] = []
        self.jobs: list[Job] = []
        """Writes of staged pieces, queued for the supervising loop to hand to the stager."""
        self.requested = 0
        """Bytes of the requests in flight, by their lengths."""
        self.unwritten = 0
        """Bytes of the pieces queued and not written yet."""
        self.tick_now = threading.Event()
        self.ready_queue = True  # see Kind
        self.whole_files = False  # see Kind
        """Set when :attr:`held` passes the budget: the queue is to be written now."""
        self.stager = Stager()
        self._saving = threading.Lock()
        self._drained = threading.Condition(run.lock)

    def body(self, task: Task) -> WalkBody:
        return WalkBody(self, self.root / task.name)

    # -- the Kind ------------------------------------------------------------------

    def prepare(self, link: Link) -> Task:
        """The task of a shard walked member by member, as the store and the disk
        leave it (the decision is :func:`~sa1b.reconcile.reconcile_walk`'s)."""
        return _prepare_walk(self.run, link, self)

    def at_once(self, slots: int) -> int:
        return walked_at_once(slots)

    def policy(self) -> GovernorPolicy:
        """A walk's requests are round trips, not bulk: the throughput the governor
        measures would not tell it how many to keep, so they are all kept."""
        config = self.config
        return GovernorPolicy.fixed(config.connections or config.max_connections)

    def walked(self, tasks: Sequence[Task]) -> int | None:
        """The sizes of the shards walked."""
        return sum(task.size or 0 for task in tasks)

    @property
    def held(self) -> int:
        """Bytes the walks hold or may soon hold in memory (see :data:`HELD_BUDGET`)."""
        return self.requested + self.unwritten

    def wait_for_disk(self) -> None:
        """Under the lock, for a stream nothing else paces (a server without ranges):
        wait while the pieces waiting for the disk fill the budget. The transport reads
        no socket meanwhile and TCP holds the server back, as a download's writes do."""
        while self.unwritten >= HELD_BUDGET and not self.run.stopping:
            self.tick_now.set()
            self._drained.wait(STOP_CHECK)

    # -- the supervising loop's ---------------------------------------------------

    def save(self) -> None:
        """Write the queued pieces, sync the staging folder, then save what the walks
        reached (from the supervising loop, and from the publisher before it publishes)."""
        with self._saving:
            with self.run.lock:
                records, self.records = self.records, []
                jobs, self.jobs = self.jobs, []
            self.stager.run(jobs)  # every piece the records below name
            if not records:
                return
            try:
                if self.root.exists():
                    sync_fs(self.root)  # every byte a checkpoint names, on disk before it
            except OSError as error:
                message = f"{self.root}: cannot sync the staged members: {error.strerror}"
                raise StorageError(message) from None
            store = self.run.store
            checkpoints: list[Checkpoint] = []
            for record in records:
                if isinstance(record, Identity):
                    save_checkpoints(store, checkpoints)
                    checkpoints = []
                    start_walk(store, record.file_id, record.size, record.validator)
                else:
                    checkpoints.append(record)
            save_checkpoints(store, checkpoints)

    def close(self) -> None:
        self.stager.close()

    # -- staged pieces ---------------------------------------------------------

    def stage(self, task: Task, body: WalkBody, piece: Piece, *, parts: bool = False) -> None:
        """Queue the writing of ``piece``. A member fetched in parts is written beside its
        name and renamed to it once whole, so that a staged file that has its member's
        size is whole (a run killed mid-member leaves a ``.partial`` file, never trusted)."""
        body.writing += 1
        self.unwritten += len(piece.data)
        if self.held >= HELD_BUDGET:
            self.tick_now.set()
        generation, name = body.generation, piece.entry.name
        path = body.staging / (f"{name}.partial" if parts else name)

        def write() -> None:  # in a writer thread
            error: OSError | None = None
            whole = False
            try:
                with task.writing:
                    if body.generation == generation:
                        stage_piece(path, piece)
                whole = self._count(body, generation, piece)
                if whole and parts:
                    with task.writing:
                        if body.generation == generation:
                            os.replace(path, body.staging / name)
            except OSError as failure:
                error = failure
            self._written(task, body, generation, piece, whole=whole, error=error)

        self.jobs.append(write)

    def _count(self, body: WalkBody, generation: int, piece: Piece) -> bool:
        """Count a written piece; True for the one that makes its member whole."""
        with self.run.lock:
            if generation != body.generation:
                return False
            name = piece.entry.name
            got = body.written.get(name, 0) + len(piece.data)
            body.written[name] = got
            return got == piece.entry.size

    def _written(
        self,
        task: Task,
        body: WalkBody,
        generation: int,
        piece: Piece,
        *,
        whole: bool,
        error: OSError | None,
    ) -> None:
        """A piece's job is done: its member is staged when this piece made it whole. A
        staging folder that cannot be written ends the run, as a partial file does."""
        name = piece.entry.name
        with self.run.lock:
            body.writing -= 1
            self.unwritten -= len(piece.data)
            self._drained.notify_all()
            if generation != body.generation:
                return
            if error is not None:
                self.abort(StorageError(f"{body.staging}: cannot write {name} ({error.strerror})"))
                return
            if whole:
                del body.written[name]
                body.staged.add(name)
            self.settle(task)

    # -- what answers report (under the lock) -----------------------------------

    def identify(self, task: Task, body: WalkBody, size: int, validator: Validator) -> None:
        """The shard's size and version are known: its walk can start."""
        task.size, task.validator = size, validator
        body.walk = TarWalk(task.name, size, self.wanted, layout=self.layout)
        body.saved = (0, 0)
        self.records.append(Identity(task.id, size, validator))

    def note_checkpoint(self, task: Task, body: WalkBody) -> None:
        walk = body.walk
        if walk is None or walk.checkpoint == body.saved:
            return
        (at, count), (_, before) = walk.checkpoint, body.saved
        self.records.append(Checkpoint(task.id, at, tuple(walk.entries[before:count])))
        body.saved = walk.checkpoint


@dataclass(eq=False)
class WalkBody:
    """One walked shard's body (:class:`~sa1b.engine.bodies.Body`): its walk, the
    members still to fetch, what is staged."""

    walks: Walks
    staging: Path
    walk: TarWalk | None = None
    todo: deque[Part] = field(default_factory=deque)
    """Members of the catalog to fetch by their ranges."""
    staged: set[str] = field(default_factory=set)
    """Wanted members whose every byte is in the staging folder."""
    written: dict[str, int] = field(default_factory=dict)
    """Bytes of members on their way into the staging folder, written so far."""
    writing: int = 0
    """Pieces handed to the stager and not written yet."""
    generation: int = 0
    """Moves on when the walk starts over: answers to older requests write nothing."""
    walker: WalkAnswer | None = None
    """The walk's request in flight, if any (one at a time)."""
    busy: int = 0
    """Requests of this shard in flight (the walk's and its members')."""
    parts_fetched: int = 0
    """Bytes of the catalog's members that arrived in whole parts."""
    saved: tuple[int, int] = (0, 0)
    """The walk's checkpoint last queued to be saved."""

    # -- Body -------------------------------------------------------------------

    @property
    def claimable(self) -> bool:
        walk = self.walk
        stepping = self.walker is None and (walk is None or not walk.finished)
        return stepping or bool(self.todo and self.busy < MEMBERS_AT_ONCE)

    @property
    def progress(self) -> int:
        """The walk's next byte (a header still incomplete included: a request cut
        mid-header kept its bytes) and the bytes of members fetched by their ranges."""
        walk = self.walk
        if walk is None:
            return self.parts_fetched
        need = walk.need()
        return (need[0] if need else walk.size) + self.parts_fetched

    @property
    def done_bytes(self) -> int:
        """Bytes of the shard walked through so far."""
        return self.walk.checkpoint[0] if self.walk else 0

    @property
    def complete(self) -> bool:
        walked = self.walk is not None and self.walk.finished
        return walked and not (self.todo or self.busy or self.writing)

    def claim(self, task: Task) -> WalkAnswer | None:
        if self.walks.held >= HELD_BUDGET:
            return None  # the disk or the network is behind: every walk waits (asked each tick)
        walk = self.walk
        if self.walker is None and (walk is None or not walk.finished):
            need = (0, BLOCK) if walk is None else walk.need()
            assert need is not None
            answer = WalkAnswer(task, self, *need)
            self.walker = answer
        elif self.todo and self.busy < MEMBERS_AT_ONCE:
            part = self.todo.popleft()
            start = part.entry.offset + part.at
            answer = WalkAnswer(task, self, start, start + part.length, part)
        else:
            return None
        self.busy += 1
        self.walks.requested += answer.stop - answer.start
        return answer

    def publish(self, task: Task) -> str:
        """Move the staged members into place, then record the shard as walked; a member
        already in place from another kind (``--only jpg`` after ``--only json``) stays."""
        walks = self.walks
        walk, out, layout, kind = self.walk, walks.config.out, walks.layout, walks.wanted.kind
        assert walk is not None
        walks.save()  # its identity and checkpoints first: the store's row to finish
        if self.staging.exists():
            sync_fs(self.staging)
        moves: list[tuple[Path, Path]] = []
        for entry in walk.entries:
            if not walks.wanted(entry.name):
                continue
            staged = self.staging / entry.name
            if entry.size == 0:
                staged.parent.mkdir(parents=True, exist_ok=True)
                staged.touch()
            elif entry.name not in self.staged:
                continue  # in place since an earlier run
            target = out / member_place(task.name, entry, layout)
            if layout == "flat" and target.exists() and not same_file(staged, target):
                raise NameClashError(
                    f"{entry.name} is already in {out} with other contents (from another shard)",
                    shard=task.name,
                    member=entry.name,
                )
            moves.append((staged, target))
        folders = {target.parent for _, target in moves}
        for folder in folders:
            folder.mkdir(parents=True, exist_ok=True)
        for staged, target in moves:
            staged.replace(target)
        for folder in folders:
            fsync_dir(folder)
        store = walks.run.store
        published = {f"{layout}:{kind}"}
        saved = load_walk(store, task.id)
        if saved is not None and saved.complete:
            published |= saved.published
        finish_walk(store, task.id, walk.entries, published)
        self.record_status(task, "pending", None)  # walked; the tar itself is not here
        shutil.rmtree(self.staging, ignore_errors=True)
        wanted = sum(1 for entry in walk.entries if walks.wanted(entry.name))
        return f"{wanted} {kind} files"

    def record_status(self, task: Task, status: Status, message: str | None) -> None:
        """The file's status says how its walk ended, unless a whole download of it has
        begun in this folder (its own status is the one to keep)."""
        store: StateStore = self.walks.run.store
        record = store.get(task.name)
        if record is not None and not record.ranges and record.status != "done":
            store.set_status(task.id, status, message)

    # -- what its answers change (under the lock) ---------------------------------

    def start_over(self, task: Task) -> None:
        """Walk from byte 0 again (a new version, or a server that sends only the whole
        shard): answers in flight are void and so is the staging folder."""
        with task.writing:
            self.generation += 1
            shutil.rmtree(self.staging, ignore_errors=True)
        self.walker, self.walk = None, None
        self.todo.clear()
        self.staged.clear()
        self.written.clear()

    def answered(self, task: Task, answer: WalkAnswer, failure: SA1BError | None) -> None:
        """An answer is over: its part staged or asked for again, its checkpoint queued."""
        self.busy -= 1
        self.walks.requested -= answer.stop - answer.start
        if self.walker is answer:
            self.walker = None
        if answer.generation != self.generation:
            return
        if answer.part is not None:
            if failure is None:
                part = answer.part
                self.parts_fetched += part.length
                piece = Piece(part.entry, part.at, bytes(answer.buffer))
                self.walks.stage(task, self, piece, parts=True)
            else:
                self.todo.append(answer.part)
        self.walks.note_checkpoint(task, self)


def _prepare_walk(run: Run, link: Link, walks: Walks) -> Task:
    """The task of a shard walked member by member, as the store and the disk leave it."""
    store = run.store
    record = store.register(link.name, object_key(link.url))
    task = Task(
        link=link, id=record.id, generation=record.generation, failures=run.config.failure_account()
    )
    body = task.body = walks.body(task)
    saved = load_walk(store, record.id)
    published = saved is not None and f"{walks.layout}:{walks.wanted.kind}" in saved.published
    try:
        members = _member_facts(run, link, walks, saved, published=published)
    except UnsafeMemberError as error:
        task.state, task.halted, task.size = next_state(task.state, "fail"), True, record.size
        task.outcome = FileOutcome(link.name, "failed", record.size, error.message, error.hint)
        return task
    action = reconcile_walk(
        extracted=record.extracted,
        layout=walks.layout,
        walked=saved is not None,
        complete=saved is not None and saved.complete,
        published=published,
        members=members,
    )
    if action.start == "extracted":  # the whole shard is here already
        task.state, task.size = next_state(task.state, "found-done"), record.size
        task.outcome = FileOutcome(link.name, "done", record.size, "already extracted")
    elif action.start == "fresh":
        shutil.rmtree(body.staging, ignore_errors=True)
    else:
        assert saved is not None
        task.size, task.validator = saved.size, saved.validator
        if action.start == "done":
            task.state = next_state(task.state, "found-done")
            message = f"{walks.wanted.kind} already there"
            task.outcome = FileOutcome(link.name, "done", saved.size, message)
            return task
        start = None if saved.complete else saved.next
        body.walk = TarWalk(
            link.name,
            saved.size,
            walks.wanted,
            layout=walks.layout,
            start=start,
            entries=saved.entries,
        )
        body.saved = body.walk.checkpoint
        body.staged.update(action.staged)
        fetch = set(action.fetch)
        for entry in saved.entries:
            if entry.name in fetch:
                body.todo.extend(parts_of(entry))
    return task


def _member_facts(
    run: Run, link: Link, walks: Walks, saved: WalkRecord | None, *, published: bool
) -> list[MemberFacts]:
    """What the disk holds of each wanted member of the shard's catalog (raises
    :class:`~sa1b.errors.UnsafeMemberError` for a member with no safe place)."""
    if saved is None:
        return []
    staging = walks.root / link.name
    return [
        MemberFacts(
            entry.name,
            entry.size,
            placed=size_of(run.config.out / member_place(link.name, entry, walks.layout))
            if published
            else None,
            staged=size_of(staging / entry.name),
        )
        for entry in saved.entries
        if walks.wanted(entry.name) and entry.size
    ]


def member_place(shard: str, entry: Entry, layout: Layout) -> PurePosixPath:
    """Where a member goes in the layout (checked as extraction checks it: raises
    :class:`~sa1b.errors.UnsafeMemberError`)."""
    target = member_target(Header(entry.name, entry.size, b"0"), shard=shard, layout=layout)
    assert target is not None  # a regular member always has a place
    return target


class WalkAnswer(BodyAnswer):
    """A walk's request and the receiver of its answer (a :class:`~sa1b.engine.bodies.
    Claim`): a step of the walk, or a part of a known member. Its head is judged as
    every answer's is (:func:`~sa1b.engine.slots.judge_head`)."""

    shard: WalkBody
    again = "walking"

    def __init__(
        self, task: Task, shard: WalkBody, start: int, end: int, part: Part | None = None
    ) -> None:
        super().__init__(task, shard, start, end)
        self.walks, self.part, self.offset = shard.walks, part, start
        self.whole = False
        """The server sent the whole shard, not the range asked for."""
        self.buffer = bytearray()

    def start_over(self) -> None:
        super().start_over()
        self.task.size, self.task.validator = None, Validator()

    # -- the transport's Receiver --------------------------------------------

    def head(self, head: Head) -> bool:
        task, shard = self.task, self.shard
        with self.walks.run.lock:
            judged = self.judged(head)
            if judged is None:
                return self.refusal is not None
            if judged.kind == "whole":  # no ranges here: the walk reads the one stream
                if shard.walk is not None:
                    shard.start_over(task)
                self.generation, self.part, self.offset = shard.generation, None, 0
                self.whole = True
                shard.walker = self
            if shard.walk is None:
                self.walks.identify(task, shard, judged.total, judged.validator)
            return True

    def body(self, data: bytes) -> bool:
        if self.refusal is not None:
            return self.refusal.add(data)
        with self.walks.run.lock:
            if self.whole:
                self.walks.wait_for_disk()
            if not self.current:
                return False
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
            raise BadResponseError(
                f"an answer out of step with the walk: {error}",
                name=self.task.name,
                url=redact(self.task.link.url),
            ) from None
        self.offset += len(data)
        for piece in pieces:
            self.walks.stage(self.task, self.shard, piece)
        return not walk.finished

    def end(self, error: TransferError | None) -> None:
        task, shard = self.task, self.shard
        failure = self.failure(error)
        with self.walks.run.lock:
            if failure is None and self.offset == self.start and self.current:
                failure = BadResponseError("an answer without a byte", name=task.name)
            elif failure is None and self.part is not None and self.offset != self.stop:
                failure = BadResponseError(
                    f"{self.part.entry.name}: {self.offset - self.start} of "
                    f"{self.part.length} bytes arrived",
                    name=task.name,
                )
            shard.answered(task, self, failure)
            stale = self.generation != shard.generation
        self.ended(None if stale else failure)
