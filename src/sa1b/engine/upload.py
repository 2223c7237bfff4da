"""The upload body: a shard streamed from ranged downloads into one multipart upload (``-o
s3://BUCKET/PREFIX --no-extract``), with no byte of it on the local disk. (A tar made
from a shard, ``--layout wds`` or ``--only json``, is this body with what fills a part
changed: :mod:`sa1b.engine.repack`.)

A shard is cut into parts (:class:`~sa1b.objectstore.parts.PartPlan`, 8 MiB by default).
A part's bytes are gathered in a buffer of its length, taken from the run's memory
budget (:class:`~sa1b.objectstore.parts.MemoryBudget`) when the part is opened
(:class:`Filling`), by several ranged requests of at most a chunk each (1 MiB by
default), the lowest unfinished part's first: over connections a CDN caps, a part is
then whole in a fraction of the time one request would take, and few parts are in flight
half-filled (what a SIGKILL loses). A request that fails keeps what arrived, and the
next asks for the rest only; the buffer goes back to the budget only once no request may
write into it. A tar's part is one stretch of the source cut into chunks; a tar made
from a shard fills its parts from stretches of members' data
(:meth:`UploadBody.stretches`). A whole part goes to the uploader threads, and to the
readers that read the parts in order (:mod:`sa1b.engine.uploads`, whose
:class:`~sa1b.engine.uploads.Uploads` holds what every upload of a run shares: the
bucket, the memory budget, the threads, the records to save).

Once every part is in, the publisher checks the sum of the sizes and the digest, and
only then completes the upload (CompleteMultipartUpload: the object appears under its
key), puts the shard's catalog beside it (:mod:`sa1b.catalog`:
``PREFIX/.sa1b/index/sa_000020.tar.idx``, tied to the object's size and ETag, which
``sa1b.open`` reads in one GET), records the shard done and refreshes the state copy in
the bucket. Wrong data (a digest that does not match, a source that changed, a tar the
walk finds damaged: the same one-line verdict as extraction's) aborts the upload; a
shard stopped by an expired link, an interruption or a crash keeps its upload for the
next run, which asks the bucket (ListParts) which parts it holds
(:meth:`~sa1b.engine.uploads.Uploads.prepare`).
"""

from __future__ import annotations

import hashlib
import heapq
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from sa1b.engine.bodies import Claim, Ended
from sa1b.engine.slots import BodyAnswer
from sa1b.engine.tasks import Task
from sa1b.errors import (
    BadResponseError,
    ChecksumMismatchError,
    ExtractionError,
    FatalTransferError,
    SA1BError,
    SizeMismatchError,
    TransferError,
)
from sa1b.inventory import file_of
from sa1b.links import is_shard_name, redact
from sa1b.net.answers import BodyPlan, ErrorPage
from sa1b.net.heads import Head
from sa1b.objectstore.bucket import (
    UploadedPart,
)
from sa1b.objectstore.parts import PartPlan
from sa1b.records import Status
from sa1b.repack import Copied
from sa1b.store.uploads import (
    UploadForgotten,
    UploadRecord,
    WalkPoint,
    WalkReached,
    finish_upload,
)
from sa1b.tarwalk import Entry, TarWalk, headers_only
from sa1b.versions import Validator

if TYPE_CHECKING:
    from hashlib import _Hash

    from sa1b.engine.uploads import Uploads

log = logging.getLogger(__name__)

T = TypeVar("T")

READERS = 2
"""Threads reading the parts in order (a walk costs little; a digest, a core's share)."""


@dataclass(eq=False)
class UploadBody:
    """One shard's upload (:class:`~sa1b.engine.bodies.Body`): its parts to fetch, being
    fetched, being sent, and in the bucket."""

    uploads: Uploads
    key: str
    """Its key under the prefix: ``tars/sa_000020.tar``, as in a local output folder."""
    plan: PartPlan | None = None
    upload_id: str | None = None
    todo: list[int] = field(default_factory=list)
    """Parts to fetch (a heap: the lowest first, so that a shard completes in order)."""
    parts: dict[int, Filling] = field(default_factory=dict)
    """Parts opened and not yet whole, by number."""
    fetching: int = 0
    sending: int = 0
    uploaded: dict[int, UploadedPart] = field(default_factory=dict)
    reread: set[int] = field(default_factory=set)
    """Parts the bucket holds, fetched again to be read in order alone: for the digest
    (``--checksums``: every one), or for the walk (those from where it goes on)."""
    hasher: _Hash | None = None
    walk: TarWalk | None = None
    """The walk of a shard's tar: its catalog so far."""
    walk_saved: tuple[int, int] = (0, 0)
    """The walk's resume point last queued to be saved (offset, entries before it)."""
    verdict: ExtractionError | None = None
    """What the walk found wrong with the tar: nothing more is fetched, and once nothing
    is in flight, publishing aborts the upload and fails the shard with it."""
    next_read: int = 1
    """The next part to read in order (past the last part: nothing to read)."""
    unread: dict[int, bytearray] = field(default_factory=dict)
    """Parts sent, waiting in memory for those before them to be read."""
    received: int = 0
    generation: int = 0
    """Moves on when the shard starts over: answers and parts of before are void."""
    creating: threading.Lock = field(default_factory=threading.Lock)
    reading: threading.Lock = field(default_factory=threading.Lock)

    def resume(
        self,
        task: Task,
        upload_id: str,
        plan: PartPlan,
        kept: dict[int, UploadedPart],
        *,
        walked: WalkPoint | None = None,
    ) -> None:
        """Continue ``upload_id``: the parts ``kept`` are in the bucket, the rest to fetch;
        the walk goes on where it was ``walked`` to (from the start if None)."""
        self.upload_id, self.plan, self.uploaded = upload_id, plan, dict(kept)
        self._start(task, plan, walked=walked)

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
        expected = self.uploads.config.checksums.get(task.name)
        self.hasher = hashlib.new(expected.algorithm) if expected else None
        self.walk, self.verdict = None, None
        if is_shard_name(task.name):
            try:
                self.walk = _walk(task.name, plan.size, walked)
            except ExtractionError as error:  # too short to hold a header
                self.verdict = error
        walk, self.next_read = self.walk, plan.count + 1
        if walk is not None:
            self.walk_saved = walk.resume_point
            if not walk.finished:
                self.next_read = walk.resume_point[0] // plan.part_size + 1
        if self.hasher is not None:
            self.next_read = 1
        self.reread = {n for n in self.uploaded if n >= self.next_read}
        self.todo = [n for n in plan.numbers() if n != first and n not in self.uploaded]
        self.todo += sorted(self.reread)
        if self.verdict is not None:
            self.todo = []
        heapq.heapify(self.todo)

    # -- Body -------------------------------------------------------------------

    @property
    def claimable(self) -> bool:
        budget, plan = self.uploads.budget, self.plan
        if plan is None:  # its first request tells its size: one at a time
            return self.fetching == 0 and budget.fits(self.uploads.options.part_size)
        if any(filling.todo for filling in self.parts.values()):
            return True
        return bool(self.todo) and budget.fits(plan.length(self.todo[0]))

    @property
    def progress(self) -> int:
        """Bytes received for it in this run (what its account of failures weighs)."""
        return self.received

    @property
    def done_bytes(self) -> int:
        plan = self.plan
        return sum(plan.length(n) for n in self.uploaded) if plan else 0

    @property
    def complete(self) -> bool:
        """Every part is in the bucket and read; or the tar is damaged and nothing is in
        flight any more."""
        if self.verdict is not None:
            return not (self.fetching or self.sending)
        plan = self.plan
        if plan is None or self.todo or self.parts or self.fetching or self.sending:
            return False
        return self.next_read > plan.count and len(self.uploaded) == plan.count

    def claim(self, task: Task) -> Claim | None:
        """A request of at most a chunk: into the lowest part opened with stretches left
        to ask for, else into the next part opened (its first request, the shard's size
        unknown: a chunk from byte 0, its budget taken at once)."""
        uploads, plan = self.uploads, self.plan
        chunk = uploads.options.chunk
        if plan is None:
            length = uploads.options.part_size
            uploads.budget.take(length)  # the part's buffer is made once its size is known
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
        goes to the uploaders at once."""
        plan = self.plan
        assert plan is not None
        while self.todo:
            number = heapq.heappop(self.todo)
            buffer = self.uploads.take(plan.length(number))
            stretches = self.stretches(number, buffer)
            if stretches:
                filling = self.parts[number] = Filling(number, buffer, stretches)
                return filling
            self.uploads.send(task, self, number, buffer)
        return None

    def publish(self, task: Task) -> str:
        """In the publisher's thread: check the size and the digest, then complete the
        upload (the object appears under its key), record the shard done and copy the
        store into the bucket. Wrong data aborts the upload and raises
        :class:`~sa1b.errors.FatalTransferError` (the shard fails; a rerun fetches it)."""
        uploads = self.uploads
        uploads.save()  # its parts recorded first
        plan, upload_id = self.plan, self.upload_id
        if self.verdict is not None:  # a damaged tar
            if upload_id is not None:
                self._discard(task, upload_id)
            raise self.verdict
        assert plan is not None and upload_id is not None
        parts = [self.uploaded[n] for n in plan.numbers()]
        total = sum(part.size for part in parts)
        if total != plan.size:
            self._discard(task, upload_id)
            message = f"{total} bytes in the upload's parts, {plan.size} planned"
            raise SizeMismatchError(message, name=task.name)
        expected = uploads.config.checksums.get(task.name)
        if expected is not None and self.hasher is not None:
            digest = self.hasher.hexdigest()
            if digest != expected.hexdigest:
                self._discard(task, upload_id)
                message = f"{expected.algorithm} {digest} does not match the checksums file"
                raise ChecksumMismatchError(message, name=task.name)
        bucket = uploads.bucket
        uploads._call(lambda: bucket.complete_multipart_upload(self.key, upload_id, parts))
        # Its catalog, tied to the ETag the bucket shows for the object (a store may answer
        # CompleteMultipartUpload with another); a crash first: the rerun puts it, as saved.
        entries = self.catalog(None)
        stored = (
            uploads._call(lambda: bucket.head_object(self.key)) if entries is not None else None
        )
        if entries is not None and stored is not None and stored.size == plan.size:
            uploads.put_catalog(self.file, entries, size=plan.size, etag=stored.etag)
        self.finished(task)
        uploads.copy_state()
        return f"into {bucket.location.url}/{self.key}"

    # -- what differs between the outputs (a tar as it is; a tar made from it) ----------

    @property
    def file(self) -> str:
        """Its name as the bucket's inventory names it (:func:`sa1b.inventory.file_of`)."""
        name = file_of(self.key)
        assert name is not None
        return name

    def object_size(
        self, task: Task, saved: UploadRecord | None, recorded: int | None
    ) -> int | None:
        """The size its object is to have, if known before its first answer."""
        return saved.size if saved is not None else recorded

    def known_plan(
        self, task: Task, saved: UploadRecord | None, size: int | None, validator: Validator
    ) -> PartPlan | None:
        """Its part plan before its first answer, if its size is known (that of the
        source ``task`` is then set): what the parts of a pending upload are judged by."""
        if saved is not None:
            task.size, task.validator = saved.size, saved.validator
            return PartPlan(saved.size, saved.part_size)
        if size is None:
            return None  # nothing to check the parts of an upload against
        task.size, task.validator = size, validator  # an upload no store records: sizes judge it
        return PartPlan.for_size(size, preferred=self.uploads.options.part_size)

    def begin(self, task: Task, plan: PartPlan | None) -> None:
        """No upload to continue: its parts are fetched from its first answer on."""

    def stretches(self, number: int, buffer: bytearray) -> list[Copied]:
        """The stretches of the source to ask for to fill part ``number`` (what is not
        the source's is written into ``buffer`` here): a tar's part is one stretch."""
        assert self.plan is not None
        start, end = self.plan.span(number)
        return [Copied(start, start, end - start)] if end > start else []

    def catalog(self, saved: UploadRecord | None) -> Sequence[Entry] | None:
        """Its object's member catalog: what this run's walk found, or (``saved``, at
        start-up: the object completed by a run stopped before it put the catalog) what
        that run's walk found."""
        if saved is None:
            return self.walk.entries if self.walk is not None else None
        walked = saved.walk
        return walked.entries if walked is not None and walked.next == saved.size else None

    def finished(self, task: Task) -> None:
        """Its object is complete: its records go, the file is recorded done."""
        finish_upload(self.uploads.run.store, task.id)

    def _discard(self, task: Task, upload_id: str) -> None:
        """Wrong data: the upload is aborted and forgotten (in the publisher's thread)."""
        log.warning("%s: its data is wrong; its upload is aborted", task.name)
        self.uploads._abort_upload(self.key, upload_id)
        finish_upload(self.uploads.run.store, task.id, done=False)
        with self.uploads.run.lock:
            self.upload_id = None

    def record_status(self, task: Task, status: Status, message: str | None) -> None:
        """In the disk worker, once the shard ended (failed, expired): its upload is kept
        for the next run; the memory of its incomplete parts, and of those waiting to be
        read, is given back (a part sent after this gives its own back)."""
        with self.uploads.run.lock:
            self._let_go()
        self.uploads.run.store.set_status(task.id, status, message)

    def _let_go(self) -> None:
        """Give back the memory of the parts held here, but that of a part still being
        written into by an answer, which its last answer gives back (lock held)."""
        for filling in self.parts.values():
            filling.todo, filling.dropped = [], True
            if not filling.busy:
                self.uploads.give(filling.buffer)
        for buffer in self.unread.values():
            self.uploads.let_go(buffer)
        self.parts, self.unread = {}, {}

    # -- what its answers change (under the lock) ---------------------------------

    def identify(self, task: Task, size: int, validator: Validator, *, asked: int) -> Filling:
        """The shard's size and version are known (its first answer, which asked for
        bytes ``[0, asked)``): its plan, and its part 1 opened with that request in it."""
        task.size, task.validator = size, validator
        self.uploads.identified.append((task.id, size, validator))
        self.plan = plan = PartPlan.for_size(size, preferred=self.uploads.options.part_size)
        self._start(task, plan, first=1)
        end = plan.span(1)[1]
        rest = [Copied(asked, asked, end - asked)] if asked < end else []
        filling = self.parts[1] = Filling(1, self.uploads.take(end), rest, busy=1)
        return filling

    def start_over(self, task: Task) -> None:
        """The source changed: the upload of the old version is aborted (its data is
        wrong), every answer and part in flight is void, the shard is fetched afresh."""
        uploads = self.uploads
        self.generation += 1
        if self.upload_id is not None:
            uploads._pool.submit(uploads._abort_upload, self.key, self.upload_id)
            uploads.records.append(UploadForgotten(task.id))
        self._let_go()
        self.plan, self.upload_id, self.hasher, self.walk = None, None, None, None
        self.todo, self.uploaded, self.reread, self.verdict = [], {}, set(), None
        task.size, task.validator = None, Validator()

    def condemn(self, verdict: ExtractionError) -> None:
        """The walk found the tar damaged (lock held): nothing more is fetched or read,
        the memory of the parts held goes back; publishing aborts the upload."""
        self.verdict, self.todo = verdict, []
        self._let_go()

    def note_walk(self, task: Task) -> None:
        """Queue the walk's progress to be saved with the part records, if it moved on
        and its upload is begun: the progress is saved as the upload's, and the record of
        an upload begun starts it afresh (lock held)."""
        walk = self.walk
        if walk is None or self.upload_id is None or walk.resume_point == self.walk_saved:
            return
        (at, count), (_, before) = walk.resume_point, self.walk_saved
        self.uploads.records.append(WalkReached(task.id, at, tuple(walk.entries[before:count])))
        self.walk_saved = (at, count)

    def answered(self, task: Task, answer: PartAnswer) -> None:
        """An answer is over: the rest of it asked for again if it was cut; its part to
        the uploaders once every stretch of it is in."""
        self.fetching -= 1
        self.received += answer.got - answer.began
        if answer.reserved:
            self.uploads.release(answer.reserved)
        filling = answer.filling
        if filling is None:  # a first request that never knew the size
            return
        filling.busy -= 1
        if filling.dropped:
            if not filling.busy:
                self.uploads.give(filling.buffer)
            return
        reached = answer.delta + answer.got
        if reached < answer.stop:
            assert self.plan is not None
            at = self.plan.span(filling.number)[0] + answer.got
            filling.todo.insert(0, Copied(at, reached, answer.stop - reached))
        elif not filling.todo and not filling.busy:
            del self.parts[filling.number]
            self.uploads.send(task, self, filling.number, filling.buffer)


@dataclass(eq=False)
class Filling:
    """A part being filled: its buffer, the stretches of source data still to ask for
    (a stretch is cut into chunks as it is asked for), and the requests in flight into
    it."""

    number: int
    buffer: bytearray
    todo: list[Copied]
    busy: int = 0
    dropped: bool = False
    """Let go of (the shard ended, started over or was condemned): its memory goes
    back once the requests in flight into it are over, never while one may still write
    into it."""


def _walk(shard: str, size: int, walked: WalkPoint | None) -> TarWalk:
    """The walk of a shard's tar, from the start or from where it was ``walked`` to."""
    if walked is None:
        return TarWalk(shard, size, headers_only)
    start = None if walked.next >= size else walked.next
    return TarWalk(shard, size, headers_only, start=start, entries=walked.entries)


def judged_ranged(answer: BodyAnswer, head: Head) -> BodyPlan | None:
    """The head judged (:meth:`~sa1b.engine.slots.BodyAnswer.judged`, the run's lock
    held), or None when no data is to be read; a server that ignores Range is an error
    here: a part (or a header) of a shard is never taken from a whole-file answer."""
    judged = answer.judged(head)
    if judged is None or judged.kind != "whole":
        return judged
    if answer.start != 0 or judged.total > answer.stop:
        answer.error = FatalTransferError(
            "the server ignores Range: an s3:// output needs ranged downloads",
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

    shard: UploadBody

    def __init__(
        self,
        task: Task,
        body: UploadBody,
        filling: Filling | None,
        start: int,
        stop: int,
        *,
        into: int = 0,
        reserved: int = 0,
    ) -> None:
        self.task, self.shard, self.uploads = task, body, body.uploads
        self.filling = filling
        self.buffer = filling.buffer if filling is not None else None
        self.start, self.stop = start, stop
        self.got, self.began = into, into
        self.delta = start - into
        """The source's offset of the buffer's first byte, for this request's bytes
        (what ``got`` counts from)."""
        self.reserved = reserved
        """Budget taken for a first request, before its buffer exists."""
        self.generation = body.generation
        self.refusal: ErrorPage | None = None
        self.error: SA1BError | None = None
        self.ended: Ended = lambda failure: None

    @property
    def number(self) -> int:
        """Its part's number."""
        return self.filling.number if self.filling is not None else 1

    def start_over(self) -> None:
        log.warning("%s: the file changed on the server; fetching it again", self.task.name)
        self.shard.start_over(self.task)

    # -- the transport's Receiver --------------------------------------------

    def head(self, head: Head) -> bool:
        task, body = self.task, self.shard
        with self.uploads.run.lock:
            judged = judged_ranged(self, head)
            if judged is None:
                return self.refusal is not None
            if body.plan is None:
                self.uploads.release(self.reserved)
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
        failure: SA1BError | None = self.error or error
        if self.refusal is not None:  # its status says more than how its page ended
            failure = self.refusal.error(task.link, now=time.time())
        with self.uploads.run.lock:
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
