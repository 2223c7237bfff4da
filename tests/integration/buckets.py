"""What the tests of an ``s3://`` output share: the suite's bucket, the size of their
shards and parts, and what they ask the bucket (SeaweedFS, through boto3) to judge a
run by: the objects under their final keys, the uploads pending and the parts they hold.
The shards themselves are the fixture ``bucket_shards`` (``conftest.py``)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from harness.seaweedfs import SeaweedServer
from sa1b.cdn.synth import ShardInfo

MiB = 1024 * 1024
SHARD_SIZE = 24 * MiB
PART = 5 * MiB
"""The smallest part S3 takes: a shard of 24 MiB is five parts, the last one shorter."""
BUCKET = "sa1b-test"


def object_md5(seaweedfs: SeaweedServer, key: str) -> str:
    body = seaweedfs.client().get_object(Bucket=BUCKET, Key=key)["Body"].read()
    return hashlib.md5(body).hexdigest()


def keys(seaweedfs: SeaweedServer, prefix: str) -> set[str]:
    listed = seaweedfs.client().list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/")
    return {item["Key"] for item in listed.get("Contents", [])}


def finals(seaweedfs: SeaweedServer, prefix: str) -> dict[str, str]:
    """The objects under the shards' final keys: shard name -> ETag."""
    listed = seaweedfs.client().list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/tars/")
    return {item["Key"].rpartition("/")[2]: item["ETag"] for item in listed.get("Contents", [])}


def pending(seaweedfs: SeaweedServer, prefix: str) -> list[dict[str, Any]]:
    answer = seaweedfs.client().list_multipart_uploads(Bucket=BUCKET, Prefix=f"{prefix}/")
    return list(answer.get("Uploads", []))


def kept_parts(seaweedfs: SeaweedServer, prefix: str) -> list[dict[int, int]]:
    """Of each upload pending under the prefix: its parts' sizes by number (each once)."""
    client, held = seaweedfs.client(), []
    for upload in pending(seaweedfs, prefix):
        listed = client.list_parts(Bucket=BUCKET, Key=upload["Key"], UploadId=upload["UploadId"])
        held.append({part["PartNumber"]: part["Size"] for part in listed.get("Parts", [])})
    return held


def listed_parts(seaweedfs: SeaweedServer, prefix: str) -> int:
    """How many parts the uploads pending under the prefix hold."""
    return sum(len(parts) for parts in kept_parts(seaweedfs, prefix))


def kept_bytes(seaweedfs: SeaweedServer, prefix: str) -> int:
    """Bytes in the parts of the uploads pending under the prefix."""
    return sum(sum(parts.values()) for parts in kept_parts(seaweedfs, prefix))


def kept_in_order(seaweedfs: SeaweedServer, prefix: str) -> int:
    """Bytes in the parts each pending upload holds from its first on, with no gap: what a
    rerun never fetches again. (A part held after a gap is fetched again once, for the
    shard's tar walk to read it, unless the walk read it before the run stopped.)"""
    total = 0
    for parts in kept_parts(seaweedfs, prefix):
        number = 1
        while number in parts:
            total, number = total + parts[number], number + 1
    return total


def rerun_fetched_within(fetched: int, data: int, *, held: int, in_order: int) -> None:
    """A rerun fetched every byte the bucket did not hold, and nothing it held in order."""
    assert data - held <= fetched <= data - in_order, (fetched, data, held, in_order)


def assert_in_bucket(seaweedfs: SeaweedServer, prefix: str, shards: Sequence[ShardInfo]) -> None:
    """Every shard whole under its final key, and no upload left pending."""
    for shard in shards:
        assert object_md5(seaweedfs, f"{prefix}/tars/{shard.name}") == shard.md5, shard.name
    left = pending(seaweedfs, prefix)
    assert left == [], (left, kept_parts(seaweedfs, prefix))
