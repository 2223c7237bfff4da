"""A :class:`~sa1b.objectstore.bucket.Bucket` for a location, and its calls retried, with
botocore imported only then: it is the ``s3`` extra's, needed only when an ``s3://``
output is used."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from sa1b.errors import OutputLocationError
from sa1b.objectstore.location import BucketLocation
from sa1b.retry import RetryPolicy

if TYPE_CHECKING:
    from sa1b.objectstore.bucket import Bucket, BucketOptions

T = TypeVar("T")


def connect(location: BucketLocation, *, options: BucketOptions | None = None) -> Bucket:
    """A client for ``location``; an :class:`~sa1b.errors.OutputLocationError` (exit 2)
    saying what to install when botocore is missing."""
    try:
        from sa1b.objectstore.bucket import Bucket
    except ImportError as error:
        raise OutputLocationError(
            f"{location}: s3:// outputs need botocore ({error.name} is not installed)",
            hint="pip install 'sa1b[s3]'",
        ) from None
    return Bucket(location, options=options)


def retried(call: Callable[[], T], *, policy: RetryPolicy) -> T:
    """``call()`` (a call of a connected :class:`Bucket`) under ``policy``
    (:func:`~sa1b.objectstore.bucket.with_retries`): for the calls made outside the engine."""
    from sa1b.objectstore.bucket import with_retries  # importable once connect() worked

    return with_retries(call, policy=policy)
