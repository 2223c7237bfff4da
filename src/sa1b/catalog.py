"""A shard's member catalog, written beside its tar in a bucket: what ``sa1b.open`` reads
in one GET instead of walking the tar's headers (thousands of ranged GETs). Pure.

The upload engine walks every shard it streams into a bucket with sa1b's one tar reader
(:class:`~sa1b.tarwalk.TarWalk`) and, once the tar is complete under its key, puts its
catalog at :func:`catalog_key` (``.sa1b/index/sa_000020.tar.idx`` under the prefix).

Format, version :data:`VERSION`: zlib-compressed UTF-8 text (the store's member packing,
:func:`sa1b.store.state.pack_members`, behind one line that says what it describes)::

    sa1b-catalog<TAB>1<TAB><tar size><TAB><tar ETag><TAB><members>
    <name><TAB><data offset><TAB><size>        (one line per regular member, in tar order)

A catalog belongs to one object: the size and the ETag it names must be those of the tar
under its key (a tar replaced by another hand, or uploaded again, has another ETag), or
the reader walks the headers instead. So does a catalog of another version, or one that
does not read back whole (:func:`read_catalog` returns None). 22,000 members (a real
shard) take about 100 KB.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

from sa1b.repack import REPACKS
from sa1b.store.paths import WORK_DIR
from sa1b.tarwalk import Entry

VERSION = 1
MAGIC = "sa1b-catalog"
CATALOG_FOLDER = f"{WORK_DIR}/index"
"""Under the prefix: every shard's catalog."""
SUFFIX = ".idx"


def catalog_key(shard: str) -> str:
    """The key (under the prefix) of ``shard``'s catalog (of a tar made from a shard,
    named by its key: ``.sa1b/index/wds/sa_000020.tar.idx``)."""
    return f"{CATALOG_FOLDER}/{shard}{SUFFIX}"


def shard_of(key: str) -> str | None:
    """The shard (or tar made from one) whose catalog ``key`` (under the prefix) is,
    None for another key."""
    name = key.removeprefix(f"{CATALOG_FOLDER}/")
    folder, _, base = name.rpartition("/")
    if name == key or not base.endswith(SUFFIX) or folder not in ("", *REPACKS):
        return None
    return name.removesuffix(SUFFIX)


def pack_catalog(entries: Sequence[Entry], *, size: int, etag: str) -> bytes:
    """The catalog of the tar of ``size`` bytes whose ETag is ``etag``."""
    head = f"{MAGIC}\t{VERSION}\t{size}\t{_tag(etag)}\t{len(entries)}\n"
    lines = "".join(f"{e.name}\t{e.offset}\t{e.size}\n" for e in entries)
    return zlib.compress((head + lines).encode())


def read_catalog(data: bytes, *, size: int, etag: str) -> list[Entry] | None:
    """The members a catalog lists, if it is one this version reads, of the tar of
    ``size`` bytes whose ETag is ``etag``, and whole: one entry per line as its first
    line counts, each inside the tar and after the one before. None otherwise."""
    try:
        head, *lines = zlib.decompress(data).decode().splitlines()
        magic, version, tar_size, tag, count = head.split("\t")
        if (magic, version, tar_size, tag) != (MAGIC, str(VERSION), str(size), _tag(etag)):
            return None
        entries = [Entry(name, int(at), int(n)) for name, at, n in map(_fields, lines)]
        counted = len(entries) == int(count)
    except (zlib.error, UnicodeDecodeError, ValueError):
        return None
    ends = [0, *(e.offset + e.size for e in entries)]
    ordered = all(e.offset >= end and e.size >= 0 for e, end in zip(entries, ends, strict=False))
    return entries if counted and ordered and ends[-1] <= size else None


def _fields(line: str) -> tuple[str, str, str]:
    name, at, n = line.split("\t")  # a name with a tab in it: ValueError, as any bad line
    return name, at, n


def _tag(etag: str) -> str:
    """An ETag as one store writes it in one answer and not another: with its quotes or
    without."""
    return etag.strip().strip('"')
