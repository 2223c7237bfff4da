"""botocore's errors to sa1b's tree: the table of codes (real botocore exception values, as
botocore builds them from a store's answer)."""

from __future__ import annotations

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    InvalidConfigError,
    NoCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
    SSLError,
)

from sa1b.errors import (
    BucketError,
    NoSuchUploadError,
    SA1BError,
    StoreRequestError,
    StoreUnavailableError,
)
from sa1b.objectstore.failures import translate
from sa1b.objectstore.location import BucketLocation

HERE = BucketLocation("bucket", "data")


def answer(code: str, status: int, **headers: str) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": "the store's own words"},
            "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": headers},
        },
        "UploadPart",
    )


# name: (error, class, words in the message)
TABLE: dict[str, tuple[Exception, type[SA1BError], str]] = {
    "no such bucket": (answer("NoSuchBucket", 404), BucketError, "s3://bucket: no such bucket"),
    "HEAD of a missing bucket": (answer("404", 404), BucketError, "no such bucket"),
    "access denied": (answer("AccessDenied", 403), BucketError, "access denied"),
    "HEAD refused": (answer("403", 403), BucketError, "access denied, or credentials refused"),
    "wrong secret": (answer("SignatureDoesNotMatch", 403), BucketError, "wrong secret key"),
    "unknown key": (answer("InvalidAccessKeyId", 403), BucketError, "access key is not known"),
    "expired session": (answer("ExpiredToken", 400), BucketError, "the credentials expired"),
    "another region": (answer("PermanentRedirect", 301), BucketError, "another region"),
    "upload gone": (answer("NoSuchUpload", 404), NoSuchUploadError, "multipart upload is gone"),
    "slow down": (answer("SlowDown", 503), StoreUnavailableError, "answered 503 SlowDown"),
    "internal error": (answer("InternalError", 500), StoreUnavailableError, "answered 500"),
    "a 502 of a proxy": (answer("502", 502), StoreUnavailableError, "answered 502"),
    "a busy HEAD (no body)": (answer("503", 503), StoreUnavailableError, "answered 503 (Upl"),
    "request timeout": (answer("RequestTimeout", 400), StoreUnavailableError, "RequestTimeout"),
    "throttled": (answer("ThrottlingException", 400), StoreUnavailableError, "Throttling"),
    "bad part list": (answer("InvalidPart", 400), StoreRequestError, "refused the request"),
    "too small": (answer("EntityTooSmall", 400), StoreRequestError, "EntityTooSmall"),
    "no credentials": (NoCredentialsError(), BucketError, "no usable credentials"),
    "no such profile": (
        ProfileNotFound(profile="tpyo"),
        BucketError,
        "no AWS profile named 'tpyo'",
    ),
    "refused": (
        EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
        StoreUnavailableError,
        "connection to the store failed",
    ),
    "cut": (
        ConnectionClosedError(endpoint_url="http://127.0.0.1:1"),
        StoreUnavailableError,
        "ConnectionClosedError",
    ),
    "read timeout": (
        ReadTimeoutError(endpoint_url="http://127.0.0.1:1"),
        StoreUnavailableError,
        "connection to the store failed",
    ),
    "certificate": (
        SSLError(endpoint_url="https://s3.local", error="bad"),
        BucketError,
        "TLS certificate did not verify",
    ),
}


@pytest.mark.parametrize(("error", "cls", "says"), TABLE.values(), ids=TABLE.keys())
def test_each_error_becomes_one_line_of_sa1b(
    error: Exception, cls: type[SA1BError], says: str
) -> None:
    translated = translate(error, location=HERE, key="sa_000001.tar", action="UploadPart 3")
    assert type(translated) is cls
    assert says in translated.message
    assert "\n" not in translated.message
    assert "the store's own words" not in translated.message  # only codes are quoted
    if isinstance(translated, BucketError):
        assert translated.bucket == "bucket"
        assert translated.hint
    else:
        assert translated.message.startswith("s3://bucket/data/sa_000001.tar: ")


def test_retry_after_is_kept_when_the_store_gives_one() -> None:
    busy = translate(answer("SlowDown", 503, **{"retry-after": "4"}), location=HERE)
    assert isinstance(busy, StoreUnavailableError)
    assert (busy.status, busy.retry_after) == (503, 4.0)
    odd = translate(answer("SlowDown", 503, **{"retry-after": "soon"}), location=HERE)
    assert isinstance(odd, StoreUnavailableError) and odd.retry_after is None


# variables set: what the line says of botocore's InvalidConfigError
CONFIGURATIONS = {
    "AWS_CA_BUNDLE=": ({"AWS_CA_BUNDLE": ""}, "AWS_CA_BUNDLE is set but empty"),
    "REQUESTS_CA_BUNDLE=' '": ({"REQUESTS_CA_BUNDLE": " "}, "REQUESTS_CA_BUNDLE is set but empty"),
    "another setting": ({}, "botocore refuses the AWS configuration (InvalidConfigError)"),
}


@pytest.mark.parametrize(("variables", "says"), CONFIGURATIONS.values(), ids=CONFIGURATIONS.keys())
def test_a_configuration_botocore_refuses_is_named_in_one_line(
    variables: dict[str, str], says: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_CA_BUNDLE", "REQUESTS_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    refused = InvalidConfigError(error_msg="the configured value resolved to ''")
    translated = translate(refused, location=HERE, action="connect")
    assert isinstance(translated, BucketError)  # exit 2, never retried
    assert translated.message.startswith(f"s3://bucket: {says}")
    assert "resolved" not in translated.message  # sa1b's words, not botocore's
    for name in variables:
        assert name in translated.hint


def test_an_error_not_of_botocore_is_not_translated() -> None:
    with pytest.raises(KeyError):
        translate(KeyError("a bug"), location=HERE)
