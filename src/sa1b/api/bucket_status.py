"""What an ``s3://BUCKET/PREFIX`` output holds, read from the bucket alone, and its stray
uploads removed on request.

The bucket is the truth: a machine with no local state gets the same answers as the
one that ran the download. :func:`bucket_status` lists the objects under the prefix
(ListObjectsV2), the pending multipart uploads (ListMultipartUploads) and each one's
parts (ListParts), reads the uploads the state copies under ``PREFIX/.sa1b/`` record
(each downloaded to a temporary file, opened read-only), and judges them
(:mod:`sa1b.inventory`, by the rule the download engine resumes by): the files
published, the uploads in progress, the strays. :func:`clean_bucket` aborts the strays and nothing
else: never the upload a file resumes from, never an object.
"""

from __future__ import annotations

import logging
import sqlite3
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from sa1b.errors import NoStateError, NoSuchUploadError
from sa1b.inventory import (
    OWN_FOLDER,
    BucketFile,
    Upload,
    Verdict,
    bucket_files,
    file_of,
    judge_uploads,
)
from sa1b.objectstore.connect import connect, retried
from sa1b.objectstore.location import BucketLocation
from sa1b.objectstore.parts import PartPlan
from sa1b.retry import RetryPolicy
from sa1b.store.paths import STATE_DB
from sa1b.store.uploads import RecordedUpload, recorded_uploads

if TYPE_CHECKING:
    from sa1b.objectstore.bucket import Bucket, ListedObject, PendingUpload

log = logging.getLogger(__name__)

READ_POLICY = RetryPolicy(attempts=3)
"""A busy store is asked a few times (backoff 0.5, 1 s) before a listing fails."""


@dataclass(frozen=True, slots=True)
class BucketStatus:
    """The files of the layout in the bucket (published, or uploading), and the strays."""

    location: BucketLocation
    files: tuple[BucketFile, ...]
    strays: tuple[Verdict, ...]

    @property
    def stray_bytes(self) -> int:
        return sum(verdict.upload.bytes for verdict in self.strays)


def bucket_status(location: BucketLocation, *, retry: RetryPolicy = READ_POLICY) -> BucketStatus:
    """What the bucket holds under the prefix; a :class:`~sa1b.errors.NoStateError`
    (exit 2) when it holds nothing of sa1b's: no file of the layout, no upload, no
    state copy."""
    bucket = connect(location)
    objects = retried(bucket.list_objects, policy=retry)
    published = {name for listed in objects if (name := file_of(listed.key)) is not None}
    uploads = [
        upload
        for pending in retried(bucket.list_multipart_uploads, policy=retry)
        if (upload := _with_parts(bucket, pending, retry)) is not None
    ]
    recorded = _recorded(bucket, objects, retry)
    plans = {}
    for name, entry in recorded.items():
        try:
            plans[name] = PartPlan(entry.size, entry.part_size)
        except ValueError:  # not a plan of sa1b's: its parts are judged without one
            continue
    verdicts = judge_uploads(
        uploads,
        published=published,
        recorded={name: entry.upload_id for name, entry in recorded.items()},
        plans=plans,
    )
    own = any(listed.key.startswith(f"{OWN_FOLDER}/") for listed in objects)
    files = bucket_files(((o.key, o.size) for o in objects), verdicts)
    if not files and not verdicts and not own:
        raise NoStateError(
            f"{location}: nothing of sa1b's here (no file of its layout, no upload, "
            f"no {OWN_FOLDER}/)",
            hint="check the prefix: it is the one given to sa1b download -o",
        )
    strays = tuple(verdict for verdict in verdicts if not verdict.resumable)
    return BucketStatus(location, tuple(files), strays)


def _recorded(
    bucket: Bucket, objects: Sequence[ListedObject], retry: RetryPolicy
) -> dict[str, RecordedUpload]:
    """The uploads the state copies in the bucket record (the download's, or each
    worker's of a split one), by file name; a copy that cannot be read records none."""
    copies = [
        o
        for o in objects
        if o.key.startswith(f"{OWN_FOLDER}/") and o.key.endswith(f"/{STATE_DB}") and o.size > 0
    ]
    recorded: dict[str, RecordedUpload] = {}
    with tempfile.TemporaryDirectory(prefix="sa1b-status-") as folder:
        for copy in copies:
            data = retried(partial(bucket.get_range, copy.key, 0, copy.size), policy=retry)
            path = Path(folder, STATE_DB)
            path.write_bytes(data)
            try:
                recorded |= recorded_uploads(path)
            except sqlite3.Error as error:
                log.warning(
                    "%s: the state copy cannot be read (%s); judged without it", copy.key, error
                )
            path.unlink()
    return recorded


def _with_parts(bucket: Bucket, pending: PendingUpload, retry: RetryPolicy) -> Upload | None:
    """The upload with its parts; None when it ended since it was listed."""
    try:
        parts = retried(partial(bucket.list_parts, pending.key, pending.upload_id), policy=retry)
    except NoSuchUploadError:
        return None
    sizes = tuple((part.number, part.size) for part in parts)
    return Upload(pending.key, pending.upload_id, pending.initiated, sizes)


@dataclass(frozen=True, slots=True)
class CleanReport:
    """The strays found, and those aborted (all of them unless ``dry_run``; one that
    ended meanwhile is not counted)."""

    strays: tuple[Verdict, ...]
    removed: tuple[Verdict, ...]


def clean_bucket(
    location: BucketLocation, *, dry_run: bool = False, retry: RetryPolicy = READ_POLICY
) -> CleanReport:
    """Abort every stray upload under the prefix (:func:`bucket_status` says which),
    and nothing else; with ``dry_run``, only say which."""
    found = bucket_status(location, retry=retry)
    if dry_run:
        return CleanReport(found.strays, ())
    bucket = connect(location)
    removed = []
    for verdict in found.strays:
        upload = verdict.upload
        try:
            abort = partial(bucket.abort_multipart_upload, upload.key, upload.upload_id)
            retried(abort, policy=retry)
        except NoSuchUploadError:  # completed or aborted since it was listed
            continue
        log.info("aborted the upload %s of %s: %s", upload.upload_id, upload.key, verdict.stray)
        removed.append(verdict)
    return CleanReport(found.strays, tuple(removed))
