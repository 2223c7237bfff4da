"""sa1b: download Meta's SA-1B dataset fast, verifiably and resumably.

>>> import sa1b
>>> links = sa1b.select_links(sa1b.read_links("links.tsv"), shards=range(10))
>>> result = sa1b.download(links, sa1b.DownloadConfig(out=Path("SA-1B")))
>>> result.ok
>>> for sample in sa1b.open("SA-1B"):  # then, to train on
...     sample.image(), sample.annotations, sample.masks()
"""

import logging

from sa1b.api import (
    DownloadResult,
    FolderStatus,
    LinkValidity,
    VerifyReport,
    check_validity,
    download,
    plan,
    status,
    verify,
)
from sa1b.checksums import Digest, read_checksums
from sa1b.config import DownloadConfig
from sa1b.data.loader import Sample, Samples
from sa1b.data.loader import open_dataset as open
from sa1b.errors import SA1BError
from sa1b.links import Link, parse_links, read_links
from sa1b.net.options import Timeouts, TransportOptions
from sa1b.net.proxy import Proxies
from sa1b.planning import Plan
from sa1b.progress import FileOutcome, FileProgress, ProgressListener, Snapshot
from sa1b.retry import RetryPolicy
from sa1b.selection import parse_shard_spec, select_links

__all__ = [
    "Digest",
    "DownloadConfig",
    "DownloadResult",
    "FileOutcome",
    "FileProgress",
    "FolderStatus",
    "Link",
    "LinkValidity",
    "Plan",
    "ProgressListener",
    "Proxies",
    "RetryPolicy",
    "SA1BError",
    "Sample",
    "Samples",
    "Snapshot",
    "Timeouts",
    "TransportOptions",
    "VerifyReport",
    "check_validity",
    "download",
    "open",
    "parse_links",
    "parse_shard_spec",
    "plan",
    "read_checksums",
    "read_links",
    "select_links",
    "status",
    "verify",
]
__version__ = "0.1.0"

# The library never prints: without a handler of the application's own, its warnings
# would reach stderr through logging's last resort. The CLI adds its handlers.
logging.getLogger("sa1b").addHandler(logging.NullHandler())
