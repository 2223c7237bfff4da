"""What every upload of a run shares (:class:`Uploads`, the :class:`~sa1b.engine.bodies.
Kind` of :mod:`sa1b.engine.upload`'s bodies): the bucket, the uploader threads, and the
records to save; and, as for every streamed body (:class:`~sa1b.engine.streamed.Streams`),
the memory budget and the reader threads.

A whole part goes to a small pool of uploader threads (botocore blocks; the transport's
thread, libcurl's callback thread, never waits on the store), which send it with its
SHA-256 (UploadPart; the store checks it), retrying a busy or unreachable store
(:class:`~sa1b.errors.StoreUnavailableError`) by the run's retry policy, apart from the
CDN's failures. Then the part is queued to be recorded (number, ETag, size, SHA-256:
never before the bucket holds it) and its memory given back. A store that refuses for
good (access denied, credentials, the upload gone) ends the run with one line.

As soon as they are whole, the parts are also read in order by the reader threads (one a
shard at a time), apart from their upload (so that what a walk reached is saved even
when the store fails the run), one pass feeding both what needs the whole shard (a part
waits in memory, within the budget, for those before it): with ``--checksums``, the
digest; for a shard (``sa_NNNNNN.tar``), sa1b's one tar reader
(:class:`~sa1b.tarwalk.TarWalk`, extraction's judge). It parses each header and passes
over the data (roughly 20-30 µs of CPU a member, estimated from its work, untimed: some
0.05 CPU s per GB of SA-1B, against the 1-2 s per GB the transfer itself costs), and so
builds the shard's member catalog (held in memory until the tar is complete: about 150
bytes a member, 3 MB for a real shard, beside the parts' budget), or gives its verdict
on a damaged tar. Its progress (where it goes on, the entries found) is saved with the
part records, so that a rerun continues it there: only the parts the bucket holds from
that point on are fetched again, for the walk alone (with ``--checksums`` every kept
part is, for the digest, since a digest cannot be carried across a crash); a part
fetched again is not uploaded again.

The run's records (uploads begun, parts taken, walks' progress) are saved by the
supervising loop at each tick (:meth:`Uploads.save`), with a copy of the store put in
the bucket every ``transient_commit_interval`` (``PREFIX/.sa1b/state.db``).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from functools import partial
from typing import TypeVar

from sa1b.catalog import catalog_key, pack_catalog
from sa1b.config import UploadOptions
from sa1b.engine.run import Run
from sa1b.engine.streamed import PartBuffer, StreamedBody, StreamOptions, Streams
from sa1b.engine.tasks import Task
from sa1b.engine.upload import UploadBody
from sa1b.errors import (
    FatalTransferError,
    NoSuchUploadError,
    SA1BError,
    StorageError,
    StoreUnavailableError,
)
from sa1b.inventory import Upload, resumed_upload, upload_metadata
from sa1b.lifecycle import next_state
from sa1b.links import Link, is_shard_name, object_key
from sa1b.objectstore.bucket import (
    Bucket,
    BucketOptions,
    ListedObject,
    PendingUpload,
    UploadedPart,
    state_copy_key,
)
from sa1b.objectstore.parts import Listed, PartPlan, kept_parts
from sa1b.progress import FileOutcome
from sa1b.repack import output_key
from sa1b.store.paths import STATE_DB
from sa1b.store.repacks import MapChange, MapForgotten, MapReached, MapStart, save_maps
from sa1b.store.uploads import (
    PartDone,
    StoredPart,
    UploadChange,
    UploadRecord,
    UploadStart,
    finish_upload,
    load_upload,
    save_uploads,
)
from sa1b.tarwalk import Entry, Piece

log = logging.getLogger(__name__)

T = TypeVar("T")


class Uploads(Streams):
    """What every upload of a run shares (its :class:`~sa1b.engine.bodies.Kind`): the
    bucket, the memory budget, the uploader threads, and the records to save. Guarded
    by the run's lock, unless said otherwise."""

    def __init__(self, run: Run, *, abort: Callable[[SA1BError], None]) -> None:
        assert run.config.upload is not None
        options = run.config.upload
        super().__init__(run, StreamOptions(options.part_size, options.chunk, options.memory))
        self.options: UploadOptions = options
        self.abort = abort
        self.bucket = Bucket(
            options.location, options=BucketOptions(connections=options.uploaders + 2)
        )
        self.records: list[UploadChange | MapChange] = []
        self._pool = ThreadPoolExecutor(options.uploaders, thread_name_prefix="sa1b-upload")
        self._saving = threading.Lock()
        self._copying = threading.Lock()
        self._copied = time.monotonic()
        self._pending: list[PendingUpload] | None = None
        self._objects: dict[str, ListedObject] | None = None

    # -- the Kind -----------------------------------------------------------------

    def prepare(self, link: Link) -> Task:
        """The task of ``link``: found done when its object is in the bucket, else
        resumed from the pending upload :func:`~sa1b.inventory.resumed_upload` picks
        (the one ``sa1b status`` shows as its upload, never a stray), keeping the parts
        ListParts lists that fit its plan. The store keeps it under the name of the file
        of the layout it makes (a tar made from a shard, ``wds/sa_000020.tar``, has a row
        of its own beside the shard's tar: neither resumes the other's upload)."""
        store = self.run.store
        body = self._body(link.name)
        key, name = body.key, body.file
        record = store.register(name, object_key(link.url))
        task = Task(
            link=link,
            id=record.id,
            generation=record.generation,
            failures=self.config.failure_account(),
        )
        task.body = body
        saved = load_upload(store, record.id)
        size = body.object_size(task, saved, record.size)
        stored = self._published().get(key)
        if stored is not None and (size is None or size == stored.size):
            if saved is not None or record.status != "done":  # completed, not recorded so
                entries = body.catalog(saved)
                if entries is not None:  # nor its catalog put
                    self.put_catalog(name, entries, size=stored.size, etag=stored.etag)
                body.finished(task)
            return _found_done(task, stored.size)
        if stored is not None:
            log.warning("%s: the object in the bucket has another size; fetching it again", key)
        elif record.status == "done":
            log.warning("%s: recorded done, but not in the bucket; fetching it again", link.name)
        plan = body.known_plan(task, saved, record.size, record.validator)
        resumable = stored is None and plan is not None
        resumed = self._resumed(name, key, saved, plan) if resumable else None
        if saved is not None and (resumed is None or resumed[0] != saved.upload_id):
            finish_upload(store, record.id, done=False)  # its upload is not to be continued
            if stored is None:
                log.info("%s: its upload is gone from the bucket", link.name)
        if resumed is None or plan is None:
            body.begin(task, plan)
            return task
        upload_id, listed = resumed
        own = saved is not None and saved.upload_id == upload_id
        sums = saved.parts.values() if saved is not None and own else ()
        recorded = [Listed(p.number, p.size, p.sha256) for p in sums]
        by_number = {part.number: part for part in listed}
        as_listed = [Listed(p.number, p.size, p.sha256) for p in listed]
        kept = {
            n: replace(by_number[n], sha256=sha256)
            for n, sha256 in kept_parts(plan, as_listed, recorded).items()
        }
        body.resume(task, upload_id, plan, kept, walked=saved.walk if saved and own else None)
        if not own:
            self.records.append(
                UploadStart(record.id, upload_id, plan.size, task.validator, plan.part_size)
            )
        if kept:
            log.info("%s: %d of %d parts kept in the bucket", link.name, len(kept), plan.count)
        return task

    def _resumed(
        self, name: str, key: str, saved: UploadRecord | None, plan: PartPlan | None
    ) -> tuple[str, list[UploadedPart]] | None:
        """The upload ``name`` resumes from, and its parts: of those pending for its key
        (and the one the store records, if ListParts still answers for it)."""
        pending = [upload for upload in self._pending_uploads() if upload.key == key]
        recorded = saved.upload_id if saved is not None else None
        if recorded is not None and all(upload.upload_id != recorded for upload in pending):
            pending.append(PendingUpload(key, recorded, None))  # a listing may lag behind
        found: list[Upload] = []
        parts: dict[str, list[UploadedPart]] = {}
        for upload in pending:
            try:
                listed = self._call(partial(self.bucket.list_parts, key, upload.upload_id))
            except NoSuchUploadError:  # completed or aborted since
                continue
            parts[upload.upload_id] = listed
            sizes = tuple((part.number, part.size) for part in listed)
            found.append(Upload(key, upload.upload_id, upload.initiated, sizes))
        chosen = resumed_upload(found, name, recorded=recorded, plan=plan)
        return (chosen.upload_id, parts[chosen.upload_id]) if chosen is not None else None

    def _pending_uploads(self) -> list[PendingUpload]:
        """The multipart uploads pending under the prefix (asked once a run)."""
        if self._pending is None:
            self._pending = self._call(self.bucket.list_multipart_uploads)
        return self._pending

    def _published(self) -> dict[str, ListedObject]:
        """The objects under the prefix (size, ETag), by key (asked once a run)."""
        if self._objects is None:
            listed = self._call(self.bucket.list_objects)
            self._objects = {item.key: item for item in listed}
        return self._objects

    def _body(self, shard: str) -> UploadBody:
        """The body of ``shard`` for the run's output: its tar as it is, or repacked (an
        extra, not a shard, goes as it is)."""
        output = self.options.output
        if output == "tars" or not is_shard_name(shard):
            key = self.config.paths.final(shard).relative_to(self.config.out).as_posix()
            return UploadBody(self, key)
        from sa1b.engine.repack import RepackBody  # (it builds on this module)

        return RepackBody(self, output_key(output, shard), output=output)

    def put_catalog(self, name: str, entries: Sequence[Entry], *, size: int, etag: str) -> None:
        """Put the member catalog of the file ``name`` (a shard's tar, or a tar made
        from one: ``wds/sa_000020.tar``) beside it (:mod:`sa1b.catalog`), tied to the
        object's size and ETag."""
        data = pack_catalog(entries, size=size, etag=etag)
        self._call(lambda: self.bucket.put_object(catalog_key(name), data))

    def save(self) -> None:
        """Save the uploads begun, the parts taken (every part the bucket acknowledged
        so far) and where the walks go on; every ``transient_commit_interval``, put a
        copy of the store in the bucket. From the supervising loop, and from the
        publisher before it completes."""
        with self._saving:
            with self.run.lock:
                records, self.records = self.records, []
                identified, self.identified = self.identified, []
            for file_id, size, validator in identified:
                self.run.store.set_identity(file_id, size, validator)
            if records:
                maps: list[MapChange] = []
                changes: list[UploadChange] = []
                for record in records:
                    if isinstance(record, MapStart | MapReached | MapForgotten):
                        maps.append(record)
                    else:
                        changes.append(record)
                save_maps(self.run.store, maps)  # (of tars made from shards)
                save_uploads(self.run.store, changes)
            if time.monotonic() - self._copied >= self.config.transient_commit_interval:
                self.copy_state()

    def copy_state(self) -> None:
        """Put a consistent copy of the store in the bucket (``PREFIX/.sa1b/state.db``):
        where a machine with no local state continues from (each worker of a split
        download its own). (From the supervising loop
        and the publisher: one at a time.)"""
        with self._copying:
            folder = self.config.paths.state / "copy"
            try:
                self.run.store.copy_to(folder)
                data = (folder / STATE_DB).read_bytes()
            except OSError as error:
                raise StorageError(f"{folder}: cannot copy the state store: {error}") from None
            worker = self.config.worker.folder if self.config.worker else None
            self._call(lambda: self.bucket.put_object(state_copy_key(worker), data))
            self._copied = time.monotonic()

    def close(self) -> None:
        """Wait for the parts being sent (those queued and not started are dropped: a
        rerun fetches them again), then save what they reached and copy the store."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.close_readers()  # quick, and what they reach is saved below
        try:
            self.save()
            if not self.run.fatal:
                self.copy_state()
        except SA1BError as error:
            self.run.fatal = self.run.fatal or error

    # -- the uploaders ------------------------------------------------------------------

    def dispatch(self, task: Task, body: StreamedBody, number: int, buffer: PartBuffer) -> bool:
        """A whole part to the uploader threads, unless the bucket holds it already (it
        was fetched again to be read); whether they hold ``buffer`` now."""
        assert isinstance(body, UploadBody)
        assert isinstance(buffer, bytearray)  # (Streams.allocate's: botocore takes it)
        if number in body.reread:
            return False
        body.sending += 1
        self._pool.submit(self._send, task, body, body.generation, number, buffer)
        return True

    def consume(self, task: Task, body: StreamedBody, pieces: list[Piece]) -> None:
        """An upload's walk wants no member's data."""

    def _send(
        self, task: Task, body: UploadBody, generation: int, number: int, buffer: bytearray
    ) -> None:
        """In an uploader thread: send the part, then record it."""
        part: UploadedPart | None = None
        try:
            upload_id = self._upload_id(task, body, generation)
            if upload_id is not None:
                part = self._call(
                    lambda: self.bucket.upload_part(body.key, upload_id, number, buffer)
                )
        except SA1BError as error:  # the store refuses for good: one line ends the run
            if not self.run.stopping and generation == body.generation:
                self.abort(error)  # (a part of a version before: its upload was aborted)
        except Exception as error:  # a bug: end the run loudly rather than hang it
            log.exception("%s: internal error while uploading part %d", task.name, number)
            self.abort(FatalTransferError(f"internal error: {error!r}", name=task.name))
        with self.run.lock:
            body.sending -= 1
            if generation == body.generation and part is not None:
                body.uploaded[number] = part
                stored = StoredPart(number, part.etag, part.size, part.sha256)
                self.records.append(PartDone(task.id, stored))
            self.let_go(buffer)
        self.settle(task)

    def _upload_id(self, task: Task, body: UploadBody, generation: int) -> str | None:
        """The shard's upload, begun by the first part to need it (None: the shard
        started over meanwhile). Its metadata says which source it is of: the size and
        the CDN's validator (never the link)."""
        with body.creating:
            with self.run.lock:
                if generation != body.generation:
                    return None  # a part of the version before: it belongs to no upload
                if body.upload_id is not None:
                    return body.upload_id
                validator, plan = task.validator, body.plan
            assert plan is not None
            size = plan.size  # the object's: the shard's own, or the tar made from it
            metadata = upload_metadata(size, validator)
            upload_id = self._call(
                lambda: self.bucket.create_multipart_upload(body.key, metadata=metadata)
            )
            with self.run.lock:
                stale = generation != body.generation
                if not stale:
                    body.upload_id = upload_id
                    self.records.append(
                        UploadStart(task.id, upload_id, size, validator, plan.part_size)
                    )
                    body.note_walk(task)  # what it read before the upload began
            if stale:
                self._abort_upload(body.key, upload_id)
                return None
            return upload_id

    def _abort_upload(self, key: str, upload_id: str) -> None:
        """Drop an upload of wrong data; a failure is only logged (it is a stray then,
        which ``sa1b status`` shows and an explicit command removes)."""
        try:
            self._call(lambda: self.bucket.abort_multipart_upload(key, upload_id))
        except SA1BError as error:
            log.warning("%s: the upload of wrong data could not be aborted: %s", key, error)

    def _call(self, call: Callable[[], T]) -> T:
        """A call to the store, tried again while the store is busy or unreachable, by
        the run's retry policy; a stop while waiting raises the last failure."""
        failures = 0
        while True:
            try:
                return call()
            except StoreUnavailableError as error:
                failures += 1
                delay = self.config.retry.delay(error, failures, jitter=random.random())
                if delay is None or self.run.stopped.wait(delay):
                    raise
                log.info("%s; trying again in %.1f s", error.message, delay)


def _found_done(task: Task, size: int | None) -> Task:
    task.state, task.size = next_state(task.state, "found-done"), size
    task.outcome = FileOutcome(task.name, "done", size, "already in the bucket")
    return task
