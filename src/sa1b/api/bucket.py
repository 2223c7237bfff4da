"""Whether an ``s3://`` output can be written: the bucket reachable, and writable under
its prefix, asked before anything is downloaded."""

from __future__ import annotations

from sa1b.objectstore.connect import connect, retried
from sa1b.objectstore.location import BucketLocation
from sa1b.planning import BucketFacts
from sa1b.retry import RetryPolicy

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
