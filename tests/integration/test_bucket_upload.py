"""``sa1b download LINKS -o s3://BUCKET/PREFIX --no-extract`` through the real CLI, from the
CDN stand-in into SeaweedFS on loopback: each shard streamed into one multipart upload,
nothing of it on the local disk, and resumed part by part after a SIGKILL, from the
local state or, with none, from the bucket."""

from __future__ import annotations

import hashlib
import io
import random
import signal
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest

from harness.seaweedfs import SeaweedServer
from sa1b.catalog import catalog_key
from sa1b.cdn.server import CDNServer
from sa1b.cdn.synth import ShardInfo
from tests.conftest import aws_environment
from tests.waiting import wait_for

from .buckets import (
    BUCKET,
    PART,
    MiB,
    assert_in_bucket,
    kept_in_order,
    keys,
    listed_parts,
    object_md5,
    pending,
)
from .conftest import Result, python_http_server, run_cli, start_cli

pytestmark = pytest.mark.xdist_group("seaweedfs-upload")
"""With pytest-xdist, one worker runs these in turn, beside the worker that runs the other
tests on SeaweedFS (group ``seaweedfs``): each starts a server of its own, and the two
halves of the suite's time on S3 overlap."""


def download(links: Path, where: str, env: dict[str, str], *extra: str | Path, cwd: Path) -> Result:
    return run_cli(
        "download", links, "-o", where, "--no-extract", "--part-size", "5M", *extra,
        env=env, cwd=cwd,
    )  # fmt: skip


def start(links: Path, where: str, env: dict[str, str], *extra: str | Path, cwd: Path) -> Any:
    return start_cli(
        "download", links, "-o", where, "--no-extract", "--part-size", "5M", "-q", *extra,
        env=env, cwd=cwd,
    )  # fmt: skip


def folder_size(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


# options beside -o s3://: what the one error line says
REFUSED = {
    "extracting": ((), "only tars go into a bucket (--no-extract, --layout wds, --only json)"),
    "--node-local": (
        ("--no-extract", "--engine", "ray", "--node-local"),
        "--node-local is for a local output folder",
    ),
}


@pytest.mark.parametrize(("options", "says"), REFUSED.values(), ids=REFUSED.keys())
def test_what_a_bucket_cannot_take_yet_is_refused_in_one_line(
    options: tuple[str, ...], says: str, links: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    env = aws_environment({"XDG_CACHE_HOME": str(cache)})
    result = run_cli("download", links, "-o", "s3://sa1b-test/x", *options, env=env, cwd=tmp_path)
    assert result.returncode == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and says in errors[0], result.output
    assert "s3://sa1b-test/x" in errors[0]
    assert "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [links.name]  # not even the state


def test_tars_stream_into_the_bucket_with_only_the_state_on_local_disk(
    seaweedfs: SeaweedServer, cdn: CDNServer, shards: list[ShardInfo], tmp_path: Path,
    s3_prefix: str,
) -> None:  # fmt: skip
    links = tmp_path / "links.tsv"
    cdn.write_links_file(links)
    cache = tmp_path / "cache"
    env = aws_environment({**seaweedfs.environment, "XDG_CACHE_HOME": str(cache)})
    before = set(tmp_path.rglob("*"))
    result = download(links, f"s3://{BUCKET}/{s3_prefix}", env, cwd=tmp_path)
    assert result.returncode == 0, result.output
    assert "3/3 files done" in result.stderr
    assert_in_bucket(seaweedfs, s3_prefix, shards)
    expected = {f"{s3_prefix}/tars/{shard.name}" for shard in shards}
    expected |= {f"{s3_prefix}/{catalog_key(shard.name)}" for shard in shards}  # each's catalog
    assert keys(seaweedfs, s3_prefix) == expected | {f"{s3_prefix}/.sa1b/state.db"}
    assert pending(seaweedfs, s3_prefix) == []
    head = seaweedfs.client().head_object(Bucket=BUCKET, Key=f"{s3_prefix}/tars/{shards[0].name}")
    assert head["Metadata"]["sa1b-size"] == str(shards[0].size)
    assert "sig" not in head["Metadata"]["sa1b-source"].lower()
    # Nothing on the local disk but the state, in its default place.
    state = cache / "sa1b" / "s3" / BUCKET / s3_prefix
    assert (state / "state.db").is_file()
    made = set(tmp_path.rglob("*")) - before
    assert all(path == cache or state.is_relative_to(path) or path.is_relative_to(state)
               for path in made), sorted(made)  # fmt: skip
    assert folder_size(state) <= 64 * MiB
    # Run again: every shard is found done in the bucket, nothing fetched.
    cdn.clear_requests()
    again = download(links, f"s3://{BUCKET}/{s3_prefix}", env, cwd=tmp_path)
    assert again.returncode == 0, again.output
    assert cdn.bytes_sent_total == 0


def test_sigkill_then_rerun_uploads_only_the_missing_parts(
    seaweedfs: SeaweedServer, slow_bucket_cdn: CDNServer, bucket_shards: list[ShardInfo],
    tmp_path: Path, s3_prefix: str,
) -> None:  # fmt: skip
    links = tmp_path / "links.tsv"
    slow_bucket_cdn.write_links_file(links)
    env = aws_environment(seaweedfs.environment)
    where, state = f"s3://{BUCKET}/{s3_prefix}", tmp_path / "state"
    total = sum(shard.size for shard in bucket_shards)
    proc = start(links, where, env, "--state-dir", state, "--connections", "3", cwd=tmp_path)
    # Three connections at 1 MiB/s take three parts every 5 s: once a fourth is in the
    # bucket, the first three were recorded at least one tick (0.25 s) before.
    wait_for(lambda: listed_parts(seaweedfs, s3_prefix) >= 4, timeout=60,
             message="four parts in the bucket", process=proc)  # fmt: skip
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    # Listed right after the kill: no object under a final key unless whole and right.
    assert pending(seaweedfs, s3_prefix)
    finals = sorted(key for key in keys(seaweedfs, s3_prefix) if "/tars/" in key)
    assert len(finals) < len(bucket_shards)
    for key in finals:
        assert object_md5(seaweedfs, key) in {shard.md5 for shard in bucket_shards}
    in_order = kept_in_order(seaweedfs, s3_prefix)
    assert in_order >= 2 * PART
    status = run_cli("status", where, env=env)  # read from the bucket alone
    assert "uploading" in status.stdout and "stray" not in status.stdout, status.output
    slow_bucket_cdn.clear_requests()
    slow_bucket_cdn.rate_per_connection = None  # the rerun at full speed
    result = download(links, where, env, "--state-dir", state, "--connections", "8", cwd=tmp_path)
    assert result.returncode == 0, result.output
    assert_in_bucket(seaweedfs, s3_prefix, bucket_shards)
    assert pending(seaweedfs, s3_prefix) == []
    verified = run_cli("verify", where, env=env)
    assert verified.returncode == 0, verified.output
    # Only the parts the bucket did not hold in order were fetched again, and those taken
    # since the last tick saved their records (SeaweedFS lists no checksum to keep them
    # by): at most the three of the last round.
    fetched = slow_bucket_cdn.bytes_sent_total
    assert fetched <= total - in_order + 3 * PART, (fetched, in_order)


def test_a_machine_with_no_local_state_continues_from_the_bucket(
    seaweedfs: SeaweedServer, slow_bucket_cdn: CDNServer, bucket_shards: list[ShardInfo],
    tmp_path: Path, s3_prefix: str,
) -> None:  # fmt: skip
    links = tmp_path / "links.tsv"
    slow_bucket_cdn.write_links_file(links)
    env = aws_environment(seaweedfs.environment)
    where, state = f"s3://{BUCKET}/{s3_prefix}", tmp_path / "state"
    total = sum(shard.size for shard in bucket_shards)
    proc = start(links, where, env, "--state-dir", state, "--connections", "3", cwd=tmp_path)
    wait_for(lambda: f"{s3_prefix}/.sa1b/state.db" in keys(seaweedfs, s3_prefix)
             and listed_parts(seaweedfs, s3_prefix) >= 3, timeout=90,
             message="the state copy and three parts in the bucket", process=proc)  # fmt: skip
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    kept = listed_parts(seaweedfs, s3_prefix)
    elsewhere = tmp_path / "another-machine"
    slow_bucket_cdn.clear_requests()
    slow_bucket_cdn.rate_per_connection = None  # the rerun at full speed
    result = download(links, where, env, "--state-dir", elsewhere, "--connections", "8",
                      cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.output
    assert_in_bucket(seaweedfs, s3_prefix, bucket_shards)
    assert pending(seaweedfs, s3_prefix) == []
    assert slow_bucket_cdn.bytes_sent_total <= total - kept * PART + 8 * PART, (
        slow_bucket_cdn.bytes_sent_total,
        kept,
    )


def test_a_link_expiring_mid_shard_keeps_its_upload_for_fresh_links(
    seaweedfs: SeaweedServer, bucket_shards: list[ShardInfo], tmp_path: Path, s3_prefix: str
) -> None:
    late = [0.0]  # seconds the CDN's clock is ahead: links expire when it moves on
    root = bucket_shards[0].path.parent
    with CDNServer(root=root, rate_per_connection=MiB, clock=lambda: time.time() + late[0]) as cdn:
        links = tmp_path / "links.tsv"
        cdn.write_links_file(links, expires_at=int(time.time()) + 3600)
        env = aws_environment(seaweedfs.environment)
        where = f"s3://{BUCKET}/{s3_prefix}"
        state = tmp_path / "state"
        proc = start(links, where, env, "--state-dir", state, "--connections", "3", cwd=tmp_path)
        wait_for(lambda: listed_parts(seaweedfs, s3_prefix) >= 2, timeout=60,
                 message="two parts in the bucket", process=proc)  # fmt: skip
        late[0] = 7200.0
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 1, stderr
        assert "Traceback" not in stderr
        expired = {s.name for s in bucket_shards if f"  {s.name}  expired: " in stderr}
        assert expired, stderr
        assert "the parts already uploaded are kept" in stderr  # not "the bytes on disk"
        finals = {key.rpartition("/")[2] for key in keys(seaweedfs, s3_prefix) if "/tars/" in key}
        assert not finals & expired  # never completed
        kept_by = {u["Key"].rpartition("/")[2] for u in pending(seaweedfs, s3_prefix)}
        assert kept_by and kept_by <= expired  # (a shard with no part whole has no upload yet)
        kept = listed_parts(seaweedfs, s3_prefix)
        cdn.write_links_file(links)  # fresh links
        cdn.clear_requests()
        cdn.rate_per_connection = None  # the rerun at full speed
        result = download(
            links, where, env, "--state-dir", state, "--connections", "8", cwd=tmp_path
        )
        assert result.returncode == 0, result.output
    assert_in_bucket(seaweedfs, s3_prefix, bucket_shards)
    assert pending(seaweedfs, s3_prefix) == []
    total = sum(shard.size for shard in bucket_shards)
    assert cdn.bytes_sent_total <= total - kept * PART + 8 * PART


def test_a_source_of_another_size_aborts_the_upload_of_the_old_one(
    seaweedfs: SeaweedServer, bucket_shards: list[ShardInfo], tmp_path: Path, s3_prefix: str
) -> None:
    root = tmp_path / "cdn"
    root.mkdir()
    shard = bucket_shards[0]
    served = root / shard.name
    served.write_bytes(shard.path.read_bytes())
    env = aws_environment(seaweedfs.environment)
    where, state = f"s3://{BUCKET}/{s3_prefix}", tmp_path / "state"
    with CDNServer(root=root, rate_per_connection=MiB) as cdn:
        links = tmp_path / "links.tsv"
        cdn.write_links_file(links)
        proc = start(links, where, env, "--state-dir", state, "--connections", "2", cwd=tmp_path)
        wait_for(lambda: listed_parts(seaweedfs, s3_prefix) >= 2, timeout=60,
                 message="two parts in the bucket", process=proc)  # fmt: skip
        proc.send_signal(signal.SIGINT)  # stopped: its upload recorded, and kept
        proc.communicate(timeout=30)
        assert proc.returncode == 130
        (old,) = pending(seaweedfs, s3_prefix)
        # The file on the server is now another one, a member of 1 MiB longer (a sound
        # tar: the upload's walk would refuse bytes after the end blocks).
        with tarfile.open(served, "a") as archive:
            extra = tarfile.TarInfo("sa_999999.json")
            extra.size = MiB
            archive.addfile(extra, io.BytesIO(b"x" * MiB))
        new_md5 = hashlib.md5(served.read_bytes()).hexdigest()
        cdn.rate_per_connection = None  # the rerun at full speed
        result = download(
            links, where, env, "--state-dir", state, "--connections", "8", cwd=tmp_path
        )
    assert result.returncode == 0, result.output
    assert "changed on the server" in result.stderr
    assert object_md5(seaweedfs, f"{s3_prefix}/tars/{shard.name}") == new_md5
    assert pending(seaweedfs, s3_prefix) == []  # the old version's upload was aborted
    client = seaweedfs.client()
    with pytest.raises(client.exceptions.NoSuchUpload):
        client.list_parts(Bucket=BUCKET, Key=old["Key"], UploadId=old["UploadId"])


def test_checksums_complete_a_right_shard_and_abort_a_wrong_one(
    seaweedfs: SeaweedServer, bucket_shards: list[ShardInfo], tmp_path: Path, s3_prefix: str
) -> None:
    right, wrong = bucket_shards
    sums = tmp_path / "sha256sums.txt"
    sums.write_text(f"{right.sha256}  {right.name}\n{'0' * 64}  {wrong.name}\n")
    env = aws_environment(seaweedfs.environment)
    where = f"s3://{BUCKET}/{s3_prefix}"
    with CDNServer(root=right.path.parent) as cdn:
        links = tmp_path / "links.tsv"
        cdn.write_links_file(links)
        result = download(links, where, env, "--checksums", sums, "--state-dir", tmp_path / "s",
                          cwd=tmp_path)  # fmt: skip
    assert result.returncode == 1, result.output
    assert f"  {wrong.name}  failed: sha256" in result.stderr and "does not match" in result.stderr
    assert keys(seaweedfs, s3_prefix) == {
        f"{s3_prefix}/tars/{right.name}",
        f"{s3_prefix}/{catalog_key(right.name)}",
        f"{s3_prefix}/.sa1b/state.db",
    }
    assert object_md5(seaweedfs, f"{s3_prefix}/tars/{right.name}") == right.md5
    assert pending(seaweedfs, s3_prefix) == []  # the wrong shard's upload was aborted


def test_a_resume_with_checksums_fetches_the_kept_parts_again_to_hash_them(
    seaweedfs: SeaweedServer, slow_bucket_cdn: CDNServer, bucket_shards: list[ShardInfo],
    tmp_path: Path, s3_prefix: str,
) -> None:  # fmt: skip
    links = tmp_path / "links.tsv"
    slow_bucket_cdn.write_links_file(links)
    sums = tmp_path / "sha256sums.txt"
    sums.write_text("".join(f"{s.sha256}  {s.name}\n" for s in bucket_shards))
    env = aws_environment(seaweedfs.environment)
    where, state = f"s3://{BUCKET}/{s3_prefix}", tmp_path / "state"
    options = ("--state-dir", state, "--checksums", sums)
    proc = start(links, where, env, *options, "--connections", "3", cwd=tmp_path)
    wait_for(lambda: listed_parts(seaweedfs, s3_prefix) >= 3, timeout=60,
             message="three parts in the bucket", process=proc)  # fmt: skip
    proc.send_signal(signal.SIGINT)  # stopped: the parts taken recorded, and kept
    proc.communicate(timeout=30)
    assert proc.returncode == 130
    unfinished = {u["Key"].rpartition("/")[2] for u in pending(seaweedfs, s3_prefix)}
    assert unfinished and listed_parts(seaweedfs, s3_prefix) >= 3
    slow_bucket_cdn.clear_requests()
    slow_bucket_cdn.rate_per_connection = None  # the rerun at full speed
    result = download(links, where, env, *options, "--connections", "8", cwd=tmp_path)
    assert result.returncode == 0, result.output
    assert_in_bucket(seaweedfs, s3_prefix, bucket_shards)
    assert pending(seaweedfs, s3_prefix) == []
    for shard in bucket_shards:  # every byte of a resumed shard read again, for its digest
        if shard.name in unfinished:
            assert slow_bucket_cdn.bytes_sent(shard.name) >= shard.size


def test_a_missing_bucket_is_said_in_one_line_before_anything_is_downloaded(
    seaweedfs: SeaweedServer, cdn: CDNServer, links: Path, tmp_path: Path
) -> None:
    env = aws_environment(seaweedfs.environment)
    where = "s3://no-such-bucket/x"
    result = download(links, where, env, "--state-dir", tmp_path / "state", cwd=tmp_path)
    assert result.returncode == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: s3://no-such-bucket: no such bucket (HeadBucket)"], result.output
    assert cdn.requests == []
    assert seaweedfs.secret_key not in result.output


def test_sigkills_at_random_moments_never_leave_a_wrong_object_under_a_final_key(
    seaweedfs: SeaweedServer, slow_bucket_cdn: CDNServer, bucket_shards: list[ShardInfo],
    tmp_path: Path, s3_prefix: str,
) -> None:  # fmt: skip
    links = tmp_path / "links.tsv"
    slow_bucket_cdn.write_links_file(links)
    env = aws_environment(seaweedfs.environment)
    where, state = f"s3://{BUCKET}/{s3_prefix}", tmp_path / "state"
    right = {shard.name: shard.md5 for shard in bucket_shards}
    chance = random.Random(18)
    for _ in range(4):
        proc = start(links, where, env, "--state-dir", state, "--connections", "4", cwd=tmp_path)
        time.sleep(chance.uniform(1.0, 4.0))
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        for key in keys(seaweedfs, s3_prefix):  # listed right after the kill
            if "/tars/" in key:
                assert object_md5(seaweedfs, key) == right[key.rpartition("/")[2]], key
    slow_bucket_cdn.rate_per_connection = None  # the rerun at full speed
    result = download(links, where, env, "--state-dir", state, "--connections", "8", cwd=tmp_path)
    assert result.returncode == 0, result.output
    assert_in_bucket(seaweedfs, s3_prefix, bucket_shards)
    assert pending(seaweedfs, s3_prefix) == []


def test_an_upload_aborted_by_another_hand_ends_the_run_in_one_line_and_a_rerun_redoes_it(
    seaweedfs: SeaweedServer, slow_bucket_cdn: CDNServer, bucket_shards: list[ShardInfo],
    tmp_path: Path, s3_prefix: str,
) -> None:  # fmt: skip
    links = tmp_path / "links.tsv"
    slow_bucket_cdn.write_links_file(links, names=[bucket_shards[0].name])
    env = aws_environment(seaweedfs.environment)
    where, state = f"s3://{BUCKET}/{s3_prefix}", tmp_path / "state"
    proc = start(links, where, env, "--state-dir", state, "--connections", "2", cwd=tmp_path)
    wait_for(lambda: listed_parts(seaweedfs, s3_prefix) >= 1, timeout=60,
             message="a part in the bucket", process=proc)  # fmt: skip
    (upload,) = pending(seaweedfs, s3_prefix)  # a lifecycle rule, or a person, drops it
    seaweedfs.client().abort_multipart_upload(
        Bucket=BUCKET, Key=upload["Key"], UploadId=upload["UploadId"]
    )
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 1, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "the multipart upload is gone" in errors[0], stderr
    assert f"{s3_prefix}/tars/{bucket_shards[0].name}" in errors[0]
    assert "Traceback" not in stderr
    assert not [key for key in keys(seaweedfs, s3_prefix) if "/tars/" in key]
    slow_bucket_cdn.rate_per_connection = None  # the rerun at full speed
    result = download(links, where, env, "--state-dir", state, "--connections", "8", cwd=tmp_path)
    assert result.returncode == 0, result.output
    assert_in_bucket(seaweedfs, s3_prefix, bucket_shards[:1])
    assert pending(seaweedfs, s3_prefix) == []


def test_the_workers_of_a_split_download_keep_a_state_and_a_copy_each(
    seaweedfs: SeaweedServer, links: Path, shards: list[ShardInfo], tmp_path: Path,
    s3_prefix: str,
) -> None:  # fmt: skip
    cache = tmp_path / "cache"
    env = aws_environment({**seaweedfs.environment, "XDG_CACHE_HOME": str(cache)})
    for index in range(2):
        result = download(links, f"s3://{BUCKET}/{s3_prefix}", env, "--shard-index", str(index),
                          "--shard-count", "2", cwd=tmp_path)  # fmt: skip
        assert result.returncode == 0, result.output
    assert_in_bucket(seaweedfs, s3_prefix, shards)
    copies = {key for key in keys(seaweedfs, s3_prefix) if key.endswith("state.db")}
    assert copies == {f"{s3_prefix}/.sa1b/workers/{i}-of-2/state.db" for i in range(2)}
    state = cache / "sa1b" / "s3" / BUCKET / s3_prefix / "workers"
    assert sorted(p.name for p in state.iterdir()) == ["0-of-2", "1-of-2"]


@pytest.mark.parametrize("output", [("--no-extract",), ("--layout", "wds")], ids=["tars", "wds"])
def test_a_server_that_ignores_range_fails_the_shard_in_one_line_and_nothing_is_published(
    output: tuple[str, ...], seaweedfs: SeaweedServer, bucket_shards: list[ShardInfo],
    tmp_path: Path, s3_prefix: str,
) -> None:  # fmt: skip
    shard = bucket_shards[0]
    links = tmp_path / "links.txt"
    with python_http_server(shard.path.parent) as base:  # (it ignores Range)
        links.write_text(f"{base}/{shard.name}\n")
        result = run_cli(
            "download", links, "-o", f"s3://{BUCKET}/{s3_prefix}", *output, "--state-dir",
            tmp_path / "state", env=aws_environment(seaweedfs.environment), cwd=tmp_path,
        )  # fmt: skip
    assert result.returncode == 1, result.output
    assert "the server ignores Range: an s3:// output needs ranged downloads" in result.stderr
    assert "Traceback" not in result.output
    assert not [key for key in keys(seaweedfs, s3_prefix) if key.endswith(".tar")]
    assert pending(seaweedfs, s3_prefix) == []
