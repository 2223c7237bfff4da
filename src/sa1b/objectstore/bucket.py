"""The S3 calls sa1b makes, and only those, over botocore.

:class:`Bucket` wraps one botocore client for one ``s3://BUCKET/PREFIX``. Keys given to it
are relative to the prefix. Its calls are those the engine's upload body needs: a
multipart upload per shard (create, upload a part with its SHA-256, list its parts,
complete, abort), the uploads left under the prefix (ListMultipartUploads), HeadObject
(with the user metadata), the objects under the prefix (ListObjectsV2), a ranged GET, a
whole object streamed in bounded chunks (``verify``), a small PUT (state copies) and
DELETE, and the reachable-and-writable check ``plan`` makes (HeadBucket, then a probe
object put and deleted under ``PREFIX/.sa1b/``).

**Credentials and endpoint: botocore's standard chain**, nothing of sa1b's own: the
``AWS_*`` environment variables, the shared config and credentials files and their
profiles (``AWS_PROFILE``), SSO and assumed roles, container and instance roles;
``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_S3`` or a profile's ``endpoint_url`` for an
S3-compatible store; ``AWS_CA_BUNDLE`` for a private CA. sa1b never reads, prints, logs
or stores a secret: errors are built from the store's codes (:mod:`.failures`).

**Retries: botocore's are off** (one attempt per call). Failures come back as sa1b's
errors, and the transient ones (:class:`~sa1b.errors.StoreUnavailableError`) are retried
by sa1b's own policy (:class:`~sa1b.retry.RetryPolicy`, :func:`with_retries`): one policy,
one account of failures per shard, ``Retry-After`` honoured, the same backoff as the
CDN's failures and counted apart from them; botocore would silently resend a 64 MiB part
up to its own limit and hide the failures from the run's account.

**Checksums: SHA-256 per body** (``x-amz-checksum-sha256`` on every part and small
object), computed once by sa1b; the store verifies it before it keeps the bytes. The
payload itself is not signed (``payload_signing_enabled=False``): the signed checksum
header already binds the body, and over plain HTTP (an S3-compatible store on a local
network) botocore would otherwise hash every body a second time for SigV4 (0.64 CPU s/GB
here); over HTTPS with a checksum botocore signs no payload anyway. CRC32C would need
botocore's ``awscrt`` extension (a large native package); SHA-256 is in the standard
library, and SeaweedFS, MinIO and AWS check it.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import random
import secrets
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import botocore.session
from botocore.config import Config
from botocore.exceptions import ClientError

from sa1b.errors import BucketError, RetryableError
from sa1b.objectstore.failures import translated
from sa1b.objectstore.location import BucketLocation
from sa1b.objectstore.parts import latest_parts
from sa1b.retry import RetryPolicy

logger = logging.getLogger(__name__)

T = TypeVar("T")

PROBE_FOLDER = ".sa1b"
"""Under the prefix: where sa1b keeps what is not a shard (state copies, the probe)."""
STATE_COPY = f"{PROBE_FOLDER}/state.db"
"""Under the prefix: the copy of a download's store another machine continues from."""


def state_copy_key(worker: str | None = None) -> str:
    """The key of the state copy of a download, or of one worker of a split download
    (``3-of-8``: each keeps its own store, so each its own copy)."""
    return f"{PROBE_FOLDER}/workers/{worker}/state.db" if worker else STATE_COPY


@dataclass(frozen=True, slots=True, kw_only=True)
class BucketOptions:
    """How the client connects: ``connections`` at once (the parts in flight), and
    timeouts in seconds."""

    connections: int = 16
    connect_timeout: float = 10.0
    read_timeout: float = 60.0


@dataclass(frozen=True, slots=True)
class UploadedPart:
    """A part the store holds: its number, ETag, size and (when known) SHA-256."""

    number: int
    etag: str
    size: int
    sha256: str = ""  # base64, as S3 writes it; "" when the listing does not say


@dataclass(frozen=True, slots=True)
class PendingUpload:
    """A multipart upload begun and neither completed nor aborted."""

    key: str  # relative to the prefix
    upload_id: str
    initiated: datetime | None


@dataclass(frozen=True, slots=True)
class StoredObject:
    """What HeadObject says of an object; ``metadata`` is its user metadata (the
    ``x-amz-meta-`` headers, their names lowercase and without that prefix)."""

    size: int
    etag: str
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ListedObject:
    """An object as ListObjectsV2 shows it: its key (relative to the prefix), size and
    ETag."""

    key: str
    size: int
    etag: str = ""


class Bucket:
    """One ``s3://BUCKET/PREFIX`` and a botocore client for it (thread-safe: botocore
    clients may be shared between threads)."""

    def __init__(self, location: BucketLocation, *, options: BucketOptions | None = None) -> None:
        self.location = location
        options = options or BucketOptions()
        config = Config(
            max_pool_connections=options.connections,
            connect_timeout=options.connect_timeout,
            read_timeout=options.read_timeout,
            retries={"total_max_attempts": 1},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            s3={"payload_signing_enabled": False},
        )
        with translated(location, action="connect"):
            try:
                session = botocore.session.Session()
                self._client: Any = session.create_client("s3", config=config)
            except ValueError as error:  # a malformed AWS_ENDPOINT_URL
                raise BucketError(
                    f"{location.url}: the endpoint is not a URL ({error})",
                    bucket=location.bucket,
                    hint="fix AWS_ENDPOINT_URL (or the profile's endpoint_url)",
                ) from None

    def __repr__(self) -> str:
        return f"Bucket({self.location.url!r})"

    @property
    def endpoint(self) -> str:
        """The endpoint the client talks to (no credential in it)."""
        return str(self._client.meta.endpoint_url)

    def _key(self, key: str) -> str:
        return self.location.key(key)

    # -- the bucket as a whole -----------------------------------------------------------

    def head_bucket(self) -> None:
        """Raise :class:`~sa1b.errors.BucketError` unless the bucket exists and these
        credentials may use it."""
        with translated(self.location, action="HeadBucket"):
            try:
                self._client.head_bucket(Bucket=self.location.bucket)
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "403":
                    raise
                # A HEAD's answer has no body to say why (access denied, a wrong secret,
                # an unknown key, an expired token): ask again with a GET, whose has one.
                self._client.list_objects_v2(
                    Bucket=self.location.bucket, Prefix=self.location.prefix, MaxKeys=1
                )
                raise

    def check_writable(self) -> None:
        """The bucket exists, and an object can be written and deleted under the prefix
        (a probe under ``PREFIX/.sa1b/``, removed again)."""
        self.head_bucket()
        probe = f"{PROBE_FOLDER}/probe-{secrets.token_hex(8)}"
        self.put_object(probe, b"sa1b checks that it may write here\n")
        self.delete_object(probe)

    # -- multipart uploads ---------------------------------------------------------------

    def create_multipart_upload(self, key: str, *, metadata: Mapping[str, str] = {}) -> str:
        """Begin a multipart upload of ``key`` whose parts carry SHA-256; its id. The
        object will carry ``metadata`` (``x-amz-meta-*``: sa1b writes ``sa1b-size`` and
        ``sa1b-source``, the source's validator, never a URL)."""
        with translated(self.location, key=key, action="CreateMultipartUpload"):
            answer = self._client.create_multipart_upload(
                Bucket=self.location.bucket,
                Key=self._key(key),
                ChecksumAlgorithm="SHA256",
                Metadata=dict(metadata),
            )
        return str(answer["UploadId"])

    def upload_part(
        self, key: str, upload_id: str, number: int, body: bytes | bytearray
    ) -> UploadedPart:
        """Send part ``number`` with its SHA-256; the store checks it before keeping it.
        ``body`` may be a bytearray the part was gathered in (botocore takes no
        memoryview)."""
        checksum = _sha256(body)
        with translated(self.location, key=key, action=f"UploadPart {number}"):
            answer = self._client.upload_part(
                Bucket=self.location.bucket,
                Key=self._key(key),
                UploadId=upload_id,
                PartNumber=number,
                Body=body,
                ChecksumSHA256=checksum,
            )
        return UploadedPart(number, str(answer["ETag"]), len(body), checksum)

    def list_parts(self, key: str, upload_id: str, *, page: int = 1000) -> list[UploadedPart]:
        """The parts the store holds for this upload, in order, each number once
        (:func:`~sa1b.objectstore.parts.latest_parts`; every page of ``page``)."""
        parts: list[UploadedPart] = []
        marker = 0
        while True:
            with translated(self.location, key=key, action="ListParts"):
                answer = self._client.list_parts(
                    Bucket=self.location.bucket,
                    Key=self._key(key),
                    UploadId=upload_id,
                    PartNumberMarker=marker,
                    MaxParts=page,
                )
            for part in answer.get("Parts", []):
                parts.append(
                    UploadedPart(
                        int(part["PartNumber"]),
                        str(part["ETag"]),
                        int(part["Size"]),
                        str(part.get("ChecksumSHA256", "")),
                    )
                )
            if not answer.get("IsTruncated"):
                return latest_parts(parts)
            marker = int(answer["NextPartNumberMarker"])

    def list_multipart_uploads(self, under: str = "", *, page: int = 1000) -> list[PendingUpload]:
        """The uploads begun under ``PREFIX/under`` and not finished (every page of
        ``page``)."""
        strip = f"{self.location.prefix}/" if self.location.prefix else ""
        prefix = self._key(under) if under else strip
        uploads: list[PendingUpload] = []
        markers: dict[str, str] = {}
        while True:
            with translated(self.location, key=under, action="ListMultipartUploads"):
                answer = self._client.list_multipart_uploads(
                    Bucket=self.location.bucket, Prefix=prefix, MaxUploads=page, **markers
                )
            for upload in answer.get("Uploads", []):
                uploads.append(
                    PendingUpload(
                        str(upload["Key"]).removeprefix(strip),
                        str(upload["UploadId"]),
                        upload.get("Initiated"),
                    )
                )
            if not answer.get("IsTruncated"):
                return uploads
            markers = {
                "KeyMarker": str(answer.get("NextKeyMarker", "")),
                "UploadIdMarker": str(answer.get("NextUploadIdMarker", "")),
            }

    def complete_multipart_upload(
        self, key: str, upload_id: str, parts: Sequence[UploadedPart]
    ) -> str:
        """Make ``key`` appear, whole, from these parts (in order); its ETag."""
        listed = [
            {"PartNumber": part.number, "ETag": part.etag}
            | ({"ChecksumSHA256": part.sha256} if part.sha256 else {})
            for part in sorted(parts, key=lambda part: part.number)
        ]
        with translated(self.location, key=key, action="CompleteMultipartUpload"):
            answer = self._client.complete_multipart_upload(
                Bucket=self.location.bucket,
                Key=self._key(key),
                UploadId=upload_id,
                MultipartUpload={"Parts": listed},
            )
        return str(answer.get("ETag", ""))

    def abort_multipart_upload(self, key: str, upload_id: str) -> None:
        """Drop the upload and its parts."""
        with translated(self.location, key=key, action="AbortMultipartUpload"):
            self._client.abort_multipart_upload(
                Bucket=self.location.bucket, Key=self._key(key), UploadId=upload_id
            )

    # -- whole objects -------------------------------------------------------------------

    def head_object(self, key: str) -> StoredObject | None:
        """Size and ETag of ``key``, or None when there is no such object."""
        with translated(self.location, key=key, action="HeadObject"):
            try:
                answer = self._client.head_object(Bucket=self.location.bucket, Key=self._key(key))
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                    return None
                raise
        metadata = {str(k).lower(): str(v) for k, v in (answer.get("Metadata") or {}).items()}
        return StoredObject(int(answer["ContentLength"]), str(answer.get("ETag", "")), metadata)

    def list_objects(self, under: str = "", *, page: int = 1000) -> list[ListedObject]:
        """The objects under ``PREFIX/under`` (every page of ``page``), keys relative to
        the prefix."""
        strip = f"{self.location.prefix}/" if self.location.prefix else ""
        prefix = self._key(under) if under else strip
        objects: list[ListedObject] = []
        token: dict[str, str] = {}
        while True:
            with translated(self.location, key=under, action="ListObjectsV2"):
                answer = self._client.list_objects_v2(
                    Bucket=self.location.bucket, Prefix=prefix, MaxKeys=page, **token
                )
            for listed in answer.get("Contents", []):
                key = str(listed["Key"]).removeprefix(strip)
                objects.append(ListedObject(key, int(listed["Size"]), str(listed.get("ETag", ""))))
            if not answer.get("IsTruncated"):
                return objects
            token = {"ContinuationToken": str(answer["NextContinuationToken"])}

    def get_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` of ``key``."""
        if not 0 <= start < end:
            raise ValueError(f"bad range [{start}, {end})")
        with translated(self.location, key=key, action="GetObject"):
            answer = self._client.get_object(
                Bucket=self.location.bucket, Key=self._key(key), Range=f"bytes={start}-{end - 1}"
            )
            body: bytes = answer["Body"].read()
        return body

    def stream_object(self, key: str, *, chunk: int = 4 << 20) -> Iterator[bytes]:
        """The whole of ``key``, ``chunk`` bytes at a time (never more in memory): one
        GetObject read as it arrives."""
        with translated(self.location, key=key, action="GetObject"):
            answer = self._client.get_object(Bucket=self.location.bucket, Key=self._key(key))
        body = answer["Body"]
        try:
            while True:
                with translated(self.location, key=key, action="GetObject"):
                    data: bytes = body.read(chunk)
                if not data:
                    return
                yield data
        finally:
            body.close()

    def put_object(self, key: str, body: bytes) -> None:
        """Write a small object whole (a state copy, the probe)."""
        with translated(self.location, key=key, action="PutObject"):
            self._client.put_object(
                Bucket=self.location.bucket,
                Key=self._key(key),
                Body=body,
                ChecksumSHA256=_sha256(body),
            )

    def delete_object(self, key: str) -> None:
        with translated(self.location, key=key, action="DeleteObject"):
            self._client.delete_object(Bucket=self.location.bucket, Key=self._key(key))


def _sha256(body: bytes | bytearray) -> str:
    """A body's SHA-256 as S3 writes it (base64)."""
    return base64.b64encode(hashlib.sha256(body).digest()).decode("ascii")


def with_retries(
    call: Callable[[], T],
    *,
    policy: RetryPolicy,
    sleep: Callable[[float], None] = time.sleep,
    jitter: Callable[[], float] = random.random,
) -> T:
    """``call()``, tried again after the policy's backoff while it raises a retryable
    error (:class:`~sa1b.errors.StoreUnavailableError`); anything else, or the last
    failure, is raised. For the calls made outside the engine (plan, status, cleanup):
    the engine counts a shard's failures itself."""
    failures = 0
    while True:
        try:
            return call()
        except RetryableError as error:
            failures += 1
            delay = policy.delay(error, failures, jitter=jitter())
            if delay is None:
                raise
            logger.info("%s; trying again in %.1f s", error.message, delay)
            sleep(delay)
