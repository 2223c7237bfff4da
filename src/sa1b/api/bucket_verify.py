"""Check what an ``s3://BUCKET/PREFIX`` output holds, object by object, from the bucket
alone.

Every published file of the layout: its size against the ``sa1b-size`` metadata its
upload was begun with (one HeadObject). With checksums, each object is also read once,
streamed in bounded chunks (never whole in memory), for its digest and, for a tar, its
structure through sa1b's one tar reader (:class:`~sa1b.tarwalk.TarWalk`: a tar damaged
here is damaged for extraction and ``--only`` too), :data:`READERS` objects at once. A
tar made from a shard (``wds/``, ``json/``: :mod:`sa1b.repack`) has its structure checked
alone, and says so: the checksums file gives the source tars' digests.
Without checksums the bytes are not read: a shard's structure would cost a GET per
member header (see :mod:`sa1b.data.bucket`), a whole read costs its size. A file still
uploading is "not finished", as a partial file is in a local folder.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from sa1b.api.bucket_status import READ_POLICY, bucket_status
from sa1b.api.verify import FileCheck, VerifyReport
from sa1b.checksums import Digest
from sa1b.errors import ExtractionError, StoreRequestError, StoreUnavailableError
from sa1b.inventory import SIZE_METADATA, BucketFile, key_of, repacked
from sa1b.objectstore.connect import connect, retried
from sa1b.objectstore.location import BucketLocation
from sa1b.retry import RetryPolicy
from sa1b.tarwalk import TarWalk, headers_only
from sa1b.units import human_bytes, plural

if TYPE_CHECKING:
    from sa1b.objectstore.bucket import Bucket

READERS = 4
"""Objects checked at once: a HeadObject each, or with checksums a stream each (one chunk
of :meth:`~sa1b.objectstore.bucket.Bucket.stream_object` and at most one tar reader's
chunk in memory apiece)."""


def verify_bucket(
    location: BucketLocation,
    *,
    checksums: Mapping[str, Digest] | None = None,
    retry: RetryPolicy = READ_POLICY,
) -> VerifyReport:
    """Check every file of the layout in the bucket; ``checksums`` given (even empty),
    every object is read once for its digest (when listed) and its tar structure."""
    found = bucket_status(location, retry=retry)
    bucket = connect(location)

    def check(file: BucketFile) -> FileCheck:
        if file.state != "done":
            return FileCheck(file.name, "not finished", (_unfinished(file),))
        return _check(bucket, file, checksums, retry)

    with ThreadPoolExecutor(max_workers=READERS) as pool:
        return VerifyReport(tuple(pool.map(check, found.files)))


def _unfinished(file: BucketFile) -> str:
    held = f"{plural(file.parts, 'part')}, {human_bytes(file.bytes)}"
    return f"not finished (uploading: {held} in the bucket): run sa1b download again"


def _check(
    bucket: Bucket, file: BucketFile, checksums: Mapping[str, Digest] | None, retry: RetryPolicy
) -> FileCheck:
    key = key_of(file.name)
    kind = "tar" if file.name.endswith(".tar") else "file"
    made = repacked(file.name)
    if made is not None:  # a tar made from a shard: no checksums file names its digest
        kind = f"{made[0]} tar" + (
            ", its structure only (the checksums are of the source tars)" if checksums else ""
        )
    stored = retried(lambda: bucket.head_object(key), policy=retry)
    if stored is None:  # deleted since it was listed
        where = f"s3://{bucket.location.bucket}/{bucket.location.key(key)}"
        return FileCheck(file.name, kind, (f"{where} is missing",))
    problems = _size_problems(stored.size, stored.metadata.get(SIZE_METADATA))
    digest = checksums.get(file.name) if checksums is not None else None
    if checksums is not None and (digest is not None or kind == "tar"):
        problems += _read_problems(bucket, file.name, stored.size, digest)
    return FileCheck(file.name, kind, tuple(problems))


def _size_problems(actual: int, recorded: str | None) -> list[str]:
    if recorded is None:
        return [f"no {SIZE_METADATA} metadata (not published by sa1b): its size is unchecked"]
    if not recorded.isdigit():
        return [f"its {SIZE_METADATA} metadata is not a size: {recorded[:40]!r}"]
    if actual != int(recorded):
        return [f"{actual} bytes, its {SIZE_METADATA} metadata says {recorded}"]
    return []


def _read_problems(bucket: Bucket, name: str, size: int, digest: Digest | None) -> list[str]:
    """Read the object once, as a stream: its digest, and a tar's structure."""
    hashing = hashlib.new(digest.algorithm) if digest is not None else None
    problems: list[str] = []
    walk = None
    try:
        walk = TarWalk(name, size, headers_only) if name.endswith(".tar") else None
    except ExtractionError as error:  # too short to hold a header
        problems.append(error.message)
    offset = 0
    try:
        for chunk in bucket.stream_object(key_of(name)):
            if hashing is not None:
                hashing.update(chunk)
            if walk is not None and walk.need() is not None:
                try:
                    walk.feed(offset, chunk)
                except ExtractionError as error:
                    problems.append(error.message)
                    walk = None
            offset += len(chunk)
    except (StoreUnavailableError, StoreRequestError) as error:
        return [*problems, f"could not be read to its end ({error.message}): verify it again"]
    if walk is not None and walk.need() is not None:
        problems.append(f"cut short: it ends at byte {offset}")
    if hashing is not None and digest is not None and hashing.hexdigest() != digest.hexdigest:
        found = hashing.hexdigest()
        problems.append(f"{digest.algorithm} {found}, the checksums file says {digest.hexdigest}")
    return problems
