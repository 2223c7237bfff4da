"""Whether an ``s3://`` output can be written: the bucket reachable, and writable under
its prefix, asked before anything is downloaded; and the state copy a download with no
local state starts from."""

from __future__ import annotations

from pathlib import Path

from sa1b.objectstore.connect import connect, retried
from sa1b.objectstore.location import BucketLocation
from sa1b.planning import BucketFacts
from sa1b.retry import RetryPolicy
from sa1b.store.uploads import seed_from_copy

#: A busy or unreachable store is asked a few times (backoff 0.5, 1 s) before plan says so.
CHECK_POLICY = RetryPolicy(attempts=3)


def check_bucket(location: BucketLocation, *, retry: RetryPolicy = CHECK_POLICY) -> BucketFacts:
    """The bucket of ``location`` exists and these credentials can write under its
    prefix (a probe object put and deleted under ``PREFIX/.sa1b/``); else a
    :class:`~sa1b.errors.BucketError` (missing bucket, access denied, credentials) or,
    after ``retry``, a :class:`~sa1b.errors.StoreUnavailableError`. Credentials and
    endpoint come from botocore's standard chain (``AWS_*``, profiles, roles)."""
    bucket = connect(location)
    retried(bucket.check_writable, policy=retry)
    return BucketFacts(url=location.url, endpoint=bucket.endpoint)


def fetch_state_copy(
    location: BucketLocation,
    database: Path,
    *,
    worker: str | None = None,
    retry: RetryPolicy = CHECK_POLICY,
) -> bool:
    """With no local state: start it from the copy of the store a run on another machine
    put in the bucket (``PREFIX/.sa1b/state.db``, or ``worker``'s of a split download),
    if there is one (True)."""
    bucket = connect(location)
    from sa1b.objectstore.bucket import state_copy_key  # importable once connect() worked

    key = state_copy_key(worker)
    stored = retried(lambda: bucket.head_object(key), policy=retry)
    if stored is None or stored.size == 0:
        return False
    data = retried(lambda: bucket.get_range(key, 0, stored.size), policy=retry)
    seed_from_copy(database, data)
    return True
