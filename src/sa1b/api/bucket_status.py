"""What an ``s3://BUCKET/PREFIX`` output holds, read from the bucket alone, and its stray
uploads removed on request.

The bucket is the truth: a machine with no local state gets the same answers as the
one that ran the download. :func:`bucket_status` lists the objects under the prefix
(ListObjectsV2), the pending multipart uploads (ListMultipartUploads) and each one's
parts (ListParts), and judges them (:mod:`sa1b.inventory`): the files published, the
uploads in progress, the strays. :func:`clean_bucket` aborts the strays and nothing
else: never the upload a file resumes from, never an object.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
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
from sa1b.retry import RetryPolicy

if TYPE_CHECKING:
    from sa1b.objectstore.bucket import Bucket, PendingUpload

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
    verdicts = judge_uploads(uploads, published=published)
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
