"""The store's failures during ``sa1b download LINKS -o s3://BUCKET/PREFIX --no-extract``,
through the real CLI, with the fault proxy (:mod:`harness.s3_faults`) between sa1b and
SeaweedFS and the CDN stand-in as the source: what is retried, what stops the run in one
line, and that a rerun continues from the parts the bucket holds. And ``status`` and
``clean`` judging the uploads by the rule the engine resumes by, the state copy's record
included."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from harness.s3_faults import StoreFault, StoreFaultProxy
from harness.seaweedfs import SeaweedServer
from sa1b.cdn.server import CDNServer
from sa1b.cdn.synth import ShardInfo
from tests.conftest import aws_environment
from tests.waiting import wait_for

from .buckets import (
    BUCKET,
    PART,
    SHARD_SIZE,
    MiB,
    assert_in_bucket,
    finals,
    kept_bytes,
    kept_in_order,
    object_md5,
    pending,
    rerun_fetched_within,
)
from .conftest import Result, run_cli, start_cli

pytestmark = pytest.mark.xdist_group("seaweedfs")
"""With pytest-xdist, one worker runs the tests on SeaweedFS in turn."""


def download(links: Path, where: str, proxy: StoreFaultProxy, *extra: str | Path) -> Result:
    return run_cli(
        "download", links, "-o", where, "--no-extract", "--part-size", "5M", *extra,
        env=aws_environment(proxy.environment), cwd=links.parent,
    )  # fmt: skip


def error_lines(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


# -- (a) retried: the run ends 0, every object byte-identical ----------------------------------

FLAKY = {
    "503 SlowDown": StoreFault(kind="slow_down", operation="UploadPart", every=3, times=3),
    "500": StoreFault(kind="internal_error", operation="UploadPart", every=2, times=3),
    "a request cut": StoreFault(kind="cut_request", operation="UploadPart", every=3, times=2),
    "an answer cut": StoreFault(kind="cut_answer", operation="UploadPart", every=3, times=2),
    "503 on Complete": StoreFault(kind="slow_down", operation="CompleteMultipartUpload"),
}


@pytest.mark.parametrize("fault", FLAKY.values(), ids=FLAKY)
def test_a_flaky_store_is_retried_and_every_object_is_whole(
    *, fault: StoreFault, s3_faults: StoreFaultProxy, seaweedfs: SeaweedServer, bucket_links: Path,
    bucket_shards: list[ShardInfo], s3_prefix: str, tmp_path: Path,
) -> None:  # fmt: skip
    log = tmp_path / "run.log"
    s3_faults.set(fault)
    result = download(bucket_links, f"s3://{BUCKET}/{s3_prefix}", s3_faults, "--state-dir",
                      tmp_path / "s", "--log-file", log)  # fmt: skip
    assert result.returncode == 0, result.output
    assert "2/2 files done" in result.stderr
    assert fault.operation is not None and fault.times is not None
    assert s3_faults.faulted() == s3_faults.faulted(fault.operation) == fault.times
    assert log.read_text().count("; trying again in ") == fault.times  # each after a wait
    assert_in_bucket(seaweedfs, s3_prefix, bucket_shards)
    resent = fault.times if fault.operation == "UploadPart" else 0
    assert s3_faults.count("UploadPart") == 10 + resent  # each failed part sent once more


# -- (b) busy past the retries: one line, the uploads kept, a rerun completes ------------------


def test_a_store_busy_past_the_retries_stops_the_run_and_a_rerun_completes(
    *, s3_faults: StoreFaultProxy, seaweedfs: SeaweedServer, bucket_cdn: CDNServer,
    bucket_links: Path, bucket_shards: list[ShardInfo], s3_prefix: str, tmp_path: Path,
) -> None:  # fmt: skip
    where, state = f"s3://{BUCKET}/{s3_prefix}", tmp_path / "state"
    s3_faults.set(StoreFault(kind="slow_down", operation="UploadPart", after=3, times=None))
    result = download(bucket_links, where, s3_faults, "--state-dir", state, "--retries", "3")
    assert result.returncode == 1, result.output
    (error,) = error_lines(result)
    assert f"error: {where}/tars/sa_00000" in error
    assert "the store answered 503 SlowDown (UploadPart " in error
    assert "hint: " in result.stderr and "run the same command again later" in result.stderr
    assert "Traceback" not in result.output
    assert finals(seaweedfs, s3_prefix) == {}  # three parts of ten: no shard whole
    held, in_order = kept_bytes(seaweedfs, s3_prefix), kept_in_order(seaweedfs, s3_prefix)
    assert held >= 3 * 4 * MiB  # the parts that went through are kept (the last is 4 MiB)
    s3_faults.set(None)
    bucket_cdn.clear_requests()
    again = download(bucket_links, where, s3_faults, "--state-dir", state)
    assert again.returncode == 0, again.output
    assert_in_bucket(seaweedfs, s3_prefix, bucket_shards)
    rerun_fetched_within(bucket_cdn.bytes_sent_total, 2 * SHARD_SIZE, held=held, in_order=in_order)


# -- (c) refused mid-run: one line, nothing published, a rerun keeps what was sent -------------

STOPS = {
    "credentials expire": (
        StoreFault(kind="expired_token", times=None),
        "the credentials expired (",
        "a new AWS_SESSION_TOKEN",
    ),
    "access denied": (
        StoreFault(kind="access_denied", times=None),
        "access denied (",
        "s3:PutObject",
    ),
}


@pytest.mark.parametrize(("fault", "says", "hint"), STOPS.values(), ids=STOPS)
def test_credentials_refused_mid_run_stop_it_in_one_line_and_a_rerun_resumes(
    *, fault: StoreFault, says: str, hint: str, s3_faults: StoreFaultProxy,
    seaweedfs: SeaweedServer, bucket_shards: list[ShardInfo], s3_prefix: str, tmp_path: Path,
) -> None:  # fmt: skip
    where, state, log = f"s3://{BUCKET}/{s3_prefix}", tmp_path / "state", tmp_path / "run.log"
    with CDNServer(root=bucket_shards[0].path.parent, rate_per_connection=MiB) as slow:
        links = tmp_path / "links.tsv"
        slow.write_links_file(links)
        proc = start_cli(
            "download", links, "-o", where, "--no-extract", "--part-size", "5M",
            "--state-dir", state, "--connections", "4", "--log-file", log, "--log-level", "debug",
            env=aws_environment(s3_faults.environment), cwd=tmp_path,
        )  # fmt: skip
        wait_for(lambda: s3_faults.count("UploadPart") >= 3, timeout=60,
                 message="three parts uploaded", process=proc)  # fmt: skip
        s3_faults.set(fault)  # from now on, every call the store is asked is refused
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 2, stderr  # the bucket refuses: as it would before the run
        errors = [line for line in stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and errors[0].startswith(f"error: s3://{BUCKET}: {says}"), stderr
        assert hint in stderr and "Traceback" not in stderr
        assert s3_faults.faulted() >= 1
        secret = s3_faults.environment["AWS_SECRET_ACCESS_KEY"]
        assert secret not in stderr + log.read_text()
        s3_faults.set(None)  # refreshed
        assert finals(seaweedfs, s3_prefix) == {}  # nothing under a final key
        begun = s3_faults.count("CreateMultipartUpload") - s3_faults.faulted(
            "CreateMultipartUpload"
        )
        assert len(pending(seaweedfs, s3_prefix)) == begun  # every upload kept, none aborted
        held, in_order = kept_bytes(seaweedfs, s3_prefix), kept_in_order(seaweedfs, s3_prefix)
        sent = s3_faults.count("UploadPart") - s3_faults.faulted("UploadPart")
        assert sent >= 3 and held >= 3 * 4 * MiB
        s3_faults.clear()
        slow.clear_requests()
        slow.rate_per_connection = None  # the rerun at full speed
        again = run_cli(
            "download", links, "-o", where, "--no-extract", "--part-size", "5M",
            "--state-dir", state, env=aws_environment(s3_faults.environment), cwd=tmp_path,
        )  # fmt: skip
        assert again.returncode == 0, again.output
        fetched = slow.bytes_sent_total
        rerun_fetched_within(fetched, 2 * SHARD_SIZE, held=held, in_order=in_order)
    assert_in_bucket(seaweedfs, s3_prefix, bucket_shards)
    assert s3_faults.count("UploadPart") == 10 - sent  # only the parts not in the bucket


# -- (d) the answer to CompleteMultipartUpload lost: the object is seen, never redone ----------


def test_a_complete_whose_answer_is_lost_is_seen_done_in_the_same_run(
    *, s3_faults: StoreFaultProxy, seaweedfs: SeaweedServer, bucket_links: Path,
    bucket_shards: list[ShardInfo], s3_prefix: str, tmp_path: Path,
) -> None:  # fmt: skip
    s3_faults.set(StoreFault(kind="cut_answer", operation="CompleteMultipartUpload"))
    result = download(
        bucket_links, f"s3://{BUCKET}/{s3_prefix}", s3_faults, "--state-dir", tmp_path / "s"
    )
    assert result.returncode == 0, result.output
    assert s3_faults.faulted("CompleteMultipartUpload") == 1
    assert_in_bucket(seaweedfs, s3_prefix, bucket_shards)


def test_a_complete_whose_answers_are_all_lost_is_found_done_by_the_rerun(
    *, s3_faults: StoreFaultProxy, seaweedfs: SeaweedServer, bucket_cdn: CDNServer,
    bucket_links: Path, bucket_shards: list[ShardInfo], s3_prefix: str, tmp_path: Path,
) -> None:  # fmt: skip
    where, state = f"s3://{BUCKET}/{s3_prefix}", tmp_path / "state"
    s3_faults.set(StoreFault(kind="cut_answer", operation="CompleteMultipartUpload", times=None))
    result = download(bucket_links, where, s3_faults, "--state-dir", state, "--retries", "2")
    assert result.returncode == 1, result.output
    (error,) = error_lines(result)
    assert "the connection to the store failed (CompleteMultipartUpload)" in error
    assert "Traceback" not in result.output
    completed = finals(seaweedfs, s3_prefix)  # the store did complete what it was asked to
    assert completed
    for name in completed:
        assert (
            object_md5(seaweedfs, f"{s3_prefix}/tars/{name}")
            == {s.name: s.md5 for s in bucket_shards}[name]
        )
    kept = len(pending(seaweedfs, s3_prefix))  # uploads of the others, continued by the rerun
    s3_faults.set(None)
    s3_faults.clear()
    bucket_cdn.clear_requests()
    again = download(bucket_links, where, s3_faults, "--state-dir", state)
    assert again.returncode == 0, again.output
    assert_in_bucket(seaweedfs, s3_prefix, bucket_shards)
    for name, etag in completed.items():  # seen done: not fetched, not uploaded, not replaced
        assert bucket_cdn.bytes_sent(name) == 0
        assert finals(seaweedfs, s3_prefix)[name] == etag
    assert s3_faults.count("CreateMultipartUpload") == 2 - len(completed) - kept


# -- status and clean judge by the engine's rule, the state copy's record included -------------


def test_a_newer_upload_than_the_one_the_state_records_is_a_stray_everywhere(
    *, s3_faults: StoreFaultProxy, seaweedfs: SeaweedServer, bucket_shards: list[ShardInfo],
    s3_prefix: str, tmp_path: Path,
) -> None:  # fmt: skip
    shard = bucket_shards[0]
    key = f"{s3_prefix}/tars/{shard.name}"
    where = f"s3://{BUCKET}/{s3_prefix}"
    env = aws_environment(s3_faults.environment)
    with CDNServer(root=shard.path.parent, rate_per_connection=MiB) as slow:
        links = tmp_path / "links.tsv"
        slow.write_links_file(links, names=[shard.name])
        proc = start_cli(
            "download", links, "-o", where, "--no-extract", "--part-size", "5M", "-q",
            "--state-dir", tmp_path / "here", "--connections", "2", env=env, cwd=tmp_path,
        )  # fmt: skip
        wait_for(lambda: s3_faults.count("UploadPart") >= 2, timeout=60,
                 message="two parts uploaded", process=proc)  # fmt: skip
        proc.send_signal(signal.SIGINT)  # interrupted: the state copy records the upload
        proc.communicate(timeout=60)
        assert proc.returncode == 130
        (recorded,) = pending(seaweedfs, s3_prefix)
        held, in_order = kept_bytes(seaweedfs, s3_prefix), kept_in_order(seaweedfs, s3_prefix)
        assert held >= 2 * PART
        # Someone (another tool, an older sa1b) begins a newer upload of the same key.
        client = seaweedfs.client()
        newer = client.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
        client.upload_part(Bucket=BUCKET, Key=key, UploadId=newer, PartNumber=1, Body=b"x" * 100)
        status = run_cli("status", where, env=env)
        assert status.returncode == 0, status.output
        strays = [line for line in status.stdout.splitlines() if line.startswith("stray upload")]
        assert len(strays) == 1 and newer in strays[0], status.output
        assert "a newer upload of its file than the one the state records" in strays[0]
        assert recorded["UploadId"] not in status.stdout
        # Another machine, with no local state, resumes the recorded upload, not the newer.
        slow.clear_requests()
        slow.rate_per_connection = None  # the rerun at full speed
        result = run_cli(
            "download", links, "-o", where, "--no-extract", "--part-size", "5M",
            "--state-dir", tmp_path / "elsewhere", env=env, cwd=tmp_path,
        )  # fmt: skip
        assert result.returncode == 0, result.output
        rerun_fetched_within(slow.bytes_sent_total, shard.size, held=held, in_order=in_order)
    assert object_md5(seaweedfs, key) == shard.md5
    assert [u["UploadId"] for u in pending(seaweedfs, s3_prefix)] == [newer]
    cleaned = run_cli("clean", where, env=env)
    assert cleaned.returncode == 0, cleaned.output
    assert newer in cleaned.stdout
    assert pending(seaweedfs, s3_prefix) == []
    assert object_md5(seaweedfs, key) == shard.md5
