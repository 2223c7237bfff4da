"""The S3 client (sa1b.objectstore.bucket) against a real SeaweedFS on loopback: every call
the engine will make, the errors a user can meet, and no secret in any of them."""

from __future__ import annotations

import os
import pickle
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from harness.seaweedfs import SeaweedServer
from sa1b.errors import BucketError, NoSuchUploadError, SA1BError, StoreUnavailableError
from sa1b.objectstore.bucket import Bucket, BucketOptions, with_retries
from sa1b.objectstore.location import BucketLocation
from sa1b.objectstore.parts import MIB
from sa1b.retry import RetryPolicy

pytestmark = pytest.mark.xdist_group("seaweedfs")
"""With pytest-xdist, one worker runs the tests on SeaweedFS in turn: one server (eight
ports, a few hundred MB) at a time, not one a worker."""

BUCKET = "sa1b-test"


def no_secret_in(error: SA1BError, secret: str) -> None:
    for text in (error.message, error.hint, repr(error), str(pickle.dumps(error))):
        assert secret not in text


@pytest.fixture
def bucket(s3_environment: dict[str, str], s3_prefix: str) -> Bucket:
    return Bucket(BucketLocation(BUCKET, f"tests/{s3_prefix}"))


def test_a_multipart_upload_from_parts_to_object(bucket: Bucket, seaweedfs: SeaweedServer) -> None:
    first, last = os.urandom(5 * MIB), os.urandom(1000)
    upload_id = bucket.create_multipart_upload("sa_000001.tar")
    # Sent out of order, as downloads finish them.
    sent = [
        bucket.upload_part("sa_000001.tar", upload_id, 2, last),
        bucket.upload_part("sa_000001.tar", upload_id, 1, bytearray(first)),  # as gathered
    ]
    listed = bucket.list_parts("sa_000001.tar", upload_id)
    assert [(part.number, part.size) for part in listed] == [(1, 5 * MIB), (2, 1000)]
    assert {part.etag for part in listed} == {part.etag for part in sent}
    pending = bucket.list_multipart_uploads()
    assert [(upload.key, upload.upload_id) for upload in pending] == [("sa_000001.tar", upload_id)]
    assert bucket.head_object("sa_000001.tar") is None  # nothing under the final key yet

    bucket.complete_multipart_upload("sa_000001.tar", upload_id, sent)
    stored = bucket.head_object("sa_000001.tar")
    assert stored is not None and stored.size == 5 * MIB + 1000
    assert bucket.get_range("sa_000001.tar", 5 * MIB - 10, 5 * MIB + 10) == (
        first[-10:] + last[:10]
    )
    assert bucket.list_multipart_uploads() == []
    # The key is under the prefix, as a user listing the bucket sees it.
    whole = seaweedfs.client().get_object(Bucket=BUCKET, Key=bucket.location.key("sa_000001.tar"))
    assert whole["Body"].read() == first + last


def test_an_aborted_upload_is_gone(bucket: Bucket) -> None:
    upload_id = bucket.create_multipart_upload("sa_000002.tar")
    bucket.upload_part("sa_000002.tar", upload_id, 1, b"x" * 1000)
    bucket.abort_multipart_upload("sa_000002.tar", upload_id)
    assert bucket.list_multipart_uploads() == []
    with pytest.raises(NoSuchUploadError) as raised:
        bucket.complete_multipart_upload("sa_000002.tar", upload_id, [])
    assert "sa_000002.tar" in raised.value.message
    assert bucket.head_object("sa_000002.tar") is None


def test_uploads_are_listed_under_a_prefix_only(bucket: Bucket) -> None:
    mine = bucket.create_multipart_upload("shards/sa_000003.tar")
    other = Bucket(BucketLocation(BUCKET, f"{bucket.location.prefix}-other"))
    theirs = other.create_multipart_upload("shards/sa_000003.tar")
    try:
        assert [u.upload_id for u in bucket.list_multipart_uploads("shards/")] == [mine]
        assert [u.upload_id for u in bucket.list_multipart_uploads("elsewhere/")] == []
    finally:
        bucket.abort_multipart_upload("shards/sa_000003.tar", mine)
        other.abort_multipart_upload("shards/sa_000003.tar", theirs)


def test_small_objects_and_the_writable_check_leave_nothing_behind(
    bucket: Bucket, seaweedfs: SeaweedServer
) -> None:
    bucket.check_writable()
    bucket.put_object(".sa1b/state-copy", b"state")
    assert bucket.get_range(".sa1b/state-copy", 0, 5) == b"state"
    bucket.delete_object(".sa1b/state-copy")
    listed = seaweedfs.client().list_objects_v2(Bucket=BUCKET, Prefix=bucket.location.prefix)
    assert listed.get("Contents", []) == []


def test_a_missing_bucket_says_so_and_names_it(s3_environment: dict[str, str]) -> None:
    with pytest.raises(BucketError) as raised:
        Bucket(BucketLocation("no-such-bucket-here", "x")).check_writable()
    assert raised.value.message == "s3://no-such-bucket-here: no such bucket (HeadBucket)"
    assert "create the bucket" in raised.value.hint
    assert raised.value.bucket == "no-such-bucket-here"


def test_a_wrong_secret_is_refused_and_never_shown(
    s3_environment: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "wrong-secret-" + "z" * 30
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", wrong)
    bucket = Bucket(BucketLocation(BUCKET, "x"))
    with pytest.raises(BucketError) as raised:
        bucket.put_object("x", b"x")
    assert "credentials are refused" in raised.value.message
    assert "AWS_SECRET_ACCESS_KEY" in raised.value.hint
    no_secret_in(raised.value, wrong)
    assert wrong not in repr(bucket)


def test_an_unknown_access_key_is_refused(
    s3_environment: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIANOTKNOWNATALL000")
    with pytest.raises(BucketError, match="access key is not known"):
        Bucket(BucketLocation(BUCKET)).put_object("x", b"x")


def test_no_credentials_at_all(
    s3_environment: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(BucketError) as raised:
        Bucket(BucketLocation(BUCKET)).head_bucket()
    assert raised.value.message == "s3://sa1b-test: no usable credentials (NoCredentialsError)"
    assert "AWS_PROFILE" in raised.value.hint


def test_a_profile_from_the_shared_files_with_its_endpoint(
    s3_environment: dict[str, str],
    seaweedfs: SeaweedServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    s3_prefix: str,
) -> None:
    # As a user of an S3-compatible store would set it up: a profile whose config names
    # the endpoint, its keys in the credentials file; no AWS_* variable but the profile.
    (tmp_path / "config").write_text(
        f"[profile seaweed]\nregion = us-east-1\nendpoint_url = {seaweedfs.endpoint_url}\n"
    )
    (tmp_path / "credentials").write_text(
        f"[seaweed]\naws_access_key_id = {seaweedfs.access_key}\n"
        f"aws_secret_access_key = {seaweedfs.secret_key}\n"
    )
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "AWS_REGION"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_PROFILE", "seaweed")
    bucket = Bucket(BucketLocation(BUCKET, s3_prefix))
    assert bucket.endpoint == seaweedfs.endpoint_url
    bucket.check_writable()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_a_store_that_cannot_be_reached_is_retried_by_sa1b_policy(
    s3_environment: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed_port()}")
    bucket = Bucket(BucketLocation(BUCKET), options=BucketOptions(connect_timeout=2))
    waits: list[float] = []
    with pytest.raises(StoreUnavailableError) as raised:
        with_retries(
            bucket.head_bucket,
            policy=RetryPolicy(attempts=3, backoff=0.5),
            sleep=waits.append,
            jitter=lambda: 0.0,
        )
    assert raised.value.status is None
    assert "connection to the store failed" in raised.value.message
    assert waits == [0.25, 0.5]  # three attempts, botocore's own retries off


class SlowDown(BaseHTTPRequestHandler):
    """A store that is always busy: 503 SlowDown, Retry-After 7, to every request."""

    def _busy(self) -> None:
        body = (
            b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>SlowDown</Code>"
            b"<Message>Please reduce your request rate.</Message></Error>"
        )
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.send_response(503)
        self.send_header("Retry-After", "7")
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _busy

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def busy_store() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowDown)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_slow_down_is_retryable_after_the_store_s_delay(
    s3_environment: dict[str, str], monkeypatch: pytest.MonkeyPatch, busy_store: str
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", busy_store)
    bucket = Bucket(BucketLocation(BUCKET, "x"))
    upload = "an-upload-id"
    waits: list[float] = []
    with pytest.raises(StoreUnavailableError) as raised:
        with_retries(
            lambda: bucket.upload_part("sa_000004.tar", upload, 1, b"x" * 100),
            policy=RetryPolicy(attempts=2),
            sleep=waits.append,
        )
    error = raised.value
    assert (error.status, error.retry_after) == (503, 7.0)
    assert (
        error.message
        == "s3://sa1b-test/x/sa_000004.tar: the store answered 503 SlowDown (UploadPart 1)"
    )
    assert waits == [7.0]
    no_secret_in(error, s3_environment["AWS_SECRET_ACCESS_KEY"])


def test_listings_are_read_page_after_page(bucket: Bucket, seaweedfs: SeaweedServer) -> None:
    upload_id = bucket.create_multipart_upload("sa_000005.tar")
    others = [bucket.create_multipart_upload(f"sa_00000{n}.tar") for n in (6, 7)]
    try:
        for number in (1, 2, 3):
            bucket.upload_part("sa_000005.tar", upload_id, number, bytes([number]) * 100)
        # The store does cut its answers into pages of that size...
        key = bucket.location.key("sa_000005.tar")
        raw = seaweedfs.client()
        first = raw.list_parts(Bucket=BUCKET, Key=key, UploadId=upload_id, MaxParts=2)
        assert first["IsTruncated"] and len(first["Parts"]) == 2
        uploads = raw.list_multipart_uploads(
            Bucket=BUCKET, Prefix=bucket.location.prefix, MaxUploads=1
        )
        assert uploads["IsTruncated"] and len(uploads["Uploads"]) == 1
        # ...and every page is read.
        parts = bucket.list_parts("sa_000005.tar", upload_id, page=2)
        assert [(part.number, part.size) for part in parts] == [(1, 100), (2, 100), (3, 100)]
        pending = bucket.list_multipart_uploads(page=1)
        assert sorted(upload.key for upload in pending) == [
            "sa_000005.tar",
            "sa_000006.tar",
            "sa_000007.tar",
        ]
    finally:
        bucket.abort_multipart_upload("sa_000005.tar", upload_id)
        for number, other in zip((6, 7), others, strict=True):
            bucket.abort_multipart_upload(f"sa_00000{number}.tar", other)
