"""An s3:// output read from the bucket alone (SeaweedFS on loopback), through the real CLI
and the library: ``sa1b status`` (published, uploading, strays) from a machine with no
local state, ``sa1b clean`` removing strays and only them, ``sa1b verify`` catching a
short object, a wrong digest and a damaged tar, and ``sa1b.open`` reading the same
samples as the local loader by ranged GETs, never a whole tar."""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import tarfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import sa1b
from harness.seaweedfs import SeaweedServer
from sa1b.cdn.synth import ShardInfo
from sa1b.data.bucket import WINDOW, walk_headers
from sa1b.errors import InputError
from sa1b.inventory import SIZE_METADATA, key_of
from sa1b.objectstore.bucket import Bucket
from sa1b.objectstore.location import BucketLocation
from sa1b.objectstore.parts import MIB
from sa1b.units import human_bytes

from .conftest import Result, run_cli

pytestmark = pytest.mark.xdist_group("seaweedfs")
"""With pytest-xdist, one worker runs the tests on SeaweedFS in turn: one server (eight
ports, a few hundred MB) at a time, not one a worker."""

BUCKET = "sa1b-test"


@pytest.fixture
def bucket(s3_environment: dict[str, str], s3_prefix: str) -> Bucket:
    return Bucket(BucketLocation(BUCKET, f"tests/{s3_prefix}"))


@pytest.fixture
def no_local_state(tmp_path: Path) -> dict[str, str]:
    """A machine that never ran the download: an empty home and cache."""
    home = tmp_path / "elsewhere"
    home.mkdir()
    return {"HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache")}


def begin(bucket: Bucket, seaweedfs: SeaweedServer, name: str, size: int) -> str:
    """An upload of ``name`` begun as the upload engine begins it: with its size in the
    metadata (S3 cannot set metadata later; botocore's own client does it here)."""
    answer = seaweedfs.client().create_multipart_upload(
        Bucket=BUCKET,
        Key=bucket.location.key(key_of(name)),
        ChecksumAlgorithm="SHA256",
        Metadata={SIZE_METADATA: str(size)},
    )
    return str(answer["UploadId"])


def publish(
    bucket: Bucket, seaweedfs: SeaweedServer, name: str, data: bytes, *, size: int | None = None
) -> None:
    """``name`` published with ``data``, its upload begun for ``size`` bytes (default:
    the data's); parts of 5 MiB, as S3 requires but for the last."""
    key = key_of(name)
    upload_id = begin(bucket, seaweedfs, name, len(data) if size is None else size)
    parts = [
        bucket.upload_part(key, upload_id, number, data[start : start + 5 * MIB])
        for number, start in enumerate(range(0, max(len(data), 1), 5 * MIB), start=1)
    ]
    bucket.complete_multipart_upload(key, upload_id, parts)


def next_second(bucket: Bucket) -> None:
    """Wait until the clock is past the second the last upload was dated."""
    (last, *_) = sorted(
        (u.initiated for u in bucket.list_multipart_uploads() if u.initiated), reverse=True
    )
    while datetime.now(UTC).replace(microsecond=0) <= last:
        time.sleep(0.05)


def url(bucket: Bucket) -> str:
    return bucket.location.url


def lines(result: Result) -> list[str]:
    return result.stdout.splitlines()


def test_status_and_clean_from_a_machine_with_no_local_state(
    bucket: Bucket,
    seaweedfs: SeaweedServer,
    shards: list[ShardInfo],
    no_local_state: dict[str, str],
) -> None:
    first, second = shards[0], shards[1]
    publish(bucket, seaweedfs, first.name, first.path.read_bytes())
    publish(bucket, seaweedfs, "sa_images_ids.txt", b"1\n2\n")
    # Shard 1: two uploads begun, the newer one resumed; the older is a stray.
    older = begin(bucket, seaweedfs, second.name, second.size)
    bucket.upload_part(key_of(second.name), older, 1, b"o" * 1000)
    next_second(bucket)  # stores date uploads to the second
    newer = begin(bucket, seaweedfs, second.name, second.size)
    bucket.upload_part(key_of(second.name), newer, 1, os.urandom(5 * MIB))
    bucket.upload_part(key_of(second.name), newer, 3, b"x" * 100)
    # An upload of a published shard, and one of a key outside the layout: strays.
    begin(bucket, seaweedfs, first.name, first.size)
    outside = bucket.create_multipart_upload("junk/sa_000009.tar")
    bucket.upload_part("junk/sa_000009.tar", outside, 1, b"j" * 2000)

    result = run_cli("status", url(bucket), env=no_local_state)
    assert result.returncode == 0, result.output
    shown = lines(result)
    assert shown[0].split() == [first.name, "done", *_human(first.size)]
    assert shown[1].split()[:4] == [second.name, "uploading", "2", "parts,"]
    assert shown[2].split()[:2] == ["sa_images_ids.txt", "done"]
    strays = [line for line in shown if line.startswith("stray upload")]
    assert len(strays) == 3
    assert any(f"/tars/{second.name}" in s and "an older upload of its file" in s for s in strays)
    assert any(f"/tars/{first.name}" in s and "its file is published" in s for s in strays)
    assert any("/junk/sa_000009.tar" in s and "not a file of the layout" in s for s in strays)
    assert "3 files: 2 done, 1 uploading" in shown[-2]
    assert f"3 stray uploads (2.9 KiB): sa1b clean {url(bucket)} removes them" == shown[-1]
    assert not (Path(no_local_state["HOME"]) / ".cache").exists()  # nothing written locally

    dry = run_cli("clean", url(bucket), "--dry-run", env=no_local_state)
    assert dry.returncode == 0, dry.output
    assert len([line for line in lines(dry) if line.startswith("would remove")]) == 3
    assert len(bucket.list_multipart_uploads()) == 4  # nothing removed

    cleaned = run_cli("clean", url(bucket), env=no_local_state)
    assert cleaned.returncode == 0, cleaned.output
    removed = [line for line in lines(cleaned) if line.startswith("removed ")]
    assert len(removed) == 3
    assert any(f"(upload {older}, begun " in line for line in removed)  # named in full
    assert lines(cleaned)[-1] == f"3 stray uploads (2.9 KiB) removed from {url(bucket)}"
    left = bucket.list_multipart_uploads()
    assert [(u.key, u.upload_id) for u in left] == [(key_of(second.name), newer)]
    assert [p.number for p in bucket.list_parts(key_of(second.name), newer)] == [1, 3]
    assert {o.key for o in bucket.list_objects()} == {
        key_of(first.name),
        "sa_images_ids.txt",
    }
    after = run_cli("status", url(bucket), env=no_local_state)
    assert not [line for line in lines(after) if "stray" in line], after.output


def _human(size: int) -> list[str]:
    return human_bytes(size).split()


def test_status_of_a_prefix_with_nothing_of_sa1b_is_refused(
    bucket: Bucket, no_local_state: dict[str, str]
) -> None:
    result = run_cli("status", url(bucket), env=no_local_state)
    assert result.returncode == 2, result.output
    assert result.stderr.startswith(f"error: {url(bucket)}: nothing of sa1b's here")
    assert "Traceback" not in result.output


def test_verify_catches_a_short_object_a_wrong_digest_and_a_damaged_tar(
    bucket: Bucket,
    seaweedfs: SeaweedServer,
    shards: list[ShardInfo],
    tmp_path: Path,
    no_local_state: dict[str, str],
) -> None:
    good, short, altered = shards[0], shards[1], shards[2]
    publish(bucket, seaweedfs, good.name, good.path.read_bytes())
    data = short.path.read_bytes()
    publish(bucket, seaweedfs, short.name, data[: -3 * 512], size=short.size)
    body = bytearray(altered.path.read_bytes())
    body[512 + 100] ^= 0xFF  # inside the first member's data: the tar still reads
    publish(bucket, seaweedfs, altered.name, bytes(body))
    damaged = bytearray(good.path.read_bytes())
    damaged[100] ^= 0xFF  # the first header's mode: its checksum fails
    publish(bucket, seaweedfs, "sa_000007.tar", bytes(damaged))
    checksums = tmp_path / "md5sums"
    checksums.write_text(f"{good.md5}  {good.name}\n{altered.md5}  {altered.name}\n")

    sizes = run_cli("verify", url(bucket), env=no_local_state)
    assert sizes.returncode == 1, sizes.output
    assert _verdicts(sizes) == {
        good.name: "ok",
        short.name: "BAD",
        altered.name: "ok",
        "sa_000007.tar": "ok",
    }
    assert f"    {short.size - 3 * 512} bytes, its sa1b-size metadata says {short.size}" in (
        lines(sizes)
    )
    assert lines(sizes)[-1] == "4 files: 3 ok, 1 with problems"

    read = run_cli("verify", url(bucket), "--checksums", checksums, env=no_local_state)
    assert read.returncode == 1, read.output
    assert _verdicts(read) == {
        good.name: "ok",
        short.name: "BAD",
        altered.name: "BAD",
        "sa_000007.tar": "BAD",
    }
    problems = "\n".join(lines(read))
    assert f"md5 {_md5(body)}, the checksums file says {altered.md5}" in problems
    assert "bad header at byte 0" in problems
    assert lines(read)[-1] == "4 files: 1 ok, 3 with problems"
    with pytest.raises(InputError) as raised:  # and the loader will not read them either
        sa1b.open(url(bucket))
    assert raised.value.message.startswith(f"{url(bucket)}/tars/sa_0000")
    assert "not a tar that can be read" in raised.value.message


def test_verify_reads_an_object_in_bounded_chunks(
    bucket: Bucket, seaweedfs: SeaweedServer, shards: list[ShardInfo]
) -> None:
    data = shards[0].path.read_bytes()
    publish(bucket, seaweedfs, shards[0].name, data)
    sizes = []
    digest = hashlib.md5()
    for chunk in bucket.stream_object(key_of(shards[0].name), chunk=MIB):
        sizes.append(len(chunk))
        digest.update(chunk)
    assert digest.hexdigest() == shards[0].md5
    assert sum(sizes) == len(data) and max(sizes) <= MIB and len(sizes) >= len(data) // MIB


def _verdicts(result: Result) -> dict[str, str]:
    return {
        line.split()[0]: line.split()[1]
        for line in lines(result)
        if line.endswith(("tar", "file")) and not line.startswith(" ")
    }


def _md5(data: bytes | bytearray) -> str:
    return hashlib.md5(data).hexdigest()


def test_an_unfinished_upload_is_not_finished_for_verify(
    bucket: Bucket, seaweedfs: SeaweedServer, shards: list[ShardInfo]
) -> None:
    begin(bucket, seaweedfs, shards[0].name, shards[0].size)
    result = run_cli("verify", url(bucket))
    assert result.returncode == 1, result.output
    assert lines(result)[0] == f"{shards[0].name}  BAD  not finished"
    assert "not finished (uploading: 0 parts, 0 B in the bucket)" in lines(result)[1]


class CountingGets:
    """Every ranged GET the client makes, and its bytes."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[str, int, int]] = []
        real = Bucket.get_range

        def counted(bucket: Bucket, key: str, start: int, end: int) -> bytes:
            self.calls.append((key, start, end))
            return real(bucket, key, start, end)

        monkeypatch.setattr(Bucket, "get_range", counted)

    @property
    def bytes(self) -> int:
        return sum(end - start for _, start, end in self.calls)


def test_open_reads_the_same_samples_as_the_local_loader_by_ranged_gets(
    bucket: Bucket,
    seaweedfs: SeaweedServer,
    shards: list[ShardInfo],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    local = tmp_path / "local" / "tars"
    local.mkdir(parents=True)
    for shard in shards:
        publish(bucket, seaweedfs, shard.name, shard.path.read_bytes())
        shutil.copy(shard.path, local / shard.name)
    gets = CountingGets(monkeypatch)

    remote = sa1b.open(url(bucket))

    # The headers alone: as many GETs as the walk over the same bytes needs, each a
    # window from a header, far from the tars' size.
    expected = sum(_walk_reads(shard) for shard in shards)
    assert len(gets.calls) == expected
    assert gets.bytes <= expected * WINDOW < sum(shard.size for shard in shards)
    assert all(end - start <= WINDOW for _, start, end in gets.calls)
    members = sum(len(_members(shard)) for shard in shards)
    assert expected <= members + 2 * len(shards)

    here = sa1b.open(local.parent)
    assert [s.key for s in remote] == [s.key for s in here]
    assert {s.shard for s in remote} == {shard.name for shard in shards}
    gets.calls.clear()
    for mine, theirs in zip(remote, here, strict=True):
        assert mine.image_bytes() == theirs.image_bytes()
        assert mine.document == theirs.document
    assert len(gets.calls) == 2 * len(here)  # one GET a member read, nothing more
    # A DataLoader's worker gets samples pickled: they carry no client, and read anyway.
    sample = pickle.loads(pickle.dumps(remote[3]))
    assert sample.image_bytes() == here[3].image_bytes()


def _members(shard: ShardInfo) -> list[tarfile.TarInfo]:
    with tarfile.open(shard.path) as archive:
        return [member for member in archive if member.isfile()]


def _walk_reads(shard: ShardInfo) -> int:
    """How many reads the header walk makes over the local copy of ``shard``."""
    reads = 0
    with shard.path.open("rb") as handle:

        def read(start: int, end: int) -> bytes:
            nonlocal reads
            reads += 1
            return os.pread(handle.fileno(), end - start, start)

        entries = walk_headers(read, shard.name, shard.size)
    assert [(e.offset, e.size) for e in entries] == [
        (m.offset_data, m.size) for m in _members(shard)
    ]
    return reads


def test_open_of_a_bucket_with_no_shard_says_so(bucket: Bucket, s3_environment: Any) -> None:
    with pytest.raises(sa1b.SA1BError) as raised:
        sa1b.open(url(bucket))
    assert "no shard published here" in raised.value.message


@pytest.mark.parametrize("command", ["status", "verify", "clean"])
@pytest.mark.parametrize("where", ["gs://bucket/sa1b", "s3:/bucket/sa1b", "s3://Not_A_Bucket/x"])
def test_an_output_sa1b_cannot_read_is_refused(command: str, where: str, tmp_path: Path) -> None:
    result = run_cli(command, where, cwd=tmp_path)
    assert result.returncode == 2, result.output
    assert len(result.stderr.splitlines()) <= 2 and result.stderr.startswith("error: ")
    assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


def test_clean_of_a_local_folder_is_refused(tmp_path: Path) -> None:
    result = run_cli("clean", tmp_path)
    assert result.returncode == 2, result.output
    assert "removes the stray uploads of an s3:// output" in result.stderr


@pytest.mark.parametrize("where", ["gs://bucket/sa1b", "s3:/bucket/sa1b"])
def test_open_of_a_place_sa1b_cannot_read_is_refused(where: str) -> None:
    with pytest.raises(InputError) as raised:
        sa1b.open(where)
    assert where in raised.value.message
