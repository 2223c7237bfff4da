"""The upload body: a shard streamed from ranged downloads into one multipart upload (``-o
s3://BUCKET/PREFIX --no-extract``), with no byte of it on the local disk. (A tar made
from a shard, ``--layout wds`` or ``--only json``, is this body with what fills a part
changed: :mod:`sa1b.engine.repack`.)

It is a streamed body (:mod:`sa1b.engine.streamed`: the shard cut into parts of 8 MiB by
default, each gathered in memory by ranged requests of 1 MiB, the lowest part first,
and read in order by the walk) whose sink is the bucket: a whole part goes to the
uploader threads (:mod:`sa1b.engine.uploads`, whose :class:`~sa1b.engine.uploads.Uploads`
holds what every upload of a run shares: the bucket, the memory budget, the threads,
the records to save). A tar's part is one stretch of the source cut into chunks; a tar
made from a shard fills its parts from stretches of members' data
(:meth:`UploadBody.stretches`).

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

import logging
import threading
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

from sa1b.engine.streamed import StreamedBody
from sa1b.engine.tasks import Task
from sa1b.errors import (
    ChecksumMismatchError,
    SizeMismatchError,
)
from sa1b.inventory import file_of
from sa1b.objectstore.bucket import UploadedPart
from sa1b.objectstore.parts import PartPlan
from sa1b.records import Status
from sa1b.store.uploads import (
    UploadForgotten,
    UploadRecord,
    WalkPoint,
    WalkReached,
    finish_upload,
)
from sa1b.tarwalk import Entry
from sa1b.versions import Validator

if TYPE_CHECKING:
    from sa1b.engine.uploads import Uploads

log = logging.getLogger(__name__)


@dataclass(eq=False)
class UploadBody(StreamedBody):
    """One shard's upload (:class:`~sa1b.engine.bodies.Body`): a streamed body whose
    whole parts are sent to the bucket, and what the bucket holds of it."""

    key: str
    """Its key under the prefix: ``tars/sa_000020.tar``, as in a local output folder."""
    upload_id: str | None = None
    sending: int = 0
    uploaded: dict[int, UploadedPart] = field(default_factory=dict)
    creating: threading.Lock = field(default_factory=threading.Lock)

    @property
    def uploads(self) -> Uploads:
        """Its kind: what every upload of the run shares."""
        return cast("Uploads", self.streams)

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

    # -- the sink ---------------------------------------------------------------------

    def held(self) -> Collection[int]:
        return self.uploaded.keys()

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

    def forget_output(self, task: Task) -> None:
        """The source changed: the upload of the old version is aborted (its data is
        wrong)."""
        uploads = self.uploads
        if self.upload_id is not None:
            uploads._pool.submit(uploads._abort_upload, self.key, self.upload_id)
            uploads.records.append(UploadForgotten(task.id))
        self.upload_id, self.uploaded = None, {}

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
