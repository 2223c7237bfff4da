"""The library API: plan a download, run it, read the state of an output folder.

One module per thing a caller asks for, as the CLI's commands are:

- :mod:`~sa1b.api.plan`: what a download needs, without downloading (and whether it fits);
- :mod:`~sa1b.api.download`: the download, whole files or ``--only``'s members;
- :mod:`~sa1b.api.status`: what an output folder holds, over every store in it;
- :mod:`~sa1b.api.verify`: each file checked, and the bad ones marked to be fetched again;
- :mod:`~sa1b.api.bucket_status` and :mod:`~sa1b.api.bucket_verify`: the same for an
  ``s3://`` output, from the bucket alone, and its stray uploads removed;

and what the download shares with them: :mod:`~sa1b.api.runs` (a run's books in the
store) and :mod:`~sa1b.api.stores` (the folder's other stores, a split download's
workers). The CLI is a thin shell over these functions; they never print.
"""

from sa1b.api.bucket_status import BucketStatus, CleanReport, bucket_status, clean_bucket
from sa1b.api.bucket_verify import verify_bucket
from sa1b.api.download import DownloadResult, download
from sa1b.api.plan import check_space, plan
from sa1b.api.status import FolderStatus, StoreStatus, status
from sa1b.api.stores import worker_of
from sa1b.api.verify import FileCheck, VerifyReport, verify
from sa1b.expiry import LinkValidity, check_validity, refuse_expired

__all__ = [
    "BucketStatus",
    "CleanReport",
    "DownloadResult",
    "FileCheck",
    "FolderStatus",
    "LinkValidity",
    "StoreStatus",
    "VerifyReport",
    "bucket_status",
    "check_space",
    "check_validity",
    "clean_bucket",
    "download",
    "plan",
    "refuse_expired",
    "status",
    "verify",
    "verify_bucket",
    "worker_of",
]
