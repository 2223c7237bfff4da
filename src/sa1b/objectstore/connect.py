"""A :class:`~sa1b.objectstore.bucket.Bucket` for a location, botocore imported only now:
it is the ``s3`` extra's, needed only when an ``s3://`` output is used."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sa1b.errors import OutputLocationError
from sa1b.objectstore.location import BucketLocation

if TYPE_CHECKING:
    from sa1b.objectstore.bucket import Bucket, BucketOptions


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
