"""Samples read straight from an ``s3://BUCKET/PREFIX`` output: ``sa1b.open("s3://...")``.

The shards published under ``PREFIX/tars/`` (or, for a shard with no tar there, the wds
tar made from it under ``PREFIX/wds/``: :mod:`sa1b.repack`) are read where their headers
put each member, as the local loader reads a ``--no-extract`` folder, by ranged GETs: the tars are
never downloaded whole. Listing the samples reads each shard's member catalog, which the
upload put beside it (:mod:`sa1b.catalog`: one listing of the catalogs, then one GET a
shard), when it names the object
under the shard's key (its size and ETag); else (a tar uploaded by another tool, or
replaced since) it reads the shard's headers through sa1b's one tar reader
(:class:`~sa1b.tarwalk.TarWalk`). A sample's bytes are one ranged GET each when it is
read (any process: a :class:`BucketExtent` pickles without its client, for a
``DataLoader``'s workers).

**What the headers cost** without a catalog. A header's place is known only once the one
before it is read, so a shard's walk is sequential; shards are walked side by side
(:data:`WALKERS`).
Each GET asks for :data:`WINDOW` bytes from the next header, and every header inside
the window is read from the same answer: after an annotation file (about 63 KB in
SA-1B) the next header often lies inside it, after an image (about 1 MB) it does not.
For a real shard (about 22,400 members, 10.4 GiB; simulated from SA-1B's member sizes,
in random order) the default 64 KiB costs about 16,700 GETs and 1.1 GB read; 512 bytes,
22,400 GETs and 11 MB; 256 KiB, 11,800 GETs and 3.1 GB; 1 MiB, 7,300 GETs and 7.7 GB.
At 20 ms a GET that is about 6 minutes a shard, 8 shards at a time: what the catalog
saves.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from sa1b.catalog import CATALOG_FOLDER, catalog_key, read_catalog, shard_of
from sa1b.errors import CorruptArchiveError, ExtractionError, InputError
from sa1b.inventory import TARS_FOLDER, file_of, key_of, repacked
from sa1b.layout import WDS_FOLDER
from sa1b.links import is_shard_name
from sa1b.objectstore.connect import connect, retried
from sa1b.objectstore.location import BucketLocation
from sa1b.retry import RetryPolicy
from sa1b.tarwalk import Entry, TarWalk, headers_only

if TYPE_CHECKING:
    from sa1b.objectstore.bucket import Bucket

log = logging.getLogger(__name__)

WINDOW = 64 * 1024
"""Bytes asked for from each header a walk has to fetch (the headers within come free)."""
WALKERS = 8
"""Shards whose headers are read at once."""
READ_POLICY = RetryPolicy(attempts=4)

_clients: dict[tuple[int, BucketLocation], Bucket] = {}
_clients_lock = threading.Lock()


def client(location: BucketLocation) -> Bucket:
    """This process's client for ``location`` (made once; a forked worker makes its own)."""
    with _clients_lock:
        key = (os.getpid(), location)
        if key not in _clients:
            _clients[key] = connect(location)
        return _clients[key]


@dataclass(frozen=True, slots=True)
class BucketExtent:
    """``size`` bytes at ``offset`` in the object ``key`` (under the prefix)."""

    location: BucketLocation
    key: str
    offset: int
    size: int

    def read(self) -> bytes:
        """The bytes, by one ranged GET (none for an empty member)."""
        if not self.size:
            return b""
        return _get(client(self.location), self.key, self.offset, self.offset + self.size)


def _get(bucket: Bucket, key: str, start: int, end: int) -> bytes:
    return retried(partial(bucket.get_range, key, start, end), policy=READ_POLICY)


def walk_headers(
    read: Callable[[int, int], bytes], shard: str, size: int, *, window: int = WINDOW
) -> list[Entry]:
    """Every regular member of a tar of ``size`` bytes, read by ``read(start, end)``
    calls of at least ``window`` bytes from each header not already read."""
    walk = TarWalk(shard, size, headers_only)
    while (need := walk.need()) is not None:
        start, end = need
        data = read(start, min(size, max(end, start + window)))
        if not data:
            raise CorruptArchiveError(f"it ends at byte {start}, not {size}", shard=shard)
        walk.feed(start, data)
    return walk.entries


def shard_members(location: BucketLocation) -> dict[str, list[tuple[str, BucketExtent]]]:
    """The regular members of every shard published under the prefix (its tar, else the
    wds tar made from it), by shard name: each member's name and where its data is."""
    bucket = client(location)
    published: dict[str, tuple[str, int, str]] = {}  # shard: its tar's name, size and ETag
    for folder in (WDS_FOLDER, TARS_FOLDER):  # a shard's own tar over a wds tar made from it
        listed = retried(partial(bucket.list_objects, f"{folder}/"), policy=READ_POLICY)
        for o in listed:
            name = file_of(o.key)
            made = repacked(name) if name else None
            shard = made[1] if made is not None and made[0] == "wds" else name
            if name and shard and is_shard_name(shard):
                published[shard] = (name, o.size, o.etag)
    if not published:
        raise InputError(
            f"{location}: no shard published here (under {TARS_FOLDER}/ or {WDS_FOLDER}/) yet",
            hint=f"sa1b status {location} shows how far the download got",
        )
    tars = sorted((shard, *tar) for shard, tar in published.items())

    indexes = retried(partial(bucket.list_objects, f"{CATALOG_FOLDER}/"), policy=READ_POLICY)
    catalogs = {name: o.size for o in indexes if (name := shard_of(o.key)) and o.size}

    def members(shard: str, name: str, size: int, etag: str) -> list[tuple[str, BucketExtent]]:
        key = key_of(name)
        entries = None
        if name in catalogs:  # one GET; of no use if it names another object than the tar
            data = _get(bucket, catalog_key(name), 0, catalogs[name])
            entries = read_catalog(data, size=size, etag=etag)
            if entries is None:
                log.info("%s: its catalog is of another object; reading its headers", name)
        if entries is None:
            try:
                entries = walk_headers(partial(_get, bucket, key), shard, size)
            except ExtractionError as error:
                raise InputError(
                    f"{location.url}/{key}: not a tar that can be read ({error.message})",
                    hint=f"sa1b verify {location.url} --checksums FILE reads it whole",
                ) from None
        return [(e.name, BucketExtent(location, key, e.offset, e.size)) for e in entries]

    with ThreadPoolExecutor(max_workers=max(1, min(WALKERS, len(tars)))) as pool:
        found = pool.map(lambda tar: members(*tar), tars)
        return {shard: entries for (shard, *_), entries in zip(tars, found, strict=True)}
