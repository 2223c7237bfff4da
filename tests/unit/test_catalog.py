"""A shard's member catalog in a bucket (sa1b.catalog): read back only when it is whole,
of this version, and of the object under the shard's key (its size and ETag)."""

from __future__ import annotations

import zlib

import pytest

from sa1b.catalog import catalog_key, pack_catalog, read_catalog, shard_of
from sa1b.tarwalk import Entry

ENTRIES = [Entry("sa_1.jpg", 512, 3000), Entry("sa_1.json", 4096, 26), Entry("empty", 5120, 0)]
SIZE, ETAG = 10240, '"0f3c-2"'


def test_a_catalog_reads_back_as_written() -> None:
    data = pack_catalog(ENTRIES, size=SIZE, etag=ETAG)
    assert read_catalog(data, size=SIZE, etag=ETAG) == ENTRIES
    assert read_catalog(data, size=SIZE, etag="0f3c-2") == ENTRIES  # a store without quotes


def _raw(text: str) -> bytes:
    return zlib.compress(text.encode())


GOOD_HEAD = f"sa1b-catalog\t1\t{SIZE}\t0f3c-2"
# name: (the catalog's bytes, what the bucket says of the tar: size, ETag)
REFUSED = {
    "another size": (pack_catalog(ENTRIES, size=SIZE, etag=ETAG), SIZE + 512, ETAG),
    "another ETag": (pack_catalog(ENTRIES, size=SIZE, etag=ETAG), SIZE, '"0f3d-2"'),
    "another version": (_raw(f"sa1b-catalog\t2\t{SIZE}\t0f3c-2\t0\n"), SIZE, ETAG),
    "not zlib": (b"sa1b-catalog\t1", SIZE, ETAG),
    "cut short": (pack_catalog(ENTRIES, size=SIZE, etag=ETAG)[:-4], SIZE, ETAG),
    "a line missing": (_raw(f"{GOOD_HEAD}\t2\nsa_1.jpg\t512\t3000\n"), SIZE, ETAG),
    "a tab in a name": (_raw(f"{GOOD_HEAD}\t1\nsa\t1.jpg\t512\t3000\n"), SIZE, ETAG),
    "a member past the end": (_raw(f"{GOOD_HEAD}\t1\nsa_1.jpg\t9728\t3000\n"), SIZE, ETAG),
    "members overlapping": (_raw(f"{GOOD_HEAD}\t2\na\t512\t3000\nb\t1024\t10\n"), SIZE, ETAG),
    "not a number": (_raw(f"{GOOD_HEAD}\t1\nsa_1.jpg\t512\tmany\n"), SIZE, ETAG),
    "empty": (_raw(""), SIZE, ETAG),
}


@pytest.mark.parametrize(("data", "size", "etag"), REFUSED.values(), ids=REFUSED)
def test_a_catalog_of_another_object_or_not_whole_is_not_read(
    data: bytes, size: int, etag: str
) -> None:
    assert read_catalog(data, size=size, etag=etag) is None


def test_a_catalog_lives_under_the_prefix_s_own_folder() -> None:
    assert catalog_key("sa_000020.tar") == ".sa1b/index/sa_000020.tar.idx"
    assert shard_of(catalog_key("sa_000020.tar")) == "sa_000020.tar"
    assert shard_of(".sa1b/state.db") is None
    assert shard_of("tars/sa_000020.tar") is None
    assert shard_of(".sa1b/index/sub/sa_000020.tar.idx") is None
    assert shard_of(catalog_key("wds/sa_000020.tar")) == "wds/sa_000020.tar"  # a tar made from it
