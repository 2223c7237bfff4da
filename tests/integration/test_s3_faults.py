"""The store's failures, injected by the fault proxy (harness.s3_faults) in front of a real
SeaweedFS: the proxy itself, then sa1b's S3 client (Bucket + with_retries) through it: busy
and failing stores retried with backoff, refusals not retried, cut connections survived."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError

from harness.s3_faults import FaultKind, StoreFault, StoreFaultProxy
from harness.seaweedfs import SeaweedServer
from sa1b.api.bucket import CHECK_POLICY
from sa1b.cdn.server import CDNServer
from sa1b.errors import BucketError, StoreUnavailableError
from sa1b.objectstore.bucket import Bucket, with_retries
from sa1b.objectstore.location import BucketLocation
from sa1b.objectstore.parts import MIB
from sa1b.retry import RetryPolicy
from tests.conftest import aws_environment

from .conftest import Result, run_cli

pytestmark = pytest.mark.xdist_group("seaweedfs")
"""With pytest-xdist, one worker runs the tests on SeaweedFS in turn: one server (eight
ports, a few hundred MB) at a time, not one a worker."""

BUCKET = "sa1b-test"


@pytest.fixture
def bucket(s3_faults: StoreFaultProxy, s3_prefix: str) -> Bucket:
    return Bucket(BucketLocation(BUCKET, f"tests/{s3_prefix}"))


# -- the proxy ---------------------------------------------------------------------------


def test_a_multipart_upload_passes_through_intact_and_is_counted(
    s3_faults: StoreFaultProxy, bucket: Bucket, seaweedfs: SeaweedServer
) -> None:
    # Signed through the proxy (its Host header), each part's SHA-256 checked by the store:
    # a header or a byte changed on the way would be refused.
    first, last = os.urandom(5 * MIB), os.urandom(1000)
    upload_id = bucket.create_multipart_upload("sa_000001.tar")
    parts = [
        bucket.upload_part("sa_000001.tar", upload_id, 1, first),
        bucket.upload_part("sa_000001.tar", upload_id, 2, last),
    ]
    assert [part.size for part in bucket.list_parts("sa_000001.tar", upload_id)] == [5 * MIB, 1000]
    bucket.complete_multipart_upload("sa_000001.tar", upload_id, parts)
    assert bucket.get_range("sa_000001.tar", 5 * MIB - 3, 5 * MIB + 3) == first[-3:] + last[:3]
    direct = seaweedfs.client().get_object(Bucket=BUCKET, Key=bucket.location.key("sa_000001.tar"))
    assert direct["Body"].read() == first + last
    assert s3_faults.counts() == {
        "CreateMultipartUpload": 1,
        "UploadPart": 2,
        "ListParts": 1,
        "CompleteMultipartUpload": 1,
        "GetObject": 1,
    }
    assert s3_faults.faulted() == 0
    assert {entry.status for entry in s3_faults.requests} == {200, 206}


ANSWERS: dict[FaultKind, tuple[int, str]] = {
    "slow_down": (503, "SlowDown"),
    "internal_error": (500, "InternalError"),
    "access_denied": (403, "AccessDenied"),
    "expired_token": (400, "ExpiredToken"),
}


@pytest.mark.parametrize(("kind", "answer"), ANSWERS.items(), ids=ANSWERS.keys())
def test_an_answer_fault_is_what_s3_would_answer_then_requests_pass_again(
    kind: FaultKind,
    answer: tuple[int, str],
    s3_faults: StoreFaultProxy,
    seaweedfs: SeaweedServer,
    s3_prefix: str,
) -> None:
    client = seaweedfs.client(endpoint_url=s3_faults.endpoint_url)
    s3_faults.set(StoreFault(kind=kind, retry_after=3))
    with pytest.raises(ClientError) as raised:
        client.put_object(Bucket=BUCKET, Key=f"{s3_prefix}/x", Body=b"x")
    response = raised.value.response
    status = answer[0]
    assert (response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]) == answer
    assert response["ResponseMetadata"]["HTTPHeaders"]["retry-after"] == "3"
    client.put_object(Bucket=BUCKET, Key=f"{s3_prefix}/x", Body=b"x")  # times=1: used up
    assert [(e.operation, e.status, e.faulted) for e in s3_faults.requests] == [
        ("PutObject", status, True),
        ("PutObject", 200, False),
    ]


def test_a_fault_on_every_second_part_upload_leaves_other_calls_alone(
    s3_faults: StoreFaultProxy, bucket: Bucket
) -> None:
    s3_faults.set(StoreFault(kind="slow_down", operation="UploadPart", every=2, times=None))
    upload_id = bucket.create_multipart_upload("sa_000002.tar")
    failed = []
    for number in range(1, 5):
        try:
            bucket.upload_part("sa_000002.tar", upload_id, number, bytes([number]) * 100)
        except StoreUnavailableError:
            failed.append(number)
    assert failed == [2, 4]
    assert [part.number for part in bucket.list_parts("sa_000002.tar", upload_id)] == [1, 3]
    bucket.abort_multipart_upload("sa_000002.tar", upload_id)
    assert (s3_faults.count("UploadPart"), s3_faults.faulted("UploadPart")) == (4, 2)
    assert s3_faults.faulted() == 2


def test_a_request_cut_never_reaches_the_store_an_answer_cut_does(
    s3_faults: StoreFaultProxy, seaweedfs: SeaweedServer, s3_prefix: str
) -> None:
    client = seaweedfs.client(endpoint_url=s3_faults.endpoint_url)
    direct = seaweedfs.client()
    s3_faults.set(StoreFault(kind="cut_request", operation="PutObject"))
    with pytest.raises((ConnectionClosedError, EndpointConnectionError)):
        client.put_object(Bucket=BUCKET, Key=f"{s3_prefix}/cut-request", Body=b"x" * 100_000)
    with pytest.raises(ClientError):  # the store never saw it
        direct.head_object(Bucket=BUCKET, Key=f"{s3_prefix}/cut-request")
    s3_faults.set(StoreFault(kind="cut_answer", operation="PutObject"))
    with pytest.raises(ConnectionClosedError):
        client.put_object(Bucket=BUCKET, Key=f"{s3_prefix}/cut-answer", Body=b"y" * 1000)
    # The store did it; only the client never heard.
    assert direct.head_object(Bucket=BUCKET, Key=f"{s3_prefix}/cut-answer")["ContentLength"] == 1000
    assert [(e.operation, e.status) for e in s3_faults.requests] == [
        ("PutObject", 0),
        ("PutObject", 0),
    ]


# -- sa1b's client through it ----------------------------------------------------------------

#: No real waiting: the delays asked for are recorded, the jitter fixed.
POLICY = RetryPolicy(attempts=4, backoff=0.5)


@pytest.mark.parametrize("kind", ["slow_down", "internal_error", "cut_request", "cut_answer"])
def test_a_part_upload_is_retried_with_backoff_then_succeeds(
    kind: FaultKind, s3_faults: StoreFaultProxy, bucket: Bucket
) -> None:
    upload_id = bucket.create_multipart_upload("sa_000003.tar")
    s3_faults.set(StoreFault(kind=kind, operation="UploadPart", times=2))
    body = os.urandom(100_000)
    waits: list[float] = []
    part = with_retries(
        lambda: bucket.upload_part("sa_000003.tar", upload_id, 1, body),
        policy=POLICY,
        sleep=waits.append,
        jitter=lambda: 0.0,
    )
    assert waits == [0.25, 0.5]  # two failures, each waited longer than the one before
    assert (s3_faults.count("UploadPart"), s3_faults.faulted("UploadPart")) == (3, 2)
    # Sent again whole, even after the store had kept it (cut_answer): the same part. (SeaweedFS
    # 4.48 then lists part 1 once per time it was kept, where S3 lists it once.)
    listed = bucket.list_parts("sa_000003.tar", upload_id)
    assert {(p.number, p.etag, p.size) for p in listed} == {(1, part.etag, len(body))}
    bucket.complete_multipart_upload("sa_000003.tar", upload_id, [part])
    assert bucket.get_range("sa_000003.tar", 0, len(body)) == body


def test_a_store_busy_for_longer_than_the_policy_is_given_up_with_its_answer(
    s3_faults: StoreFaultProxy, bucket: Bucket, s3_environment: dict[str, str]
) -> None:
    s3_faults.set(StoreFault(kind="slow_down", times=None, retry_after=2))
    waits: list[float] = []
    with pytest.raises(StoreUnavailableError) as raised:
        with_retries(bucket.check_writable, policy=POLICY, sleep=waits.append)
    assert raised.value.message == "s3://sa1b-test: the store answered 503 (HeadBucket)"
    assert waits == [2.0, 2.0, 2.0]  # the store's Retry-After, up to the policy's attempts
    assert s3_faults.count() == 4
    assert s3_environment["AWS_SECRET_ACCESS_KEY"] not in repr(raised.value)


@pytest.mark.parametrize(
    ("kind", "says", "hint"),
    [
        ("access_denied", "access denied", "s3:PutObject"),
        ("expired_token", "the credentials expired", "a new AWS_SESSION_TOKEN"),
    ],
)
def test_a_refusal_is_never_retried(
    kind: FaultKind,
    says: str,
    hint: str,
    s3_faults: StoreFaultProxy,
    bucket: Bucket,
) -> None:
    # Mid-run: the bucket was fine, then the credentials expire (or are revoked).
    upload_id = bucket.create_multipart_upload("sa_000004.tar")
    s3_faults.set(StoreFault(kind=kind, times=None))
    waits: list[float] = []
    with pytest.raises(BucketError) as raised:
        with_retries(
            lambda: bucket.upload_part("sa_000004.tar", upload_id, 1, b"x" * 100),
            policy=POLICY,
            sleep=waits.append,
        )
    assert raised.value.message == f"s3://sa1b-test: {says} (UploadPart 1)"
    assert hint in raised.value.hint
    assert raised.value.bucket == BUCKET
    assert waits == []
    assert s3_faults.count("UploadPart") == 1
    assert (
        s3_faults.environment["AWS_SECRET_ACCESS_KEY"] not in repr(raised.value) + raised.value.hint
    )
    s3_faults.set(None)
    bucket.abort_multipart_upload("sa_000004.tar", upload_id)


def test_credentials_expiring_mid_upload_stop_it_and_the_parts_sent_are_kept(
    s3_faults: StoreFaultProxy, bucket: Bucket
) -> None:
    # Four requests go through (the create and three parts), then the credentials expire.
    s3_faults.set(StoreFault(kind="expired_token", after=4, times=None))
    upload_id = bucket.create_multipart_upload("sa_000005.tar")
    sent = [bucket.upload_part("sa_000005.tar", upload_id, n, bytes([n]) * 100) for n in (1, 2, 3)]
    with pytest.raises(BucketError) as raised:
        with_retries(
            lambda: bucket.upload_part("sa_000005.tar", upload_id, 4, b"4" * 100),
            policy=POLICY,
            sleep=lambda _: pytest.fail("an expired credential is not retried"),
        )
    assert raised.value.message == "s3://sa1b-test: the credentials expired (UploadPart 4)"
    assert "run the same command again" in raised.value.hint
    s3_faults.set(None)  # refreshed: what was sent is still there to resume from
    listed = bucket.list_parts("sa_000005.tar", upload_id)
    assert [(p.number, p.etag) for p in listed] == [(p.number, p.etag) for p in sent]
    bucket.abort_multipart_upload("sa_000005.tar", upload_id)


# -- through the CLI: `sa1b plan LINKS -o s3://...` checks the bucket first --------------------


def plan(links: Path, where: str, variables: dict[str, str], log: Path) -> Result:
    """``sa1b plan`` into ``where`` with these AWS variables only, logging at debug."""
    return run_cli(
        "plan", links, "-o", where, "--probe-seconds", "0", "--log-file", log,
        "--log-level", "debug", env=aws_environment(variables),
    )  # fmt: skip


def error_lines(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


# fault -> the operation it hits (how often the check asks it once the fault is used up)
PASSING = {
    "503 twice on HeadBucket": StoreFault(kind="slow_down", operation="HeadBucket", times=2),
    "500 twice on the probe": StoreFault(kind="internal_error", operation="PutObject", times=2),
    "the answer to HeadBucket cut": StoreFault(kind="cut_answer", operation="HeadBucket"),
    "the probe's delete cut": StoreFault(kind="cut_request", operation="DeleteObject"),
}


@pytest.mark.parametrize("fault", PASSING.values(), ids=PASSING.keys())
def test_plan_goes_on_when_the_store_recovers_within_its_retries(
    fault: StoreFault, s3_faults: StoreFaultProxy, links: Path, tmp_path: Path, s3_prefix: str
) -> None:
    s3_faults.set(fault)
    result = plan(links, f"s3://{BUCKET}/{s3_prefix}", s3_faults.environment, tmp_path / "log")
    assert result.returncode == 0, result.output
    assert f"bucket          reachable and writable ({s3_faults.endpoint_url})" in result.stdout
    assert fault.operation is not None and fault.times is not None
    assert s3_faults.faulted() == s3_faults.faulted(fault.operation) == fault.times
    assert s3_faults.count(fault.operation) == fault.times + 1  # then it went through


def test_plan_gives_up_on_a_store_busy_throughout_in_one_line(
    s3_faults: StoreFaultProxy, cdn: CDNServer, links: Path, tmp_path: Path
) -> None:
    s3_faults.set(StoreFault(kind="slow_down", times=None))
    result = plan(links, f"s3://{BUCKET}/x", s3_faults.environment, tmp_path / "plan.log")
    assert result.returncode == 1, result.output  # a problem found, not bad input
    assert error_lines(result) == ["error: s3://sa1b-test: the store answered 503 (HeadBucket)"]
    assert "run the same command again later" in result.stderr
    assert s3_faults.count() == s3_faults.count("HeadBucket") == CHECK_POLICY.attempts
    assert cdn.requests == []
    assert "Traceback" not in result.output


def wrong_secret(variables: dict[str, str]) -> dict[str, str]:
    return {**variables, "AWS_SECRET_ACCESS_KEY": "wrong-" + variables["AWS_SECRET_ACCESS_KEY"]}


# what is wrong -> (the fault, the AWS variables changed, the bucket, what the one line says)
Refused = tuple[StoreFault | None, Callable[[dict[str, str]], dict[str, str]], str, str]
REFUSED: dict[str, Refused] = {
    "access denied": (
        StoreFault(kind="access_denied", times=None),
        dict,
        BUCKET,
        "access denied (HeadBucket)",
    ),
    "credentials expired at the probe": (
        StoreFault(kind="expired_token", operation="PutObject", times=None),
        dict,
        BUCKET,
        "the credentials expired (PutObject)",
    ),
    "missing bucket": (None, dict, "no-such-bucket", "no such bucket (HeadBucket)"),
    "wrong secret": (
        None,
        wrong_secret,
        BUCKET,
        "the credentials are refused (wrong secret key) (HeadBucket)",
    ),
    "unknown access key": (
        None,
        lambda v: {**v, "AWS_ACCESS_KEY_ID": "AKIANOTKNOWNATALL000"},
        BUCKET,
        "the access key is not known to the store (HeadBucket)",
    ),
    "no credentials": (  # empty, as unset: run_cli starts from this process's variables
        None,
        lambda v: {**v, "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""},
        BUCKET,
        "no usable credentials (NoCredentialsError)",
    ),
}


@pytest.mark.parametrize("case", REFUSED.values(), ids=REFUSED)
def test_plan_refuses_an_unusable_bucket_in_one_line_before_asking_the_cdn(
    case: Refused, s3_faults: StoreFaultProxy, cdn: CDNServer, links: Path, tmp_path: Path
) -> None:
    fault, change, bucket, says = case
    s3_faults.set(fault)
    variables = change(s3_faults.environment)
    log = tmp_path / "plan.log"
    result = plan(links, f"s3://{bucket}/x", variables, log)
    assert result.returncode == 2, result.output
    assert error_lines(result) == [f"error: s3://{bucket}: {says}"]
    assert "hint: " in result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.output
    assert cdn.requests == []  # nothing asked of the CDN, let alone downloaded
    shown = result.output + log.read_text()
    assert s3_faults.environment["AWS_SECRET_ACCESS_KEY"] not in shown
    if variables["AWS_SECRET_ACCESS_KEY"]:
        assert variables["AWS_SECRET_ACCESS_KEY"] not in shown
