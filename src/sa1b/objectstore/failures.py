"""botocore's errors translated into sa1b's tree: the one place that reads them.

Every call :class:`~sa1b.objectstore.bucket.Bucket` makes goes through :func:`translated`;
nothing above it catches a botocore exception. The decision is a table keyed by the
store's error code (or, for a HEAD that has no body, its status):

- the bucket cannot be used at all (no such bucket, access denied, credentials missing,
  wrong or expired, a TLS certificate that does not verify, a configuration botocore
  refuses such as an empty ``AWS_CA_BUNDLE``) -> :class:`BucketError`, one line naming
  the bucket and what to do (CLI exit code 2, never retried);
- the store is busy or failing (500, 503 ``SlowDown``, throttling, a request timeout) or
  the connection failed or was cut -> :class:`StoreUnavailableError`, retried by sa1b's
  own policy (:mod:`sa1b.retry`);
- the multipart upload is gone -> :class:`NoSuchUploadError`;
- anything else the store refuses -> :class:`StoreRequestError` with its code.

Messages are built from codes and sa1b's own words, never from the request: no header,
signature, access key or secret can reach them.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    CredentialRetrievalError,
    HTTPClientError,
    InvalidConfigError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
    SSLError,
)

from sa1b.errors import (
    BucketError,
    NoSuchUploadError,
    SA1BError,
    StoreRequestError,
    StoreUnavailableError,
)
from sa1b.objectstore.location import BucketLocation

CREDENTIALS_HINT = (
    "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), or "
    "AWS_PROFILE, or run where an instance role applies; refresh expired credentials"
)
EXPIRED_HINT = (
    "refresh them (a new AWS_SESSION_TOKEN, or log in again for the profile) and run the "
    "same command again"
)
PROFILE_HINT = (
    "check AWS_PROFILE: profiles are read from AWS_CONFIG_FILE (~/.aws/config) and "
    "AWS_SHARED_CREDENTIALS_FILE (~/.aws/credentials)"
)
PERMISSIONS_HINT = (
    "the credentials in use need s3:ListBucket, s3:GetObject, s3:PutObject, "
    "s3:AbortMultipartUpload and s3:ListBucketMultipartUploads on it"
)
CONFIG_HINT = (
    "check the AWS_* variables and the profile in use (AWS_PROFILE, AWS_CONFIG_FILE, ~/.aws/config)"
)
#: Where botocore takes a CA bundle from (beside a profile's ca_bundle): one set but blank
#: is refused by botocore before any request.
CA_BUNDLE_VARIABLES = ("AWS_CA_BUNDLE", "REQUESTS_CA_BUNDLE")
MISSING_HINT = (
    "create the bucket first, or check its name, AWS_REGION and AWS_ENDPOINT_URL "
    "(for an S3-compatible store)"
)

#: Codes (or bare statuses of a HEAD) after which the bucket cannot be used: what to say.
_BUCKET_CODES: dict[str, tuple[str, str]] = {
    "NoSuchBucket": ("no such bucket", MISSING_HINT),
    "404": ("no such bucket", MISSING_HINT),
    "AccessDenied": ("access denied", PERMISSIONS_HINT),
    "AllAccessDisabled": ("access denied", PERMISSIONS_HINT),
    "403": ("access denied, or credentials refused", f"{PERMISSIONS_HINT}; {CREDENTIALS_HINT}"),
    "InvalidAccessKeyId": ("the access key is not known to the store", CREDENTIALS_HINT),
    "SignatureDoesNotMatch": ("the credentials are refused (wrong secret key)", CREDENTIALS_HINT),
    "InvalidToken": ("the session token is refused", CREDENTIALS_HINT),
    "ExpiredToken": ("the credentials expired", EXPIRED_HINT),
    "TokenRefreshRequired": ("the credentials expired", EXPIRED_HINT),
    "AuthorizationHeaderMalformed": ("the store refuses the region", "set AWS_REGION"),
    "PermanentRedirect": (
        "the bucket is in another region",
        "set AWS_REGION to the bucket's region",
    ),
    "301": ("the bucket is in another region", "set AWS_REGION to the bucket's region"),
}
_BUSY_CODES = frozenset(
    {
        "SlowDown",
        "InternalError",
        "ServiceUnavailable",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TooManyRequests",
        "OperationAborted",
    }
)
_BUSY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


def translate(
    error: Exception, *, location: BucketLocation, key: str = "", action: str = ""
) -> SA1BError:
    """The sa1b error for a botocore error met while doing ``action`` (an S3 call's name)
    on ``key`` (relative to the prefix of ``location``)."""
    where = f"s3://{location.bucket}/{location.key(key)}" if key else f"s3://{location.bucket}"
    doing = f" ({action})" if action else ""
    if isinstance(error, ClientError):
        return _answered(error, location=location, where=where, key=key, doing=doing)
    if isinstance(error, ProfileNotFound):  # a profile's name is no secret: say which
        return BucketError(
            f"{where}: no AWS profile named {error.kwargs.get('profile')!r}",
            bucket=location.bucket,
            hint=PROFILE_HINT,
        )
    if isinstance(error, NoCredentialsError | PartialCredentialsError):
        return BucketError(
            f"{where}: no usable credentials ({type(error).__name__})",
            bucket=location.bucket,
            hint=CREDENTIALS_HINT,
        )
    if isinstance(error, CredentialRetrievalError):
        return BucketError(
            f"{where}: the credentials could not be obtained ({error.kwargs.get('provider')})",
            bucket=location.bucket,
            hint=CREDENTIALS_HINT,
        )
    if isinstance(error, InvalidConfigError):
        return _configuration(location, os.environ)
    if isinstance(error, SSLError):
        return BucketError(
            f"{where}: the store's TLS certificate did not verify",
            bucket=location.bucket,
            hint="check AWS_ENDPOINT_URL, and AWS_CA_BUNDLE for a private CA",
        )
    if isinstance(error, ConnectionError | HTTPClientError):
        return StoreUnavailableError(
            f"{where}: the connection to the store failed{doing} ({type(error).__name__})",
            name=key,
            url=where,
        )
    if isinstance(error, BotoCoreError):
        return StoreRequestError(
            f"{where}: {type(error).__name__}{doing}", code=type(error).__name__, name=key
        )
    raise error  # not botocore's: a bug to see, not to translate


def _answered(
    error: ClientError, *, location: BucketLocation, where: str, key: str, doing: str
) -> SA1BError:
    details = error.response.get("Error", {})
    code = str(details.get("Code", ""))
    metadata = error.response.get("ResponseMetadata", {})
    status = int(metadata.get("HTTPStatusCode") or 0)
    if code in _BUCKET_CODES:
        what, hint = _BUCKET_CODES[code]
        return BucketError(
            f"s3://{location.bucket}: {what}{doing}", bucket=location.bucket, hint=hint
        )
    if code == "NoSuchUpload":
        return NoSuchUploadError(
            f"{where}: the multipart upload is gone{doing}", code=code, name=key, url=where
        )
    if code in _BUSY_CODES or status in _BUSY_STATUSES or code in {str(s) for s in _BUSY_STATUSES}:
        # A HEAD's answer has no body: its code is its status, said once ("503", not "503 503").
        said = [str(status)] if status else []
        said += [code] if code and code != str(status) else []
        answered = " ".join(said)
        return StoreUnavailableError(
            f"{where}: the store answered {answered}{doing}",
            status=status or None,
            retry_after=_retry_after(metadata),
            name=key,
            url=where,
        )
    return StoreRequestError(
        f"{where}: the store refused the request ({code or status}){doing}",
        code=code,
        name=key,
        url=where,
    )


def _configuration(location: BucketLocation, environ: Mapping[str, str]) -> BucketError:
    """What botocore refused in its configuration, named in sa1b's words (botocore's
    message may quote the configuration)."""
    where = f"s3://{location.bucket}"
    for name in CA_BUNDLE_VARIABLES:
        if name in environ and not environ[name].strip():
            return BucketError(
                f"{where}: {name} is set but empty, so there is no CA bundle to check the "
                "store's certificate with",
                bucket=location.bucket,
                hint=f"unset {name} to use the system's CAs, or set it to the PEM file of "
                "the store's CA",
            )
    return BucketError(
        f"{where}: botocore refuses the AWS configuration (InvalidConfigError)",
        bucket=location.bucket,
        hint=CONFIG_HINT,
    )


def _retry_after(metadata: Mapping[str, Any]) -> float | None:
    headers = metadata.get("HTTPHeaders") or {}
    value = headers.get("retry-after")
    try:
        seconds = float(str(value))
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


@contextlib.contextmanager
def translated(location: BucketLocation, *, key: str = "", action: str = "") -> Iterator[None]:
    """Run the body; a botocore error leaves it as its sa1b error, the original not
    chained (its text may quote the request)."""
    try:
        yield
    except (BotoCoreError, ClientError) as error:
        raise translate(error, location=location, key=key, action=action) from None
