"""Every shard streamed into a bucket is walked by sa1b's one tar reader as its parts go by
(SeaweedFS on loopback, through the real CLI): a damaged tar gets extraction's verdict
and never appears under its key (its upload aborted); a sound one gets its member catalog
beside it, which ``sa1b.open`` reads in one GET a shard; and a run killed mid-shard
continues its walk from the checkpoint it saved with the part records."""

from __future__ import annotations

import io
import shutil
import signal
import sqlite3
import tarfile
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

import sa1b
from harness.nginx import NginxServer
from harness.seaweedfs import SeaweedServer
from sa1b.catalog import catalog_key, read_catalog
from sa1b.cdn.server import CDNServer
from sa1b.cdn.synth import ShardInfo
from sa1b.inventory import key_of
from sa1b.objectstore.bucket import Bucket
from sa1b.objectstore.location import BucketLocation
from sa1b.store.state import unpack_members
from sa1b.tarwalk import Entry
from tests.conftest import aws_environment

from .buckets import BUCKET, PART, MiB
from .conftest import run_cli, start_cli
from .test_bucket_read import CountingGets
from .test_damaged_tars import CASES, SHARD, _verdict

pytestmark = pytest.mark.xdist_group("seaweedfs")
"""With pytest-xdist, one worker runs the tests on SeaweedFS in turn."""


def members(data: bytes) -> list[Entry]:
    """What tarfile says: every regular member's name, data offset and size."""
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        return [Entry(m.name, m.offset_data, m.size) for m in archive if m.isfile()]


def stored_catalog(bucket: Bucket, shard: str) -> list[Entry] | None:
    """The catalog beside ``shard``, read as ``sa1b.open`` reads it (None if absent or not
    of the object under the shard's key)."""
    tar = bucket.head_object(key_of(shard))
    found = bucket.head_object(catalog_key(shard))
    if tar is None or found is None:
        return None
    data = bucket.get_range(catalog_key(shard), 0, found.size)
    return read_catalog(data, size=tar.size, etag=tar.etag)


def keys(bucket: Bucket) -> set[str]:
    return {listed.key for listed in bucket.list_objects()}


@pytest.fixture
def bucket(s3_environment: dict[str, str], s3_prefix: str) -> Bucket:
    return Bucket(BucketLocation(BUCKET, f"tests/{s3_prefix}"))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NginxServer]:
    """Each damaged (or sound but unusual) tar of the one-verdict table, under nginx."""
    root = tmp_path_factory.mktemp("damaged")
    for number, case in enumerate(CASES.values()):
        (root / str(number)).mkdir()
        (root / str(number) / SHARD).write_bytes(case.tar())
    with NginxServer(root=root, workdir=tmp_path_factory.mktemp("nginx")) as server:
        yield server


@pytest.mark.parametrize("name", list(CASES))
def test_each_tar_gets_extraction_s_verdict_and_a_damaged_one_never_its_key(
    served: NginxServer, seaweedfs: SeaweedServer, bucket: Bucket, tmp_path: Path, name: str
) -> None:
    case = CASES[name]
    links = tmp_path / "urls.txt"
    links.write_text(served.url_for(f"{list(CASES).index(name)}/{SHARD}") + "\n")
    env = aws_environment(seaweedfs.environment)
    result = run_cli(
        "download", links, "-o", bucket.location.url, "--no-extract",
        "--state-dir", tmp_path / "state", env=env,
    )  # fmt: skip
    _verdict(result, case)  # the same line as download+extract, --only json and verify
    assert bucket.list_multipart_uploads() == []  # aborted, not kept for a rerun
    if case.damage is not None:
        assert key_of(SHARD) not in keys(bucket)
        assert catalog_key(SHARD) not in keys(bucket)
        assert "its upload is aborted" in result.stderr
    else:
        data = case.tar()
        assert stored_catalog(bucket, SHARD) == members(data)
        json = {e.name for e in members(data) if e.name.endswith(".json")}
        assert json == set(case.json)


def test_open_reads_each_shard_s_catalog_in_one_get(
    *,
    seaweedfs: SeaweedServer,
    links: Path,
    shards: list[ShardInfo],
    bucket: Bucket,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = aws_environment(seaweedfs.environment)
    where = bucket.location.url
    result = run_cli("download", links, "-o", where, "--no-extract", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.output
    for shard in shards:
        assert stored_catalog(bucket, shard.name) == members(shard.path.read_bytes())
    local = tmp_path / "local" / "tars"
    local.mkdir(parents=True)
    for shard in shards:
        shutil.copy(shard.path, local / shard.name)
    here = sa1b.open(local.parent)
    gets = CountingGets(monkeypatch)

    remote = sa1b.open(where)

    assert sorted(key for key, _, _ in gets.calls) == sorted(
        catalog_key(shard.name) for shard in shards
    )  # one GET a shard, its catalog: no header read
    assert [s.key for s in remote] == [s.key for s in here]
    for mine, theirs in zip(remote, here, strict=True):
        assert mine.image_bytes() == theirs.image_bytes()
        assert mine.document == theirs.document
    # A tar put again by another hand (another ETag): its catalog is not its own, so its
    # headers are read; the other shards' catalogs still serve.
    replaced = shards[0]
    bucket.put_object(key_of(replaced.name), replaced.path.read_bytes())
    gets.calls.clear()
    again = sa1b.open(where)
    assert [s.key for s in again] == [s.key for s in here]
    read = [key for key, _, _ in gets.calls]
    assert read.count(key_of(replaced.name)) > 1  # its headers, by ranged GETs
    assert all(read.count(catalog_key(shard.name)) == 1 for shard in shards)


def saved_walks(state: Path) -> dict[str, tuple[int, int]]:
    """Per shard being uploaded, where its saved walk goes on and its entries so far (as
    the running download's store says: read-only, none before the store exists)."""
    database = state / "state.db"
    walks: dict[str, tuple[int, int]] = {}
    if not database.exists():
        return walks
    try:
        with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
            rows = db.execute(
                "SELECT name, upto, members FROM upload_walks JOIN files ON files.id = file_id "
                "ORDER BY name, upto"
            ).fetchall()
    except sqlite3.OperationalError:  # its tables not made yet
        return walks
    for name, upto, blob in rows:
        walks[name] = (upto, walks.get(name, (0, 0))[1] + len(unpack_members(blob)))
    return walks


def recorded_parts(state: Path) -> dict[str, set[int]]:
    """Per shard being uploaded, the parts its store records as taken by the bucket (read
    as :func:`saved_walks` reads the walks)."""
    database = state / "state.db"
    recorded: dict[str, set[int]] = {}
    if not database.exists():
        return recorded
    try:
        with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
            rows = db.execute(
                "SELECT name, number FROM upload_parts JOIN files ON files.id = file_id"
            ).fetchall()
    except sqlite3.OperationalError:  # its tables not made yet
        return recorded
    for name, number in rows:
        recorded.setdefault(name, set()).add(number)
    return recorded


def walked_and_recorded(state: Path, *, parts: int) -> bool:
    """Whether a shard's saved walk is past its first ``parts`` parts and its store records
    them taken (a walk reads the parts as they arrive, before the store takes them)."""
    recorded = recorded_parts(state)
    return any(
        at > parts * PART and recorded.get(name, set()) >= set(range(1, parts + 1))
        for name, (at, _) in saved_walks(state).items()
    )


def test_a_killed_run_continues_its_walk_from_the_saved_checkpoint(
    seaweedfs: SeaweedServer, bucket_shards: list[ShardInfo], bucket: Bucket, tmp_path: Path
) -> None:
    env = aws_environment(seaweedfs.environment)
    where, state = bucket.location.url, tmp_path / "state"
    options = ("--no-extract", "--part-size", "5M", "--state-dir", state)
    with CDNServer(root=bucket_shards[0].path.parent, rate_per_connection=MiB) as cdn:
        links = tmp_path / "links.tsv"
        cdn.write_links_file(links)
        proc = start_cli("download", links, "-o", where, *options, "-q", "--connections", "3",
                         env=env, cwd=tmp_path)  # fmt: skip
        deadline = time.monotonic() + 90
        while not walked_and_recorded(state, parts=2):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "timed out"
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        walked, recorded = saved_walks(state), recorded_parts(state)
        uploads = {u.key: u.upload_id for u in bucket.list_multipart_uploads()}
        published = keys(bucket)
        missing = kept = reread = 0  # bytes
        for shard in bucket_shards:
            key = key_of(shard.name)
            if key in published:
                continue
            missing += shard.size
            goes_on = walked.get(shard.name, (0, 0))[0] // PART + 1
            for part in bucket.list_parts(key, uploads[key]) if key in uploads else []:
                if part.number not in recorded.get(shard.name, ()):
                    continue  # taken after the last save: SeaweedFS lists no checksum to keep it by
                missing -= part.size
                kept += part.size
                reread += part.size if part.number >= goes_on else 0
        assert kept - reread >= 2 * PART  # what the checkpoint saves: parts walked already
        cdn.clear_requests()
        result = run_cli("download", links, "-o", where, *options, "--connections", "8",
                         env=env, cwd=tmp_path)  # fmt: skip
        assert result.returncode == 0, result.output
        # The missing parts, and the kept ones from where each walk goes on: no more (but
        # what a request cut by the connection ramp loses in flight: less than a part).
        sent = cdn.bytes_sent_total
        assert missing + reread <= sent < missing + reread + PART, (sent, missing, kept, reread)
    for shard in bucket_shards:
        assert stored_catalog(bucket, shard.name) == members(shard.path.read_bytes())
    assert bucket.list_multipart_uploads() == []
